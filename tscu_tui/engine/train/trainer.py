"""The training loop: LoRA on a 4-bit base under the SCU, in whatever thread runs it.

`Trainer.run` reads top to bottom: join the ranks, open the data and plan the run,
prepare the run folder, set up (`session`: model, adapters, optimizer, resume; `step`:
the compiled optimizer step), assemble what records, governs (`thermal`), evaluates
(`evaluation`) and saves (`run_outputs`) it, run the `loop`, test, write the files.
It never prints and never touches a UI: everything goes to the event sink, and a
failure is one `RunFailed`, never an exception out of `run`.
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
from tscu_tui.engine.events import Command, Event, EventSink, LogEvent, RunFailed, RunFinished
from tscu_tui.engine.models.threads import BlasThreadPolicy
from tscu_tui.engine.report.reporters import Reporters, open_reporters
from tscu_tui.engine.telemetry.base import SourceUnavailable
from tscu_tui.engine.train.checkpoint import latest_checkpoint
from tscu_tui.engine.train.evaluation import Evaluation
from tscu_tui.engine.train.loop import Loop
from tscu_tui.engine.train.parallel import DataParallel, loss_reason
from tscu_tui.engine.train.recorder import RunRecorder
from tscu_tui.engine.train.run_outputs import RunOutputs
from tscu_tui.engine.train.run_plan import plan_run
from tscu_tui.engine.train.selection import NO_TEST_AFTER
from tscu_tui.engine.train.session import (
    Progress,
    Session,
    blas_thread_policy,
    check_world,
    open_session,
    prepare_run_dir,
    setup_problems,
)
from tscu_tui.engine.train.step import OptimizerStep
from tscu_tui.engine.train.thermal import ThermalControl


class Trainer:
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
        self.thermal: ThermalControl | None = None
        self.session: Session | None = None
        self.blas_policy: BlasThreadPolicy | None = None  # made as setup starts
        self.outputs: RunOutputs | None = None
        self.progress = Progress()  # the session's, once there is one
        self.parallel = DataParallel()  # one process until run() joins a distributed world
        self.liveness: Liveness | None = None
        self._emit_lock = threading.Lock()  # the watchdog's thread may report a lost rank
        self._failed = False

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
                    # before minutes of model loading
                    check_world(self.run_dir, ckpt.state, self.parallel.world.size)
            self._setup()
            loop = self._assemble()
            reason = loop.run()
            if reason not in NO_TEST_AFTER:
                loop.evaluation.test_at_end()
            finished = loop.outputs.finish(reason, time.perf_counter() - started)
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

    def _prepare_run_dir(self) -> None:
        prepare_run_dir(self.config, self.resume)

    def _setup(self) -> None:
        """The session (data, model and adapters, optimizer, resumed state) and its step."""
        self.blas_policy = blas_thread_policy()  # from now: it sees the load while we load
        self.session = open_session(self.config, self.data, self.parallel, self.resume,
                                    self.log)
        self.resume, self.progress = self.session.resumed, self.session.progress
        self._build_steps()

    def _build_steps(self) -> None:
        self.step = OptimizerStep(self.session)

    def _assemble(self) -> Loop:
        """What records the session (rank 0), governs, evaluates and saves it: the loop."""
        session, cfg = self.session, self.config
        if self.parallel.is_main:  # rank 0 alone writes the run folder
            recorder = RunRecorder(self.run_dir, cfg.train.logging_steps, session.history)
            if session.history is not None:
                recorder.rewind(self.progress.step)
            with self._emit_lock:
                self._recorder = recorder
            if cfg.report.to:
                reporters = open_reporters(cfg, self.run_dir, self.progress.step)
                with self._emit_lock:
                    self._reporters = reporters
        for problem in setup_problems(self.parallel):
            self.log(problem, "warning")
        thermal = self.thermal = ThermalControl(
            cfg, on_warning=lambda m: self.log(m, "warning"), on_info=self.log)
        thermal.distributed = self.parallel.distributed
        if session.resumed and "thermal" in session.saved:
            thermal.load_state_dict(session.saved["thermal"])
        evaluation = Evaluation(session, thermal, self.emit, self.log)
        self.outputs = RunOutputs(session, self.plan, thermal, evaluation.tests,
                                  self._recorder, self.emit, self.log)
        return Loop(session, self.plan, self.step, evaluation, thermal, self.outputs,
                    self.blas_policy, self.commands, self.emit, self.log)

    # ------------------------------------------------------------------ failure
    def _rank_lost(self, loss: Loss) -> None:
        """The watchdog's verdict (on its thread): report it once; the command exits."""
        if self.thermal is not None:
            self.thermal.stop()  # e.g. the GPU's own power limit back before the exit
        saved = self.outputs.last_checkpoint if self.outputs is not None else None
        if self.outputs is None and self.session is not None:  # resumed, not yet assembled
            saved = self.session.saved.get("step")
        # that is rank 0's own last checkpoint; the others', as rank 0 said it
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
