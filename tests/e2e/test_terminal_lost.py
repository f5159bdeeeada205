"""End to end: the app's terminal goes away while it trains (a real pty, a real process).

Closing the pty's master is what `tmux kill-session` or a dropped ssh connection does:
the kernel hangs the terminal up. Started by `make` (the README's `make demo`), the
app is not the session's leader and gets no SIGHUP; it once lived on at 55-85% of a
core, for as long as nobody killed it. Started directly it is the leader and got
SIGHUP, which killed it without a checkpoint. Either way it must now notice within
seconds, stop the run with a checkpoint and exit.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import psutil
import pytest
from pty_terminal import PtyTerminal

from tscu_tui.engine.config import load_config, save_config
from tscu_tui.engine.models.load import EMBEDDED_MODEL

ROOT = Path(__file__).resolve().parents[2]


class Terminal(PtyTerminal):
    """The app on its own pty (tests/pty_terminal.py), with tscu importable from ROOT."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        super().__init__(argv, cwd, {**os.environ, "PYTHONPATH": str(ROOT)})

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)  # a real terminal and a real process: nothing to wait on but time
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("started_by", ["make", "shell"])
def test_a_lost_terminal_stops_the_run_with_a_checkpoint_and_the_app_exits(
        demo_data, tmp_path, started_by):
    out = tmp_path / "run"
    save_config(tmp_path / "tscu.toml", load_config(None, [
        f'model.name="{EMBEDDED_MODEL}"', f'data.path="{demo_data}"', f'output.dir="{out}"',
        "lora.r=4", "train.batch_size=4", "train.gradient_accumulation_steps=1",
        "train.max_steps=500", "train.warmup_steps=2", "train.eval_steps=1000",
        "train.save_steps=1000", "train.eval_batches=2", 'telemetry.source="simulated"',
        "telemetry.interval_seconds=0.05"]))
    tscu = [sys.executable, "-m", "tscu_tui", "--config", "tscu.toml"]
    if started_by == "make":  # `make demo`: make leads the session and waits for tscu
        (tmp_path / "Makefile").write_text(f"run:\n\t{shlex.join(tscu)}\n")
        argv = ["make", "-s", "-f", str(tmp_path / "Makefile")]
    else:
        argv = tscu
    terminal = Terminal(argv, tmp_path)
    events = out / "events.jsonl"
    try:
        _wait(lambda: b"press s to start" in terminal.output, 60, "the app")
        terminal.type("s")
        _wait(lambda: events.exists() and '"StepEvent"' in events.read_text(), 120,
              "training")
        processes = terminal.tree()
        lost = time.monotonic()
        terminal.hang_up()
        gone = psutil.wait_procs(processes, timeout=45)[1] == []
        took = time.monotonic() - lost
        assert gone, f"still running {took:.0f} s after the terminal went away"
    finally:
        for process in terminal.tree():
            process.kill()
        terminal.process.wait(timeout=10)
    assert took < 30
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert records[-1]["event"] == "RunFinished" and records[-1]["reason"] == "stopped"
    assert records[-2]["event"] == "CheckpointEvent" and records[-2]["reason"] == "stop"
    assert records[-2]["step"] == records[-1]["step"] < 500
