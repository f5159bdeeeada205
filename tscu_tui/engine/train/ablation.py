"""Ablations: the same config trained under several SCU arms and seeds, then compared.

An arm says what the SCU does: `off` (no penalty), `fixed:LAMBDA`, `pi:TARGET`
(TARGET a number in (0, 1] or `auto`) or `default` (the config's own [scu]),
optionally with `@init` or `@zero` for the prior's centre. Each arm x seed is an
ordinary run in `DIR/runs/ARM-seedN`; a run that finished with the same
settings is reused, an interrupted one resumed, so an ablation can be stopped
and started again. The report (`ablation.json`, `.md`, `.png`) is written
from the runs' own recorded histories.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tscu_tui.engine.config import Config, load_config, to_dict
from tscu_tui.engine.errors import ConfigError, TscuError
from tscu_tui.engine.fileio import atomic_write_json, read_json_object
from tscu_tui.engine.runs.files import SUMMARY_FILE
from tscu_tui.engine.runs.reader import load_run
from tscu_tui.engine.train.checkpoint import latest_checkpoint
from tscu_tui.engine.train.scu_run import auto_resolve_step

ARM_SYNTAX = "off, default, fixed:LAMBDA, pi:TARGET or pi:auto, each optionally @init or @zero"
SPEC_FILE = "ablation_run.json"
_ARM = re.compile(r"^(off|default|fixed:(?P<lam>[^@]+)|pi:(?P<target>[^@]+))"
                  r"(@(?P<center>init|zero))?$")


@dataclass(frozen=True)
class Arm:
    spec: str  # as written: "fixed:0.1", "pi:auto@zero"
    overrides: tuple[str, ...]  # --set items that make the config this arm

    @property
    def slug(self) -> str:
        """The arm as a folder name: fixed-0.1, pi-auto-zero."""
        return re.sub(r"[^A-Za-z0-9.]+", "-", self.spec).strip("-")


def parse_arm(text: str) -> Arm:
    """One arm from its spec; TscuError naming --arms and the spec when it is not one."""
    spec = text.strip()
    match = _ARM.match(spec)
    if match is None:
        raise TscuError(f"--arms: {spec!r} is not an arm; use {ARM_SYNTAX}")
    overrides: list[str] = []
    if spec.startswith("off"):
        overrides.append('scu.mode="off"')
    elif match["lam"] is not None:
        lam = _number(match["lam"], spec)
        if lam < 0:
            raise TscuError(f"--arms: {spec!r}: a fixed lambda must be >= 0")
        overrides += ['scu.mode="fixed"', f"scu.lambda_init={lam!r}"]
    elif match["target"] is not None:
        target = match["target"]
        if target != "auto":
            value = _number(target, spec)
            if not 0 < value <= 1:
                raise TscuError(f"--arms: {spec!r}: a target S must lie in (0, 1] or be auto")
            target = repr(value)
        else:
            target = '"auto"'
        overrides += ['scu.mode="pi"', f"scu.target_s={target}"]
    if match["center"]:
        overrides.append(f'scu.prior_center="{match["center"]}"')
    return Arm(spec=spec, overrides=tuple(overrides))


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TscuError(f"--arms: {spec!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TscuError(f"--arms: {spec!r}: {text!r} is not a finite number")
    return value


def parse_arms(text: str) -> list[Arm]:
    arms = [parse_arm(part) for part in text.split(",") if part.strip()]
    if not arms:
        raise TscuError(f"--arms: no arm given; use {ARM_SYNTAX}")
    slugs = [arm.slug for arm in arms]
    for slug in slugs:
        if slugs.count(slug) > 1:
            raise TscuError(f"--arms: {slug!r} is given twice")
    return arms


def parse_count(flag: str, text: str) -> int:
    """A whole number >= 1 given to `flag`, or a one-line error naming the flag."""
    try:
        count = int(text)
    except ValueError:
        raise TscuError(f"{flag} {text}: must be a whole number >= 1") from None
    if count < 1:
        raise TscuError(f"{flag} {text}: must be at least 1")
    return count


def parse_seeds(text: str) -> int:
    return parse_count("--seeds", text)


@dataclass(frozen=True)
class PlannedRun:
    arm: Arm
    seed: int
    config: Config

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output.dir)


def plan(config_path: str | Path, arms: list[Arm], seeds: int, output_dir: Path,
         overrides: list[str], steps: int | None = None) -> list[PlannedRun]:
    """Every arm x seed as a resolved config, seed-major (so a cut-short ablation still
    has every arm on its first seeds). Raises ConfigError/TscuError, writes nothing."""
    shared = list(overrides) + ([f"train.max_steps={steps}"] if steps is not None else [])
    base = load_config(config_path, shared)
    runs = []
    for index in range(seeds):
        seed = base.train.seed + index
        for arm in arms:
            name = f"{arm.slug}-seed{seed}"
            items = [*shared, *arm.overrides, f"train.seed={seed}",
                     f"output.dir={json.dumps(str(output_dir / 'runs' / name))}",
                     "output.overwrite=false"]
            try:
                config = load_config(config_path, items)
            except ConfigError as exc:
                raise TscuError(f"--arms {arm.spec}: {exc.problems[0]}") from None
            runs.append(PlannedRun(arm=arm, seed=seed, config=config))
    return runs


def _spec(run: PlannedRun) -> dict[str, Any]:
    settings = {k: v for k, v in to_dict(run.config).items() if k not in ("keys", "hub")}
    return {"arm": run.arm.spec, "seed": run.seed, "config": settings}


def run_state(run: PlannedRun) -> str:
    """'finished' (reuse), 'interrupted' (resume) or 'new' (train from scratch)."""
    spec = read_json_object(run.run_dir / SPEC_FILE) if run.run_dir.is_dir() else None
    if spec != json.loads(json.dumps(_spec(run))):
        return "new"
    summary = read_json_object(run.run_dir / SUMMARY_FILE)
    if summary is not None and summary.get("status") == "completed" \
            and summary.get("steps") == run.config.train.max_steps:
        return "finished"
    return "interrupted" if latest_checkpoint(run.run_dir) is not None else "new"


TrainOne = Callable[[Config, bool], None]  # (config, resume): trains, raises on failure
Progress = Callable[[str], None]


def run_all(runs: list[PlannedRun], train_one: TrainOne, progress: Progress) -> None:
    """Train what is not finished yet, in order; reuse the rest."""
    for number, run in enumerate(runs, start=1):
        head = f"[{number}/{len(runs)}] {run.arm.spec} seed {run.seed}"
        state = run_state(run)
        if state == "finished":
            progress(f"{head}: finished earlier, reused ({run.run_dir})")
            continue
        if state == "new":
            if run.run_dir.exists():
                shutil.rmtree(run.run_dir)
            run.run_dir.mkdir(parents=True)
            atomic_write_json(run.run_dir / SPEC_FILE, _spec(run))
        progress(f"{head}: {'resuming' if state == 'interrupted' else 'training'} "
                 f"({run.run_dir})")
        train_one(run.config, state == "interrupted")
        if run_state(run) != "finished":
            raise TscuError(f"{run.run_dir}: the run did not complete; run the ablation "
                            "again to resume it")


# ---------------------------------------------------------------------- the report

def _at_bound_share(steps: list[dict[str, Any]], config: Config) -> float | None:
    """Share of steps after warm-up with lambda at lambda_min or lambda_max (pi only)."""
    scu = config.scu
    if scu.mode != "pi":
        return None
    start = auto_resolve_step(config.train) if scu.target_s == "auto" \
        else config.train.warmup_steps
    after = [s["lambda_reg"] for s in steps if s["step"] > start]
    if not after:
        return None
    low, high = scu.lambda_min * (1 + 1e-6), scu.lambda_max * (1 - 1e-6)
    return sum(1 for lam in after if lam <= low or lam >= high) / len(after)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)


def run_result(run: PlannedRun) -> dict[str, Any]:
    detail = load_run(run.run_dir)
    steps, evals = detail.history["steps"], detail.history["evals"]
    summary = detail.summary
    targets = [s["s_target"] for s in steps if s.get("s_target") is not None]
    return {
        "seed": run.seed, "run_dir": str(run.run_dir), "status": summary.status,
        "heldout_bpt": summary.heldout_bpt_final, "best_bpt": summary.heldout_bpt_best,
        "base_bpt": evals[0]["heldout_bpt"] if evals and evals[0]["step"] == 0 else None,
        "lambda_at_bound_share": _at_bound_share(steps, run.config),
        "lambda_final": steps[-1]["lambda_reg"] if steps else None,
        "target_s": targets[-1] if targets else None,
        "energy_j": summary.energy_j, "wall_s": summary.duration_s,
        "curve": [[e["step"], e["heldout_bpt"]] for e in evals],
    }


def _curve(results: list[dict[str, Any]]) -> list[dict[str, float]]:
    by_step: dict[int, list[float]] = {}
    for result in results:
        for step, bpt in result["curve"]:
            by_step.setdefault(step, []).append(bpt)
    return [{"step": step, "mean": statistics.fmean(v), "std": _std(v) or 0.0,
             "min": min(v), "max": max(v), "n": len(v)}
            for step, v in sorted(by_step.items()) if len(v) == len(results)]


def summarize(runs: list[PlannedRun], meta: dict[str, Any]) -> dict[str, Any]:
    """ablation.json's content from the finished runs (arms in the order given)."""
    arms: dict[str, list[tuple[PlannedRun, dict[str, Any]]]] = {}
    for run in runs:
        arms.setdefault(run.arm.spec, []).append((run, run_result(run)))
    rows, bases = [], []
    for spec, pairs in arms.items():
        results = [result for _, result in pairs]
        finals = [r["heldout_bpt"] for r in results if r["heldout_bpt"] is not None]
        bases += [r["base_bpt"] for r in results if r["base_bpt"] is not None]
        config = pairs[0][0].config
        rows.append({
            "arm": spec, "mode": config.scu.mode, "prior_center": config.scu.prior_center,
            "runs": results,
            "heldout_bpt_mean": _mean(finals), "heldout_bpt_std": _std(finals),
            "best_bpt_mean": _mean([r["best_bpt"] for r in results]),
            "lambda_at_bound_share": _mean([r["lambda_at_bound_share"] for r in results]),
            "target_s_mean": _mean([r["target_s"] for r in results]),
            "energy_j_mean": _mean([r["energy_j"] for r in results]),
            "wall_s_mean": _mean([r["wall_s"] for r in results]),
            "curve": _curve(results),
        })
    return {**meta, "base_heldout_bpt": _mean(bases), "arms": rows}
