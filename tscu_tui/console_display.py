"""The headless progress display for `tscu train` and `tscu demo` (Rich).

A live panel on a terminal; plain log lines when output is not a terminal
(CI, pipes), so logs stay readable. T-SCU readouts show n/a until the run has
telemetry; the source and its kind are always named.
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tscu_tui.energy_readout import EnergyReadout
from tscu_tui.engine.event_lines import event_line
from tscu_tui.engine.events import EvalEvent, Event, LogEvent, RunStarted, StepEvent
from tscu_tui.engine.formatting import fmt, information, s_target


class ConsoleDisplay:
    """Consumes engine events on the main thread and draws them."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live_mode = self.console.is_terminal
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=self.console)
        self.task = self.progress.add_task("training", total=None)
        self.last_step: StepEvent | None = None
        self.heldout: float | None = None
        self.first_heldout: float | None = None
        self.information = ""  # the last evaluation's information per joule, as text
        self.energy = EnergyReadout()  # the clock setting and J/token beside the watts
        self.logging_steps = 10
        self._live: Live | None = None

    def __enter__(self) -> ConsoleDisplay:
        if self.live_mode:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)

    def _render(self) -> Group:
        s = self.last_step
        table = Table.grid(padding=(0, 2))
        for _ in range(4):
            table.add_column()
        table.add_row("loss", fmt(s and s.loss, ".4f"), "held-out BPT", fmt(self.heldout, ".4f"))
        table.add_row("S", (f"{s.s:.4f} (target {s_target(s.s_target)})" if s else "n/a"),
                      "lambda", fmt(s and s.lambda_reg, ".4g"))
        table.add_row("tokens/s", fmt(s and s.tokens_per_s, ".0f"), "lr", fmt(s and s.lr, ".3g"))
        table.add_row("power", fmt(s and s.power_w, ".1f", " W"),
                      "temperature", fmt(s and s.temp_c, ".1f", " °C"))
        source = (f"{s.telemetry_source} ({s.telemetry_kind})" if s and s.telemetry_source
                  else "none yet")
        if s and s.telemetry_status:
            source += f" FAILED, {s.telemetry_status}"
        table.add_row("control factor", fmt(s and s.control_factor, ".2f"), "telemetry", source)
        table.add_row("information", self.information or "n/a", "clock",
                      self.energy.text or "n/a")
        return Group(self.progress, table)

    def _says(self, event: Event) -> bool:
        """Whether to print a line for `event`: steps only without the live panel (every
        `logging_steps` and the last), info messages the panel does not show."""
        match event:
            case StepEvent():
                return not self.live_mode and (event.step % self.logging_steps == 0
                                               or event.step == event.max_steps)
            case LogEvent():
                return event.level != "info" or event.step is None or not self.live_mode
        return True

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def __call__(self, event: Event) -> None:
        match event:
            case RunStarted():
                self.progress.update(self.task, total=event.max_steps,
                                     completed=event.start_step)
            case StepEvent():
                self.last_step = event
                self.energy.record(event)
                self.progress.update(self.task, completed=event.step)
            case EvalEvent():
                self.heldout = event.heldout_bpt
                if self.first_heldout is None:
                    self.first_heldout = event.heldout_bpt
                self.information = information(event) or self.information
        if self._says(event) and (line := event_line(event, "console")):
            if isinstance(event, StepEvent) and self.energy.text:
                line += f" | {self.energy.text}"  # the clock knob and J/token by the watts
            self._print(line)
        if self._live is not None:
            self._live.update(self._render())
