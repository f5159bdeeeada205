"""A run logged to Weights & Biases, online when it can be, offline otherwise, never
asking for anything.

Its files go to `RUN_DIR/wandb/` (or WANDB_DIR's). `report.wandb_mode = "auto"`
chooses: WANDB_MODE if set; otherwise online only with a login (WANDB_API_KEY, or the
entry `wandb login` writes to ~/.netrc) and a server that answers within seconds;
otherwise offline, into `wandb/offline-run-*`, which `wandb sync` uploads later.
Online without a login is refused here, so wandb never prompts for a key on the
terminal the app draws on; its console capture, banners and system-stats thread are
off (the app's screen and the governor's power readings are not to be disturbed).
"""

from __future__ import annotations

import netrc
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tscu_tui.engine.config import Config, to_dict
from tscu_tui.engine.events import Event, RunFinished, RunStarted
from tscu_tui.engine.report.base import ReporterUnavailable, Say
from tscu_tui.engine.report.scalars import hyperparameters, scalars
from tscu_tui.engine.runs.files import CURVES_FILE

DEFAULT_SERVER = "https://api.wandb.ai"
REACH_TIMEOUT_S = 3.0
INIT_TIMEOUT_S = 30.0


def _server_host() -> str:
    return urlparse(os.environ.get("WANDB_BASE_URL") or DEFAULT_SERVER).hostname or ""


def logged_in() -> bool:
    """A W&B key is at hand without asking: WANDB_API_KEY or a netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return netrc.netrc(str(path)).authenticators(_server_host()) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def reachable(host: str, timeout: float = REACH_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def choose_mode(setting: str) -> tuple[str, str]:
    """(mode, why) for `report.wandb_mode`."""
    if setting == "offline":
        return "offline", "report.wandb_mode = offline"
    if setting == "online":
        if not logged_in():
            raise ReporterUnavailable("report.wandb_mode = online but there is no W&B login "
                                      "(set WANDB_API_KEY or run `wandb login`); tscu never "
                                      "asks for one")
        return "online", "report.wandb_mode = online"
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"], "WANDB_MODE"
    if not logged_in():
        return "offline", "no W&B login"
    if not reachable(_server_host()):
        return "offline", f"{_server_host()} did not answer"
    return "online", "logged in"


class WandbReporter:
    name = "wandb"

    def __init__(self, config: Config, run_dir: Path, start_step: int, info: Say) -> None:
        try:
            import wandb
        except ImportError:
            raise ReporterUnavailable("wandb is not installed (pip install 'tscu[wandb]')"
                                      ) from None
        self.wandb = wandb
        self.run_dir = run_dir
        self.config = to_dict(config)
        mode, why = choose_mode(config.report.wandb_mode)
        if mode == "online" and not logged_in():  # WANDB_MODE=online without a key
            raise ReporterUnavailable("WANDB_MODE is online but there is no W&B login (set "
                                      "WANDB_API_KEY or run `wandb login`)")
        settings = wandb.Settings(
            mode=mode, console="off", silent=True, quiet=True, show_info=False,
            show_warnings=False, x_disable_stats=True, x_save_requirements=False,
            disable_git=True, init_timeout=INIT_TIMEOUT_S)
        name = run_dir.resolve().name + (f" (resumed at step {start_step})" if start_step else "")
        self.run: Any = wandb.init(project=config.report.wandb_project, name=name,
                                   dir=os.environ.get("WANDB_DIR") or str(run_dir),
                                   config=hyperparameters(self.config), settings=settings)
        if mode == "offline":
            info(f"W&B: offline ({why}): {self.run.settings.sync_dir}; upload it later with "
                 f"`wandb sync {self.run.settings.sync_dir}`")
        elif mode != "disabled":
            info(f"W&B: {self.run.url or 'online'}")

    def __call__(self, event: Event) -> None:
        values: dict[str, Any] = dict(scalars(event))
        if isinstance(event, RunStarted):
            self.run.config.update(hyperparameters(self.config, event), allow_val_change=True)
        elif isinstance(event, RunFinished):
            if (self.run_dir / CURVES_FILE).is_file():
                values["training_curves"] = self.wandb.Image(str(self.run_dir / CURVES_FILE))
            self.run.summary.update({"status": event.reason, "best_bpt": event.best_bpt,
                                     "final_bpt": event.final_bpt})
        if values:
            self.run.log(values, step=event.step)

    def close(self, failed: bool) -> None:
        try:
            self.run.finish(exit_code=1 if failed else 0)
        finally:
            self.wandb.teardown()  # its service process ends with the run, not the app
