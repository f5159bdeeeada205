"""The tscu Textual app."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from tscu_tui import __version__
from tscu_tui.engine.config import Config
from tscu_tui.screens.home import HomeScreen


class TscuApp(App[None]):
    TITLE = "tscu"
    SUB_TITLE = f"v{__version__}"
    BINDINGS = [Binding("q", "quit", "Quit", id="quit")]

    def __init__(self, config: Config, config_path: Path) -> None:
        super().__init__()
        self._config = config
        self._config_path = config_path

    def on_mount(self) -> None:
        self.push_screen(HomeScreen(self._config, str(self._config_path)))
