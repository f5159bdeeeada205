"""Find finished and running runs on disk and read what they recorded.

A run folder holds `events.jsonl` (written while it runs) and, once it has
ended, `mlx_training_summary.json` with the analysis, metrics and config next
to it. A run without a summary is read from its events. Every number here is
one the run recorded, or None: nothing is estimated or filled in.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tscu_tui.engine.config import Config
from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.events import (
    EvalEvent,
    RunFailed,
    RunFinished,
    RunStarted,
    StepEvent,
    TestEvent,
)
from tscu_tui.engine.fileio import read_json_object
from tscu_tui.engine.runs.files import (
    ANALYSIS_FILE,
    CONFIG_FILE,
    EVENTS_FILE,
    LOG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
)
from tscu_tui.engine.runs.follow import read_events

SCAN_DEPTH = 2  # a root, its children and grandchildren (out/run, out/sweep/run-3)
LOG_TAIL_LINES = 400
_SKIP_DIRS = {"checkpoints", "best", "logs", "data", "__pycache__", "node_modules"}

History = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class RunSummary:
    """One row of the results table. None: the run did not record it."""

    path: Path
    status: str  # completed | stopped | early_stopping | ... | failed | in progress
    steps: int | None = None
    max_steps: int | None = None
    heldout_bpt_initial: float | None = None
    heldout_bpt_final: float | None = None
    heldout_bpt_best: float | None = None
    energy_j: float | None = None
    avg_power_w: float | None = None
    peak_temp_c: float | None = None
    efficiency_bits_per_j: float | None = None  # cumulative information per joule
    tokens_per_s: float | None = None
    telemetry_source: str | None = None
    telemetry_kind: str | None = None
    duration_s: float | None = None
    base_model: str | None = None
    governor_enabled: bool | None = None


@dataclass(frozen=True)
class RunDetail:
    summary: RunSummary
    history: History  # {"steps": [...], "evals": [...], "checkpoints": [...], "tests": [...]}
    analysis: dict[str, Any] = field(default_factory=dict)  # empty while running
    config: dict[str, Any] = field(default_factory=dict)
    log_tail: str = ""


def is_run_dir(path: Path) -> bool:
    return (path / EVENTS_FILE).is_file() or (path / SUMMARY_FILE).is_file()


def _candidates(root: Path, depth: int) -> Iterable[Path]:
    if not root.is_dir():
        return
    if is_run_dir(root):
        yield root
        return  # a run's own subfolders (checkpoints, best) are not runs
    if depth == 0:
        return
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return
    for child in children:
        if child.name.startswith(".") or child.name in _SKIP_DIRS:
            continue
        yield from _candidates(child, depth - 1)


def find_runs(roots: Iterable[Path], skipped: list[str] | None = None,
              depth: int = SCAN_DEPTH) -> list[RunSummary]:
    """Every run under `roots` (each searched `depth` folders deep), sorted by path.

    A run folder that cannot be read is left out; its one-line reason is appended
    to `skipped` when given.
    """
    seen: set[Path] = set()
    runs: list[RunSummary] = []
    for root in roots:
        for path in _candidates(root, depth):
            key = path.resolve()
            if key in seen:
                continue
            seen.add(key)
            try:
                runs.append(summarize(path))
            except TscuError as exc:
                if skipped is not None:
                    skipped.append(str(exc))
    return sorted(runs, key=lambda r: str(r.path))


def summarize(path: Path) -> RunSummary:
    """A run's summary, from its output files once it has ended, else from its events."""
    summary = read_json_object(path / SUMMARY_FILE)
    if summary is None:
        return _summary_from_events(path, *_history_from_events(path))
    analysis = read_json_object(path / ANALYSIS_FILE) or {}
    efficiency = analysis.get("efficiency") or {}
    return RunSummary(
        path=path,
        status=str(summary.get("status", "unknown")),
        steps=summary.get("steps"),
        max_steps=summary.get("max_steps"),
        heldout_bpt_initial=analysis.get("heldout_bpt_initial"),
        heldout_bpt_final=summary.get("final_heldout_bpt", analysis.get("heldout_bpt_final")),
        heldout_bpt_best=summary.get("best_heldout_bpt", analysis.get("heldout_bpt_best")),
        energy_j=analysis.get("total_energy_joules"),
        avg_power_w=summary.get("avg_power_watts", analysis.get("avg_power_watts")),
        peak_temp_c=analysis.get("max_temperature_celsius"),
        efficiency_bits_per_j=efficiency.get("information_per_joule_cumulative_bits"),
        tokens_per_s=analysis.get("tokens_per_second_mean"),
        telemetry_source=analysis.get("telemetry_source"),
        telemetry_kind=analysis.get("telemetry_kind"),
        duration_s=summary.get("wall_seconds"),
        base_model=summary.get("base_model"),
        governor_enabled=analysis.get("governor_enabled"),
    )


