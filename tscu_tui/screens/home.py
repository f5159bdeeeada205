"""The start screen: what tscu will train, and where to go next."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tscu_tui.engine.config import Config


class HomeScreen(Screen[None]):
    """Summary of the loaded config; the working screens arrive with the TUI milestone."""

    DEFAULT_CSS = """
    HomeScreen > Vertical { padding: 1 2; }
    HomeScreen .title { text-style: bold; color: $accent; }
    HomeScreen .muted { color: $text-muted; }
    """

    def __init__(self, config: Config, config_path: str) -> None:
        super().__init__()
        self._config = config
        self._config_path = config_path

    def compose(self) -> ComposeResult:
        c = self._config
        yield Header()
        with Vertical():
            yield Static("tscu: LoRA fine-tuning under a Thermodynamic Shannon Control Unit",
                         classes="title")
            yield Static(f"config      {self._config_path}")
            yield Static(f"model       {c.model.name}", id="model")
            yield Static(f"dataset     {c.data.dataset} -> {c.data.path}")
            yield Static(f"LoRA        r={c.lora.r} alpha={c.lora.alpha:g} "
                         f"on {', '.join(c.lora.target_modules)}")
            yield Static(f"SCU         {c.scu.mode}, target S = {c.scu.target_s:g}")
            yield Static(f"T-SCU       budget {c.tscu.power_budget_watts:g} W, "
                         f"max {c.tscu.max_temperature_celsius:g} C, "
                         f"telemetry {c.telemetry.source}")
            yield Static("\nThe dataset, config, train and results screens are being built; "
                         "meanwhile use `tscu prepare` and `tscu check-config`.",
                         classes="muted")
        yield Footer()
