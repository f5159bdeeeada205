"""The training loop: LoRA on a 4-bit base under the SCU, in whatever thread runs it.

Reads top to bottom: set up (model, adapters, data, optimizer, controller,
resume), then one optimizer step at a time — commands, gradient accumulation,
update, SCU, events, evaluation, checkpoints — then the run's output files.
It never prints and never touches a UI: everything goes to the event sink.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from pathlib import Path

from tscu_tui.engine.config import Config
from tscu_tui.engine.data import PreparedDataset
from tscu_tui.engine.distributed.liveness import Liveness, Loss
from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.events import (
    Command,
    Event,
    EventSink,
    LogEvent,
    RunFailed,
    RunFinished,
)
from tscu_tui.engine.report.reporters import Reporters
from tscu_tui.engine.telemetry.base import SourceUnavailable
from tscu_tui.engine.train.checkpoint import latest_checkpoint
from tscu_tui.engine.train.evaluation import Evaluation
from tscu_tui.engine.train.loop import TrainingLoop
from tscu_tui.engine.train.parallel import DataParallel, loss_reason
from tscu_tui.engine.train.recorder import RunRecorder
from tscu_tui.engine.train.run_outputs import RunOutputs
from tscu_tui.engine.train.run_plan import plan_run
from tscu_tui.engine.train.selection import NO_TEST_AFTER
from tscu_tui.engine.train.session import SessionSetup, _Progress, _Stop
from tscu_tui.engine.train.step import StepBuilding
from tscu_tui.engine.train.thermal import ThermalControl


class Trainer(SessionSetup, StepBuilding, TrainingLoop, Evaluation, RunOutputs):
    """One training run. Construct, then call `run()` in the thread that should do the work."""

    def __init__(self, config: Config, sink: EventSink | None = None,
                 commands: queue.Queue[Command] | None = None, *, resume: bool = False) -> None:
        self.config = config
        self.run_dir = Path(config.output.dir)
        self.dataset_path = Path(config.data.path)
        self.commands = commands or queue.Queue()
        self.resume = resume
        self._user_sink = sink
        self._recorder: RunRecorder | None = None
        self._reporters: Reporters | None = None  # report.to, on rank 0
        self._step_s_ema: float | None = None
        self._wall_s_ema: float | None = None
        self._last_accum = config.train.gradient_accumulation_steps
        self.thermal: ThermalControl | None = None
        self.progress = _Progress()
        self.parallel = DataParallel()  # one process until run() joins a distributed world
        self.liveness: Liveness | None = None
        self._emit_lock = threading.Lock()  # the watchdog's thread may report a lost rank
        self._failed = False
        self._requests: set[Command] = set()  # STOP/SAVE, agreed over ranks each step
        self._last_checkpoint: int | None = None

    # ------------------------------------------------------------------ events
    def emit(self, event: Event) -> None:
        with self._emit_lock:
            if isinstance(event, RunFailed):  # a run fails once (the watchdog may be first)
                if self._failed:
                    return
                self._failed = True
            if self._recorder is not None:
                self._recorder(event)
            if self._reporters is not None:
                self._reporters(event)
            if self._user_sink is not None:
                self._user_sink(event)
        self._report_notes()

    def _report_notes(self) -> None:
        """What the reporters said, logged once the event at hand is out (not inside it).
        Their info is not tied to a step, so the app and the live console show it."""
        for level, message in (self._reporters.take_notes() if self._reporters is not None
                               else ()):
            self.emit(LogEvent(level=level, message=message,
                               step=None if level == "info" else self.progress.step))

    def log(self, message: str, level: str = "info") -> None:
        self.emit(LogEvent(level=level, message=message, step=self.progress.step))

    # ------------------------------------------------------------------ entry
    def run(self) -> RunFinished | RunFailed:
        """Train to the end (or a stop); never raises for run failures, reports them."""
        started = time.perf_counter()
        try:
            self.parallel = DataParallel.join(self._rank_lost)
            self.liveness = self.parallel.liveness
            self.data = PreparedDataset.open(self.dataset_path)  # before any output exists
            # train.epochs and scu.mode = "auto" resolved on this data, before anything uses
            # them (the run folder's config records the resolved steps and mode).
            self.plan = plan_run(self.config, self.data.meta, self.dataset_path)
            self.config = self.plan.apply(self.config)
            if self.parallel.is_main:
                self._prepare_run_dir()
                if self.resume and (ckpt := latest_checkpoint(self.run_dir)) is not None:
                    self._check_world(ckpt.state)  # before minutes of model loading
            self._setup()
            try:
                self._loop()
                reason = "completed"
            except _Stop as stop:
                reason = stop.reason
            if reason not in NO_TEST_AFTER:
                p = self.progress
                self.tests.at_end(self.model, p.step, p.best_step, self._load_best)
            finished = self._finish(reason, time.perf_counter() - started)
            if self.liveness is not None:
                self.liveness.close()
            return finished
        except (TscuError, SourceUnavailable) as exc:
            return self._fail(str(exc))
        except Exception as exc:  # a bug or a library failure: one line out, details in the log
            if self._recorder is not None:
                self.log(traceback.format_exc().strip().replace("\n", " | "), "error")
            return self._fail(f"{type(exc).__name__}: {exc}".splitlines()[0])
        finally:
            if self.thermal is not None:
                self.thermal.stop()
            if self._reporters is not None:
                with self._emit_lock:
                    self._reporters.close()
                self._report_notes()
            if self._recorder is not None:
                with self._emit_lock:
                    self._recorder.close()

    def _rank_lost(self, loss: Loss) -> None:
        """The watchdog's verdict (on its thread): report it once; the command exits."""
        if self.thermal is not None:
            self.thermal.stop()  # e.g. the GPU's own power limit back before the exit
        saved = self._last_checkpoint  # rank 0's own; the others', as rank 0 said it
        if not self.parallel.is_main and self.liveness is not None:
            known = [c for c in (saved, self.liveness.checkpoint) if c is not None]
            saved = max(known, default=None)
        self.emit(RunFailed(step=self.progress.step, rank=loss.rank,
                            reason=loss_reason(loss, self.progress.step, saved),
                            reported_elsewhere=loss.reported))

    def _fail(self, reason: str) -> RunFailed:
        world = self.parallel.world
        if world.distributed and not world.is_main:
            reason = f"rank {world.rank}: {reason}"
        event = RunFailed(step=self.progress.step, reason=reason,
                          rank=world.rank if world.distributed else None)
        self.emit(event)
        if self.liveness is not None and not self._lost():
            self.liveness.fail(reason)  # the others stop without a line of their own
        return event

    def _lost(self) -> bool:
        return self.liveness is not None and self.liveness.loss is not None
