"""The results screen (being built)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer, Header, Static

from tscu_tui.screens.base import TscuScreen


class ResultsScreen(TscuScreen):
    BINDINGS = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("The results screen is being built.", id="placeholder")
        yield Footer()
