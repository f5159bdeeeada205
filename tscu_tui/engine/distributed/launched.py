"""A distributed run started from inside another program (the app's train screen).

`run_launched` writes the config where every local rank can read it, starts
the ranks through `Launch` (mlx.launch), and sends rank 0's events, as rank 0
records them, to the caller's sink: the same events an in-process Trainer
emits, so the train screen draws them alike. STOP in `commands` reaches the
ranks as Ctrl+C (they agree to stop and save a checkpoint); PAUSE and SAVE
have no channel to the ranks and are refused with a log line.
"""

from __future__ import annotations

import os
import queue
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tscu_tui.engine.config import Config, save_config
from tscu_tui.engine.distributed.launch import Launch, plan_launch
from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.events import Command, EventSink, LogEvent, RunFailed, RunFinished
from tscu_tui.engine.runs.files import EVENTS_FILE
from tscu_tui.engine.runs.follow import parse_events


class _Lines:
    """A text sink for the launcher's output: each complete line to `say`."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say, self.buffer = say, ""

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            if line.strip():
                self.say(line)
        return len(text)

    def flush(self) -> None:
        pass


class _Tail:
    """New complete lines of rank 0's events.jsonl (a file rank 0 may replace at start)."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        stat = path.stat() if path.exists() else None
        self.inode = stat.st_ino if stat else None
        self.offset = stat.st_size if stat and resume else 0

    def read(self) -> list[str]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        if stat.st_ino != self.inode:  # a new run replaced the old file
            self.inode, self.offset = stat.st_ino, 0
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        return complete.decode("utf-8").splitlines()


def run_launched(config: Config, sink: EventSink, commands: queue.Queue[Command], *,
                 resume: bool = False, poll_s: float = 0.25) -> int:
    """Run `config` over `[distributed]` ranks; returns the launcher's exit status."""
    plan = plan_launch(None, None, config.distributed)
    if plan is None:
        raise TscuError("distributed.ranks or distributed.hostfile must ask for 2 or more "
                        "ranks")
    if config.train.batch_size % plan.ranks:
        raise TscuError(f"train.batch_size = {config.train.batch_size} cannot be split over "
                        f"{plan.ranks} ranks: make it a multiple of {plan.ranks}")

    errors: list[str] = []
    ended: list[bool] = [False]

    def say(line: str) -> None:
        if line.startswith("tscu: error: "):
            errors.append(line.removeprefix("tscu: error: "))
        sink(LogEvent(level="error" if line.startswith("tscu: error: ") else "info",
                      message=f"ranks: {line}"))

    def forward(lines: list[str], first: int) -> None:
        for event in parse_events(lines, str(tail.path), first):
            sink(event)
            ended[0] = isinstance(event, RunFinished | RunFailed)

    fd, name = tempfile.mkstemp(prefix="tscu-launch-", suffix=".toml")
    os.close(fd)
    config_file = Path(name)
    try:
        save_config(config_file, config)
        args = ["--config", str(config_file), "train"] + (["--resume"] if resume else [])
        run_dir = Path(config.output.dir)
        tail = _Tail(run_dir / EVENTS_FILE, resume)
        launch = Launch(plan, args, run_dir, out=_Lines(say),  # type: ignore[arg-type]
                        err=_Lines(say))  # type: ignore[arg-type]
        say(f"launching {plan.ranks} ranks through mlx.launch ({', '.join(plan.hosts)})")
        launch.start()
        while True:
            running = launch.process.poll() is None
            forward(tail.read(), 1)
            _relay(commands, launch, say)
            if not running:
                break
            launch.tick()
            time.sleep(poll_s)
        status = launch.wait()
        forward(tail.read(), 1)  # and the end record the launcher may have added
        if not ended[0]:  # the ranks failed before rank 0 recorded anything
            sink(RunFailed(step=0, reason=errors[-1] if errors else
                           f"the ranks ended (status {status}) without starting the run"))
        return status
    finally:
        config_file.unlink(missing_ok=True)


def _relay(commands: queue.Queue[Command], launch: Launch, say: Callable[[str], None]) -> None:
    while True:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            return
        if command is Command.STOP:
            launch.interrupt()
        else:
            say(f"{command.value} is not available for a distributed run (stop saves a "
                "checkpoint)")
