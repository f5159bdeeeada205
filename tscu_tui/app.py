"""The tscu Textual app."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from tscu_tui import __version__
from tscu_tui.engine.config import Config
from tscu_tui.screens.home import HomeScreen
from tscu_tui.theming import load_themes


class TscuApp(App[None]):
    TITLE = "tscu"
    SUB_TITLE = f"v{__version__}"
    BINDINGS = [Binding("q", "quit", "Quit", id="quit"),
                Binding("ctrl+t", "toggle_theme", "Theme", id="toggle_theme")]

    def __init__(self, config: Config, config_path: Path) -> None:
        super().__init__()
        self._config = config
        self._config_path = config_path

    def on_mount(self) -> None:
        for theme in load_themes():
            self.register_theme(theme)
        if "tscu-dark" in self.available_themes:
            self.theme = "tscu-dark"
        self.push_screen(HomeScreen(self._config, str(self._config_path)))

    def action_toggle_theme(self) -> None:
        """Switch between tscu's dark and light themes."""
        self.theme = "tscu-light" if self.theme == "tscu-dark" else "tscu-dark"
