"""The train screen's jobs: training in the app's one MLX worker (in this process, or
ranks through mlx.launch), following a run started elsewhere, and the upload after it.

`TrainScreen` subclasses `TrainJobs`; its `__init__` sets up the state declared here.
Every job reaches the screen through `bridge` (engine events) or `_write_log`.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

from textual import work
from textual.widgets import Log

from tscu_tui.engine.config import Config
from tscu_tui.engine.events import Command
from tscu_tui.messages import EventBridge
from tscu_tui.screens.base import MLX_GROUP, TscuScreen


class TrainJobs(TscuScreen):
    """The workers behind the train screen's keys (see `TrainScreen`)."""

    bridge: EventBridge
    commands: queue.Queue[Command]
    _follow_stop: threading.Event
    _run_done: threading.Event  # set once the run's worker has returned

    @work(thread=True, exclusive=True, exit_on_error=False, group=MLX_GROUP, name="Training")
    def _train(self, config: Config, resume: bool) -> None:
        from tscu_tui.engine.models.runtime import release_streams
        from tscu_tui.engine.train.trainer import Trainer

        try:
            Trainer(config, self.bridge, self.commands, resume=resume).run()
        finally:
            release_streams()  # MLX needs each thread to release its streams
            self._run_done.set()

    @work(thread=True, exclusive=True, exit_on_error=False, group=MLX_GROUP,
          name="Distributed training")
    def _launch(self, config: Config, resume: bool) -> None:
        from tscu_tui.engine.distributed.launched import run_launched

        try:
            run_launched(config, self.bridge, self.commands, resume=resume)
        finally:
            self._run_done.set()

    @work(thread=True, exclusive=True, exit_on_error=False, group="follow", name="Follow run")
    def _follow(self, run_dir: Path) -> None:
        from tscu_tui.engine.runs.follow import follow_events

        follow_events(run_dir, self.bridge, self._follow_stop)

    @work(thread=True, exclusive=True, exit_on_error=False, group="hub", name="Upload")
    def _push(self, run_dir: str, repo_id: str, private: bool, revision: str) -> None:
        from tscu_tui.engine.hub.push import push_run

        def say(line: str) -> None:
            self.app.call_from_thread(self._write_log, f"hub: {line}")

        url = push_run(run_dir, repo_id, private=private, revision=revision, progress=say)
        say(f"uploaded: {url}")

    def _push_if_asked(self, run_dir: str) -> None:
        """`hub.push_to_hub = true`: upload the finished run, as `tscu train` does."""
        hub = self.tscu.config.hub
        if not hub.push_to_hub:
            return
        if not hub.hub_model_id:
            self._write_log("warning: hub.push_to_hub is true but hub.hub_model_id is empty; "
                            "upload from the results screen (u)")
            return
        self._write_log(f"hub: uploading {run_dir} to {hub.hub_model_id}")
        self._push(run_dir, hub.hub_model_id, hub.private, hub.revision)

    def _write_log(self, line: str | None) -> None:
        """One line in the log pane (None, an event the screen does not log: nothing)."""
        if line is not None:
            self.query_one("#log", Log).write_line(line)
