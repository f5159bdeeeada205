"""All of a run's reporters behind one event sink, each one's failure kept to itself.

`open_reporters` starts the ones `report.to` names; `Reporters` feeds them every
event. What they have to say (where their files are, that one could not start, that
one failed and was dropped, once) waits in `take_notes()`: the trainer logs it once
the event at hand has been handled (a log line is an event too, and the sink must not
call back into the trainer while it is emitting), and not before the run's
RunStarted, which stays the first event of the run.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from tscu_tui.engine.config import Config
from tscu_tui.engine.errors import first_line
from tscu_tui.engine.events import Event, RunFailed, RunStarted
from tscu_tui.engine.report.base import Reporter, ReporterUnavailable


class Reporters:
    """The event sink in front of the live reporters."""

    def __init__(self) -> None:
        self.active: list[Reporter] = []
        self._notes: list[tuple[str, str]] = []  # (level, message)
        self._started = False
        self._failed = False

    def info(self, message: str) -> None:
        self._notes.append(("info", message))

    def warn(self, message: str) -> None:
        self._notes.append(("warning", message))

    def __call__(self, event: Event) -> None:
        self._started = self._started or isinstance(event, RunStarted)
        self._failed = self._failed or isinstance(event, RunFailed)
        for reporter in list(self.active):
            try:
                reporter(event)
            except Exception as exc:
                self._drop(reporter, f"{type(exc).__name__}: {first_line(exc)}")

    def _drop(self, reporter: Reporter, reason: str) -> None:
        self.active.remove(reporter)
        self.warn(f"report.to '{reporter.name}' failed ({reason}); the run goes on without it")
        with contextlib.suppress(Exception):  # broken already: its first failure is the news
            reporter.close(True)

    def take_notes(self) -> list[tuple[str, str]]:
        """(level, message) said since last asked; nothing before the run has started."""
        if not self._started:
            return []
        notes, self._notes = self._notes, []
        return notes

    def close(self) -> None:
        self._started = True  # a run that failed before starting still hears why
        for reporter in list(self.active):
            try:
                reporter.close(self._failed)
            except Exception as exc:
                self.active.remove(reporter)
                self.warn(f"report.to '{reporter.name}' did not close cleanly "
                          f"({type(exc).__name__}: {first_line(exc)})")
        self.active = []


def open_reporters(config: Config, run_dir: Path, start_step: int) -> Reporters:
    """Start every reporter `report.to` names; one that cannot start is a warning."""
    reporters = Reporters()
    info, warn, started = reporters.info, reporters.warn, reporters.active
    for name in dict.fromkeys(config.report.to):  # each once, in the order given
        try:
            if name == "tensorboard":
                from tscu_tui.engine.report.tensorboard_events import TensorBoardReporter

                started.append(TensorBoardReporter(config, run_dir, start_step, info))
            elif name == "wandb":
                from tscu_tui.engine.report.wandb_run import WandbReporter

                started.append(WandbReporter(config, run_dir, start_step, info))
            else:
                raise ReporterUnavailable("no such reporter (tensorboard, wandb)")
        except ReporterUnavailable as exc:
            warn(f"report.to '{name}': {exc}; the run goes on without it")
        except Exception as exc:
            warn(f"report.to '{name}' could not start ({type(exc).__name__}: "
                 f"{first_line(exc)}); the run goes on without it")
    return reporters
