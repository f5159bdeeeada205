"""Record a run as it happens: events.jsonl, the training log, metric history.

`events.jsonl` gets one JSON object per event, flushed at once, so another
process (`tscu watch`) can follow the run; the log gets human-readable lines.
The metric history is what `mlx_tscu_training_metrics.json` is written from,
and is carried inside checkpoints so a resumed run keeps its whole history.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from tscu_tui.engine.events import (
    CheckpointEvent,
    EvalEvent,
    Event,
    LogEvent,
    RunFailed,
    RunFinished,
    RunStarted,
    SampleEvent,
    StepEvent,
    TestEvent,
    to_record,
)
from tscu_tui.engine.runs.files import EVENTS_FILE, LOG_FILE


def _target(value: float | None) -> str:
    return "auto" if value is None else f"{value:.4f}"


def _oneline(text: str) -> str:
    return " ".join(text.split())


def _line(event: Event, logging_steps: int) -> str | None:
    match event:
        case StepEvent() if event.step % logging_steps == 0 or event.step == event.max_steps:
            text = (f"step {event.step}/{event.max_steps} loss {event.loss:.4f} "
                    f"data_bpt {event.data_bpt:.4f} param_bpt {event.param_bpt:.5f} "
                    f"S {event.s:.4f} (target {_target(event.s_target)}) lambda "
                    f"{event.lambda_reg:.4g} lr {event.lr:.3g} tok/s {event.tokens_per_s:.0f}")
            if event.power_w is not None:
                text += f" {event.power_w:.1f} W"
            if event.temp_c is not None:
                text += f" {event.temp_c:.1f} °C"
            if event.control_factor is not None:
                text += f" c {event.control_factor:.2f} idle {event.idle_s or 0.0:.2f}s"
            return text + (" [update skipped: non-finite loss]" if event.skipped else "")
        case EvalEvent():
            return (f"eval step {event.step}: held-out {event.heldout_bpt:.4f} bits/token, "
                    f"perplexity {event.perplexity:.2f}{' (best)' if event.is_best else ''}")
        case TestEvent():
            return (f"test split, {event.adapter} adapter (step {event.step}): "
                    f"{event.test_bpt:.4f} bits/token, perplexity {event.perplexity:.2f}")
        case SampleEvent():
            return f"samples at step {event.step}: " + " | ".join(
                f"{_oneline(p)[-40:]} -> {_oneline(a)[:80]}"
                for p, a in zip(event.prompts, event.answers, strict=True))
        case CheckpointEvent():
            return f"checkpoint ({event.reason}) at step {event.step}: {event.path}"
        case LogEvent():
            return f"{event.level}: {event.message}"
        case RunStarted():
            return (f"run started at step {event.start_step}: model {event.model}, dataset "
                    f"{event.dataset}, {event.trainable_params:,} trainable of "
                    f"{event.total_params:,} parameters, {event.blas}")
        case RunFinished():
            return f"run finished at step {event.step}: {event.reason}"
        case RunFailed():
            return f"run failed at step {event.step}: {event.reason}"
    return None


class RunRecorder:
    """An event sink that writes the run's streams and keeps its metric history."""

    def __init__(self, run_dir: Path, logging_steps: int,
                 history: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.logging_steps = logging_steps
        self.history = history or {"steps": [], "evals": [], "checkpoints": []}
        self.history.setdefault("tests", [])
        self.history.setdefault("samples", [])  # a checkpoint from before samples existed
        (run_dir / LOG_FILE).parent.mkdir(parents=True, exist_ok=True)
        self._events: TextIO = open(run_dir / EVENTS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._log: TextIO = open(run_dir / LOG_FILE, "a", encoding="utf-8")  # noqa: SIM115

    def __call__(self, event: Event) -> None:
        self._events.write(json.dumps(to_record(event)) + "\n")
        self._events.flush()
        line = _line(event, self.logging_steps)
        if line:
            self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
            self._log.flush()
        key = {StepEvent: "steps", EvalEvent: "evals", CheckpointEvent: "checkpoints",
               TestEvent: "tests", SampleEvent: "samples"}.get(type(event))
        if key:
            self.history[key].append(asdict(event))

    def rewind(self, step: int) -> None:
        """Forget history after `step` (a resume replays those steps)."""
        for key in self.history:
            self.history[key] = [r for r in self.history[key] if r["step"] <= step]
        # The end's test evaluations are measured again when the run ends again.
        self.history["tests"] = [r for r in self.history["tests"] if r["adapter"] == "base"]

    def close(self) -> None:
        self._events.close()
        self._log.close()
