"""What every tscu screen shares: typed access to the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen
from textual.worker import Worker

if TYPE_CHECKING:
    from tscu_tui.app import TscuApp


#: the one worker group that runs MLX (training, generation): one such job at a time
MLX_GROUP = "mlx"


class TscuScreen(Screen[None]):
    @property
    def tscu(self) -> TscuApp:
        return cast("TscuApp", self.app)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble: hand each screen worker's state to the app,
        # so a worker that raises reaches its one error dialog. (Subclasses may add their
        # own handler; Textual calls both.)
        self.tscu.on_worker_state_changed(event)
