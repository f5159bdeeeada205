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

from tscu_tui.engine.event_lines import event_line
from tscu_tui.engine.events import (
    CheckpointEvent,
    EvalEvent,
    Event,
    SampleEvent,
    StepEvent,
    TestEvent,
    to_record,
)
from tscu_tui.engine.runs.files import EVENTS_FILE, LOG_FILE


def _line(event: Event, logging_steps: int) -> str | None:
    """The log file's line for `event`; steps only every `logging_steps` and at the end."""
    if isinstance(event, StepEvent) and not (event.step % logging_steps == 0
                                             or event.step == event.max_steps):
        return None
    return event_line(event, "log")


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
