"""What the screens need of the app, as a Protocol: the one module both import.

Screens talk to the running app through `TscuHost`, never through `app.py`,
so the app can import its screens without the screens importing it back.
`TscuApp` satisfies the protocol structurally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from textual.binding import Binding
from textual.worker import Worker

from tscu_tui.engine.config import Config

#: the one worker group that runs MLX (training, generation): one such job at a time
MLX_GROUP = "mlx"


class TscuHost(Protocol):
    config: Config
    config_path: Path
    watch_dir: Path | None
    autostart: bool  # start training on the train screen as the app opens (`tscu demo`)

    @property
    def quitting(self) -> bool: ...

    def set_config(self, config: Config) -> None: ...

    def keymap_for(self, binding: Binding) -> str: ...

    def mlx_busy(self) -> bool: ...

    def training_ended(self) -> None: ...

    def show_error(self, title: str, cause: str) -> None: ...

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None: ...