def _history_from_events(path: Path) -> tuple[History, str, str | None, int | None]:
    """(history, status, base model, max steps) replayed from events.jsonl."""
    if not (path / EVENTS_FILE).is_file():
        raise TscuError(f"{path}: no {EVENTS_FILE} and no {SUMMARY_FILE}")
    try:
        events = read_events(path)
    except OSError as exc:
        raise TscuError(f"{path / EVENTS_FILE}: cannot read ({exc.strerror or exc})") from None
    history: History = {"steps": [], "evals": [], "checkpoints": [], "tests": []}
    status, model, max_steps = "in progress", None, None
    for event in events:
        match event:
            case RunStarted():
                model, max_steps, status = event.model, event.max_steps, "in progress"
                # a resume replays steps after its checkpoint: drop the replaced ones
                for key in history:
                    history[key] = [r for r in history[key] if r["step"] <= event.start_step
                                    and r.get("adapter", "base") == "base"]
            case StepEvent():
                history["steps"].append(asdict(event))
            case EvalEvent():
                history["evals"].append(asdict(event))
            case TestEvent():
                history["tests"].append(asdict(event))
            case RunFinished():
                status = event.reason
            case RunFailed():
                status = "failed"
    if model is None:
        raise TscuError(f"{path / EVENTS_FILE}: no RunStarted event (not a tscu run?)")
    return history, status, model, max_steps


def _summary_from_events(path: Path, history: History, status: str, model: str | None,
                         max_steps: int | None) -> RunSummary:
    steps, evals = history["steps"], history["evals"]
    last = steps[-1] if steps else {}
    bpts = [e["heldout_bpt"] for e in evals]
    temps = [s["temp_c"] for s in steps if s.get("temp_c") is not None]
    etas = [e["eta_cumulative_bits_per_j"] for e in evals
            if e.get("eta_cumulative_bits_per_j") is not None]
    source = next((s["telemetry_source"] for s in reversed(steps)
                   if s.get("telemetry_source")), None)
    kind = next((s["telemetry_kind"] for s in reversed(steps) if s.get("telemetry_kind")), None)
    return RunSummary(
        path=path, status=status, steps=last.get("step"), max_steps=max_steps,
        heldout_bpt_initial=bpts[0] if bpts else None,
        heldout_bpt_final=bpts[-1] if bpts else None,
        heldout_bpt_best=min(bpts) if bpts else None,
        energy_j=last.get("energy_j"), avg_power_w=None,  # only the finished run knows it
        peak_temp_c=max(temps) if temps else None,
        efficiency_bits_per_j=etas[-1] if etas else None,
        tokens_per_s=(sum(s["tokens_per_s"] for s in steps) / len(steps)) if steps else None,
        telemetry_source=source, telemetry_kind=kind,
        duration_s=None,  # wall time incl. idle and evals: only the summary records it
        base_model=model)


def load_run(path: Path) -> RunDetail:
    """Everything the detail view shows: history, analysis, config and the log's tail."""
    summary = summarize(path)
    metrics = read_json_object(path / METRICS_FILE)
    if metrics is not None and isinstance(metrics.get("steps"), list):
        history: History = {key: list(metrics.get(key) or [])
                            for key in ("steps", "evals", "checkpoints", "tests")}
    elif (path / EVENTS_FILE).is_file():
        history = _history_from_events(path)[0]
    else:
        history = {"steps": [], "evals": [], "checkpoints": [], "tests": []}
    return RunDetail(summary=summary, history=history,
                     analysis=read_json_object(path / ANALYSIS_FILE) or {},
                     config=read_json_object(path / CONFIG_FILE) or {},
                     log_tail=log_tail(path / LOG_FILE))


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a text file ('' when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - lines * 400))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def run_roots(config: Config) -> list[Path]:
    """Where runs are searched: the output dir, its parent, and the demo's folder, each
    once (`demo_output/run` has `demo_output` for parent, the demo's folder)."""
    out = Path(config.output.dir).expanduser()
    roots: dict[Path, Path] = {}
    for root in (out, out.parent, Path("demo_output")):
        roots.setdefault(root.resolve(), root)
    return list(roots.values())


def shown_roots(roots: list[Path]) -> list[Path]:
    """The roots to name in the heading: those not inside another one."""
    resolved = [root.resolve() for root in roots]
    return [root for root, path in zip(roots, resolved, strict=True)
            if not any(path != other and path.is_relative_to(other) for other in resolved)]
