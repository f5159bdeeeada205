"""One line under the status row: the clock knob's setting, J/token and watts
(`energy_readout`); hidden until there is something to show."""

from __future__ import annotations

from textual.widgets import Static

from tscu_tui.energy_readout import EnergyReadout
from tscu_tui.engine.events import StepEvent


class EnergyLine(Static):
    DEFAULT_CSS = """
    EnergyLine { height: 1; padding: 0 1; color: $text-muted; display: none; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", markup=False, **kwargs)  # type: ignore[arg-type]
        self.readout = EnergyReadout()

    def record(self, e: StepEvent) -> None:
        text = self.readout.record(e)
        if text is not None:
            self.display = True
            self.update(text, layout=False)
