"""The tscu Textual app: four screens, their keys, and one worker-error handler."""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tscu_tui import __version__
from tscu_tui.engine.config import Config
from tscu_tui.host import MLX_GROUP
from tscu_tui.keys import bind, keymap
from tscu_tui.messages import ConfigChanged
from tscu_tui.screens.config import ConfigScreen
from tscu_tui.screens.dataset import DatasetScreen
from tscu_tui.screens.error import ErrorDialog, one_line
from tscu_tui.screens.help import HelpScreen
from tscu_tui.screens.results import ResultsScreen
from tscu_tui.screens.train import TrainScreen
from tscu_tui.terminal import TerminalWatch
from tscu_tui.theming import load_themes

#: after the terminal is lost, how long a running training may take to save and stop
LOST_TERMINAL_GRACE_S = 300.0

#: mode name -> screen class, in the order of the number keys
SCREENS: dict[str, type[Screen[None]]] = {
    "dataset": DatasetScreen, "config": ConfigScreen, "train": TrainScreen,
    "results": ResultsScreen,
}


class TscuApp(App[None]):
    TITLE = "tscu"
    SUB_TITLE = f"v{__version__}"
    MODES = {name: name for name in SCREENS}
    SCREENS = dict(SCREENS)
    BINDINGS = [
        bind("show_dataset", "Dataset", action="app.switch_mode('dataset')"),
        bind("show_config", "Config", action="app.switch_mode('config')"),
        bind("show_train", "Train", action="app.switch_mode('train')"),
        bind("show_results", "Results", action="app.switch_mode('results')"),
        bind("help", "Help"),
        bind("toggle_theme", "Theme", show=False),
        bind("quit", "Quit"),
    ]

    def __init__(self, config: Config, config_path: Path, *, watch_dir: Path | None = None,
                 autostart: bool = False) -> None:
        super().__init__()
        self.config = config
        self.config_path = config_path
        self.watch_dir = watch_dir  # follow a headless run, read-only
        self.autostart = autostart  # start training as the train screen opens
        self._quit_after_stop = False

    def on_mount(self) -> None:
        for theme in load_themes():
            self.register_theme(theme)
        if "tscu-dark" in self.available_themes:
            self.theme = "tscu-dark"
        self.set_keymap(keymap(self.config.keys))
        if not self.is_headless:
            TerminalWatch(self._terminal_lost).start()
        self.switch_mode("train")

    # -- shared state --------------------------------------------------------------------

    def set_config(self, config: Config) -> None:
        """Replace the working config (edited, saved or from a preset) and tell the screens."""
        self.config = config
        self.set_keymap(keymap(config.keys))
        for name in SCREENS:
            if self.is_screen_installed(name):
                self.get_screen(name).post_message(ConfigChanged())

    def keymap_for(self, binding: Binding) -> str:
        """The keys currently bound to `binding` (the config's, else the default)."""
        return keymap(self.config.keys).get(binding.id or "", binding.key)

    def mlx_busy(self) -> bool:
        """Whether an MLX job (training, generation) is running; there is one at a time."""
        return any(w.group == MLX_GROUP and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                   for w in self.workers)

    # -- actions ---------------------------------------------------------------------------

    def action_help(self) -> None:
        groups = [("Everywhere", self.BINDINGS)]
        groups += [(f"{name.title()} screen", cls.BINDINGS) for name, cls in SCREENS.items()]
        self.push_screen(HelpScreen(groups))

    def action_toggle_theme(self) -> None:
        """Switch between tscu's dark and light themes."""
        self.theme = "tscu-light" if self.theme == "tscu-dark" else "tscu-dark"

    async def action_quit(self) -> None:
        """Quit; a running training first stops with a checkpoint, then the app exits."""
        train = self.get_screen("train") if self.is_screen_installed("train") else None
        if isinstance(train, TrainScreen) and train.is_training:
            if not self._quit_after_stop:
                self._quit_after_stop = True
                self.notify("Stopping training with a checkpoint, then quitting...")
                train.request_stop()
            return
        self.exit()

    @property
    def quitting(self) -> bool:
        """Whether the app exits as soon as the running training has stopped."""
        return self._quit_after_stop

    def training_ended(self) -> None:
        """Called by the train screen when its run is over (finished, stopped or failed)."""
        if self._quit_after_stop:
            self.exit()

    def _terminal_lost(self, why: str) -> None:
        """The terminal is gone (on the watch's thread: the event loop may be blocked on
        a write that can never finish). A running training stops with a checkpoint, then
        the process ends: nobody is left to show anything to."""
        train = self._train_screen()
        done = train.stop_for_exit() if train is not None else None
        if done is not None:
            done.wait(LOST_TERMINAL_GRACE_S)
        os._exit(129)  # 128 + SIGHUP, as a shell reports a hung-up job

    def _train_screen(self) -> TrainScreen | None:
        try:
            screen = self.get_screen("train") if self.is_screen_installed("train") else None
        except Exception:  # from another thread, while the app tears down
            return None
        return screen if isinstance(screen, TrainScreen) else None

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name, screen_class in SCREENS.items():
            yield SystemCommand(f"Go to {name}", f"Show the {name} screen",
                                partial(self.switch_mode, name))
            for binding in screen_class.BINDINGS:
                if isinstance(binding, tuple) or not binding.id:
                    continue
                yield SystemCommand(f"{name.title()}: {binding.description}",
                                    binding.tooltip or binding.description,
                                    partial(self._run_on_screen, name, binding.action))
        yield SystemCommand("Help", "Keys and what they do", self.action_help)

    async def _run_on_screen(self, mode: str, action: str) -> None:
        await self.switch_mode(mode)
        await self.screen.run_action(action)

    # -- the one worker-error handler ------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(f"{event.worker.name or 'Background job'} failed",
                            one_line(event.worker.error))

    def show_error(self, title: str, cause: str) -> None:
        self.push_screen(ErrorDialog(title, cause))
