"""What every tscu screen shares: typed access to the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from tscu_tui.app import TscuApp


#: the one worker group that runs MLX (training, generation): one such job at a time
MLX_GROUP = "mlx"


class TscuScreen(Screen[None]):
    @property
    def tscu(self) -> TscuApp:
        return cast("TscuApp", self.app)
