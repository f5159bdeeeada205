"""The train screen: start, pause, stop and save by one key; live charts and a log.

The engine runs in one thread worker (the app's MLX group) and reaches this
screen through an `EventBridge`: messages coalesce, so the UI handles one
batch of events per refresh and never slows the engine. With `tscu watch
RUN_DIR` the same screen follows a run started elsewhere, read-only.
"""

from __future__ import annotations

import contextlib
import queue
import threading

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Log, ProgressBar, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from tscu_tui.engine.config import Config
from tscu_tui.engine.event_lines import event_line, governor_line
from tscu_tui.engine.events import (
    CheckpointEvent,
    Command,
    EvalEvent,
    Event,
    LogEvent,
    RunFailed,
    RunFinished,
    RunStarted,
    SampleEvent,
    StateEvent,
    StepEvent,
)
from tscu_tui.engine.formatting import duration, energy, fmt, s_target
from tscu_tui.engine.train.run_plan import plan_line
from tscu_tui.engine.train.selection import FitState, FitWatch
from tscu_tui.keys import bind
from tscu_tui.messages import ConfigChanged, EngineEvents, EventBridge
from tscu_tui.screens.confirm import ConfirmDialog
from tscu_tui.screens.plot import PlotScreen
from tscu_tui.screens.train_jobs import TrainJobs
from tscu_tui.widgets.energy_line import EnergyLine
from tscu_tui.widgets.metric_panel import MetricPanel
from tscu_tui.widgets.sample_answers import SampleAnswers
from tscu_tui.widgets.train_charts import TrainCharts

REDRAW_S = 0.5  # charts and readouts redraw at most this often, however fast events come
CONTROL_LOG_DELTA = 0.1  # log a governor action when c has moved this far since the last


