"""What every tscu screen shares: typed access to the app, through `TscuHost`."""

from __future__ import annotations

from typing import cast

from textual.screen import Screen
from textual.worker import Worker

from tscu_tui.host import MLX_GROUP, TscuHost

__all__ = ["MLX_GROUP", "TscuScreen"]


class TscuScreen(Screen[None]):
    @property
    def tscu(self) -> TscuHost:
        return cast(TscuHost, self.app)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble: hand each screen worker's state to the app,
        # so a worker that raises reaches its one error dialog. (Subclasses may add their
        # own handler; Textual calls both.)
        self.tscu.on_worker_state_changed(event)