class TrainScreen(TrainJobs):
    CSS_PATH = "train.tcss"
    BINDINGS = [
        bind("start_training", "Start"),
        bind("pause_training", "Pause/Resume"),
        bind("stop_training", "Stop"),
        bind("save_checkpoint", "Save now"),
        bind("plot_chart", "Plot"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.bridge = EventBridge(self)
        self.commands: queue.Queue[Command] = queue.Queue()
        self.state = "idle"  # idle | starting | running | paused | stopping | finished | failed
        self.stopped_run: str | None = None  # a run this session stopped: `s` resumes it
        self.last_step: StepEvent | None = None
        self.last_control: float | None = None
        self.bits_per_j: float | None = None  # information per joule since the start
        self.mdl_bits_per_j: float | None = None
        self.events_seen = 0
        self.fit = FitWatch()
        self.steps_per_epoch: float | None = None
        self._dirty = False
        self._worker: Worker[None] | None = None
        self._follow_stop = threading.Event()
        self._run_done = threading.Event()  # set once the run's worker has returned
        self._run_done.set()

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="status-row"):
            yield Static("", id="run-state", markup=False)
            yield Static("", id="telemetry-source", markup=False)
        yield Static("", id="nodes", markup=False)  # distributed runs: watts, °C per node
        yield EnergyLine(id="energy-line")  # clock setting, J/token, watts
        yield Static("", id="fit", markup=False)  # the best checkpoint; overfitting
        with Horizontal(id="progress-row"):
            yield ProgressBar(total=1, show_eta=False, show_percentage=True, id="progress")
            yield Static("", id="eta", markup=False)
        yield TrainCharts(id="charts")
        yield SampleAnswers(id="answers", markup=False)
        yield Log(id="log", max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(REDRAW_S, self._redraw_if_dirty)
        self._show_idle()
        if self.tscu.watch_dir is not None:
            self.state = "watching"
            self._follow(self.tscu.watch_dir)
        self._render_status()
        self.redraw()
        if self.tscu.autostart and not self.read_only:
            self.call_after_refresh(self.run_action, "start_training")

    def on_unmount(self) -> None:
        self._follow_stop.set()

    @property
    def read_only(self) -> bool:
        return self.tscu.watch_dir is not None

    @property
    def is_training(self) -> bool:
        return self.state in ("starting", "running", "paused", "stopping")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide keys that cannot act now (all of them when following a run)."""
        if action not in ("start_training", "pause_training", "stop_training",
                          "save_checkpoint"):
            return True  # plotting works in every state, watching included
        if self.read_only:
            return False
        if action == "start_training":
            return not self.is_training
        return self.state in ("running", "paused")

    # -- actions ---------------------------------------------------------------------------

    async def action_start_training(self) -> None:
        if self.is_training or self.read_only:
            return
        if self._worker is not None:
            with contextlib.suppress(WorkerFailed, WorkerCancelled):
                await self._worker.wait()  # the last run has ended; let its thread finish
        if self.tscu.mlx_busy():
            self.notify("Another MLX job is running; wait for it to finish.", severity="warning")
            return
        config = self.tscu.config
        from tscu_tui.engine.models.memory import memory_warning

        warning = memory_warning(config)
        if warning is None:
            self._begin(config)
            return

        def answered(go: bool | None) -> None:
            if go and not self.is_training:
                self._begin(config)
            elif not go:
                self._write_log(f"not started: {warning}")

        self.app.push_screen(ConfirmDialog("This run may not fit in memory", warning), answered)

    def _begin(self, config: Config) -> None:
        resume = self.stopped_run == config.output.dir
        self._reset_view()
        self.charts.set_references(config)
        self.state = "starting"
        self._write_log(f"{'resuming' if resume else 'starting'} {config.model.name} on "
                        f"{config.data.path} -> {config.output.dir}")
        self.commands = queue.Queue()
        self._run_done = threading.Event()
        if config.distributed.ranks > 1 or config.distributed.hostfile:
            self._worker = self._launch(config, resume)  # ranks through mlx.launch
        else:
            self._worker = self._train(config, resume)
        self._render_status()
        self.refresh_bindings()

    def action_pause_training(self) -> None:
        if self.state in ("running", "paused"):
            self.commands.put(Command.RESUME if self.state == "paused" else Command.PAUSE)

    def action_stop_training(self) -> None:
        self.request_stop()

    def action_plot_chart(self) -> None:
        """The focused chart (else the first) as a full-size plot with axes."""
        focused = self.focused if isinstance(self.focused, MetricPanel) else None
        panel = focused or self.query(MetricPanel).first()
        self.app.push_screen(PlotScreen(panel.label, panel.unit, panel.history(),
                                        panel.references))

    def action_save_checkpoint(self) -> None:
        if self.state in ("running", "paused"):
            self.commands.put(Command.SAVE)
            self._write_log("checkpoint requested")

    def stop_for_exit(self) -> threading.Event | None:
        """From any thread (the app's terminal is gone): ask a running training to stop
        with a checkpoint, touching no widget; the event is set once its worker has
        returned. None when nothing runs."""
        if not self.is_training:
            return None
        self.commands.put(Command.STOP)
        return self._run_done

    def request_stop(self) -> None:
        """Ask the trainer to checkpoint and stop (a paused run is woken to do it)."""
        if self.is_training and self.state != "stopping":
            self.commands.put(Command.STOP)
            self.state = "stopping"
            self._write_log("stop requested: saving a checkpoint")
            self._render_status()
            self.refresh_bindings()

    # -- events ----------------------------------------------------------------------------

    def on_engine_events(self, message: EngineEvents) -> None:
        events = message.bridge.drain()
        state = self.state
        for event in events:
            self.apply(event)
        if self.state != state:
            self.refresh_bindings()  # the footer shows only the keys that act now
        self._dirty = self._dirty or bool(events)
        if any(isinstance(e, RunStarted | RunFinished | RunFailed | StateEvent) for e in events):
            self.redraw()  # state changes show at once; steps wait for the next tick

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self.redraw()

    def on_config_changed(self, message: ConfigChanged) -> None:
        if not self.is_training and not self.read_only:
            self._show_idle()
            self._render_status()

    def apply(self, event: Event) -> None:
        """Fold one engine event into the screen's state (drawn later by `redraw`)."""
        self.events_seen += 1
        line = event_line(event, "screen")
        match event:
            case RunStarted():
                self.state = "running" if not self.read_only else "watching"
                self.query_one("#progress", ProgressBar).update(total=event.max_steps,
                                                                progress=event.start_step)
                self.charts.set_target(event.s_target)
                self.steps_per_epoch = event.steps_per_epoch
                self._write_log(line)
                if event.telemetry:
                    self._write_log(f"telemetry: {event.telemetry}")
            case StepEvent():
                self._apply_step(event)
            case EvalEvent():
                self._apply_fit(self.fit.evaluate(event))
                self.bits_per_j = event.eta_cumulative_bits_per_j
                self.mdl_bits_per_j = event.mdl_eta_cumulative_bits_per_j
                self.charts.record_eval(event)
                self._write_log(line)
            case SampleEvent():
                self.query_one(SampleAnswers).show(event)
            case CheckpointEvent():
                self._write_log(line)
            case LogEvent():
                if event.level != "info" or event.step is None:
                    self._write_log(line)
            case StateEvent():
                if not self.read_only and self.state != "stopping":
                    self.state = event.state
                self._write_log(line)
            case RunFinished():
                self._end(line, "finished")
                if event.reason == "stopped":
                    self.stopped_run = event.run_dir
                if not self.read_only and not self.tscu.quitting:
                    self._push_if_asked(event.run_dir)
            case RunFailed():
                self._end(line, "failed")
                if not self.read_only:
                    self.tscu.show_error("Training failed", event.reason)

    def _apply_fit(self, state: FitState) -> None:
        """Say which checkpoint is best, and when the run overfits (logged once)."""
        line = self.query_one("#fit", Static)
        if state.overfitting and not line.has_class("overfitting"):
            self._write_log(f"warning: {state.describe()}")
        line.set_class(state.overfitting, "overfitting")
        line.display = True
        line.update(state.describe(), layout=False)

    def _apply_step(self, e: StepEvent) -> None:
        self.last_step = e
        self.fit.step(e)
        self.charts.record_step(e)
        self.query_one(EnergyLine).record(e)
        if e.node_power_w is not None:
            nodes = self.query_one("#nodes", Static)
            nodes.display = True
            nodes.update("  ".join(
                f"node {rank}: {fmt(w, '.1f', ' W')} {fmt(t, '.1f', ' °C')}"
                for rank, (w, t) in enumerate(zip(e.node_power_w, e.node_temp_c or [],
                                                  strict=False))), layout=False)
        c = e.control_factor
        if c is not None and (self.last_control is None
                              or abs(c - self.last_control) > CONTROL_LOG_DELTA):
            if self.last_control is not None:
                self._write_log(governor_line(self.last_control, e))
            self.last_control = c

    def _end(self, line: str, state: str) -> None:
        self._write_log(line)
        self.state = state
        self.refresh_bindings()
        if not self.read_only:
            self.tscu.training_ended()

    # -- drawing ---------------------------------------------------------------------------

    @property
    def charts(self) -> TrainCharts:
        return self.query_one(TrainCharts)

    def panel(self, panel_id: str) -> MetricPanel:
        return self.charts.panel(panel_id)

    def redraw(self) -> None:
        self._dirty = False
        self.charts.redraw()
        if self.last_step is not None:
            self.query_one("#progress", ProgressBar).update(total=self.last_step.max_steps,
                                                            progress=self.last_step.step)
        self._render_status()

    def _render_status(self) -> None:
        e = self.last_step
        state = self.state
        if state == "idle":
            state = f"idle: press {self._key('start_training')} to start"
        elif state == "watching":
            state = f"watching {self.tscu.watch_dir} (read-only)"
        elif self.read_only and state in ("finished", "failed"):
            state = f"watched run {state}"
        self._set("#run-state", state)
        if e is not None and e.telemetry_source:
            source = f"telemetry {e.telemetry_source} ({e.telemetry_kind})"
            if e.telemetry_status:  # failed or silent: said, never shown as readings
                source += f" FAILED, {e.telemetry_status}"
        elif e is not None:
            source = "telemetry none (no readings)"
        else:
            source = f"telemetry {self.tscu.config.telemetry.source} (not started)"
        self._set("#telemetry-source", source)
        eta = "" if e is None else f"step {e.step}/{e.max_steps}"
        if e is not None and self.steps_per_epoch:
            eta += f" (epoch {e.step / self.steps_per_epoch:.1f})"
        if e is not None:
            eta += f"  ETA {duration(e.eta_s)}"
        if e is not None and e.energy_j is not None:
            eta += f"  {energy(e.energy_j)}"
        if self.bits_per_j is not None:
            eta += f"  {self.bits_per_j:.3g} bits/J"
        if self.mdl_bits_per_j is not None:  # penalty on: the MDL view beside it
            eta += f" (MDL {self.mdl_bits_per_j:.3g})"
        if e is not None and e.peak_memory_bytes:
            eta += f"  peak {e.peak_memory_bytes / 2**30:.2f} GiB"
        self._set("#eta", eta)

    def _set(self, selector: str, text: str) -> None:
        """Update a fixed-width line only when its text changed (no relayout)."""
        widget = self.query_one(selector, Static)
        if str(widget.content) != text:
            widget.update(text, layout=False)

    def _show_idle(self) -> None:
        c = self.tscu.config
        self.charts.set_references(c)
        if self.state == "idle":
            self.query_one("#log", Log).clear()
            self._write_log(f"model {c.model.name}, data {c.data.path}, run dir {c.output.dir}")
            self._write_log(f"length: {plan_line(c)}")
            self._write_log(f"SCU {c.scu.mode} S*={s_target(c.scu.target_s)}; T-SCU "
                            f"{'on' if c.tscu.enabled else 'off'}, budget "
                            f"{c.tscu.power_budget_watts:g} W, max "
                            f"{c.tscu.max_temperature_celsius:g} °C")

    def _reset_view(self) -> None:
        self.charts.clear()
        self.fit = FitWatch()
        self.query_one("#fit", Static).display = False
        self.last_step = None
        self.last_control = None
        self.bits_per_j = self.mdl_bits_per_j = None
        self.query_one(SampleAnswers).clear()
        self.query_one("#progress", ProgressBar).update(total=None, progress=0)

    def _key(self, binding_id: str) -> str:
        binding = next(b for b in self.BINDINGS if b.id == binding_id)  # type: ignore[union-attr]
        return self.tscu.keymap_for(binding)  # type: ignore[arg-type]
