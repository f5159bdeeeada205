"""End to end: the real `tscu` in a real terminal (tmux), driven by send-keys.

The app trains the embedded model on the demo data; the test reads the screen
with capture-pane and looks for live numbers and chart glyphs. The app runs
this checkout's code (PYTHONPATH), on a tmux server of its own (-L), so other
tmux sessions and other installs of tscu cannot leak in.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tscu_tui.engine.config import load_config, save_config
from tscu_tui.engine.models.load import EMBEDDED_MODEL

ROOT = Path(__file__).resolve().parents[2]
BARS = set("▂▃▄▅▆▇█")  # chart glyphs above the baseline: the chart has data


def tscu_command(*args: str) -> str:
    """A shell command running this checkout's tscu (not whatever `tscu` is installed), in
    the pane's size (COLUMNS/LINES inherited from pytest would override it)."""
    return (f"env -u COLUMNS -u LINES PYTHONPATH={shlex.quote(str(ROOT))} "
            f"{shlex.quote(sys.executable)} "
            f"-m tscu_tui {shlex.join(args)}")


class Tmux:
    def __init__(self, name: str, cwd: Path, command: str) -> None:
        self.name = name
        self.tmux = ["tmux", "-L", name]  # a server of our own
        subprocess.run([*self.tmux, "new-session", "-d", "-s", name, "-x", "100", "-y", "30",
                        "-c", str(cwd), command], check=True)

    def screen(self) -> str:
        result = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name],
                                capture_output=True, text=True)
        return result.stdout if result.returncode == 0 else ""

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def alive(self) -> bool:
        return subprocess.run([*self.tmux, "has-session", "-t", self.name],
                              capture_output=True).returncode == 0

    def wait_for(self, condition, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if condition(text):
                return text
            time.sleep(0.25)  # polling a real terminal: there is no event to wait on
        raise AssertionError(f"screen never matched; last screen:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def test_tscu_in_tmux_trains_by_key_and_draws_live_charts(demo_data, tmp_path):
    assert shutil.which("tmux"), "tmux is required (make setup installs it on Debian/Ubuntu)"
    out = tmp_path / "run"
    config = load_config(None, [f'model.name="{EMBEDDED_MODEL}"', f'data.path="{demo_data}"',
                                f'output.dir="{out}"', "lora.r=4", "train.batch_size=4",
                                "train.gradient_accumulation_steps=1", "train.max_steps=300",
                                "train.warmup_steps=2", "train.eval_steps=5",
                                "train.save_steps=100", "train.eval_batches=2",
                                'telemetry.source="simulated"',
                                "telemetry.interval_seconds=0.05"])
    save_config(tmp_path / "tscu.toml", config)
    session = Tmux(f"tscu-e2e-{tmp_path.name}", tmp_path, tscu_command("--config", "tscu.toml"))
    try:
        session.wait_for(lambda s: "idle: press s to start" in s, timeout=30)
        session.keys("s")
        screen = session.wait_for(
            lambda s: re.search(r"watts\s+\d+\.\d W", s) and re.search(r"tokens/s\s+[\d,]+", s)
            and re.search(r"held-out BPT\s+\d+\.\d{3}", s) and len(BARS & set(s)) >= 3,
            timeout=120)
        assert "telemetry simulated (simulated)" in screen
        assert re.search(r"control factor c\s+\d\.\d\d", screen), screen
        assert re.search(r"step \d+/300", screen)
        session.keys("q")  # stops with a checkpoint, then exits
        deadline = time.monotonic() + 60
        while session.alive() and time.monotonic() < deadline:
            time.sleep(0.25)
        assert not session.alive(), "the app did not exit after q"
    finally:
        session.kill()
    assert any((out / "checkpoints").iterdir())
    assert '"reason": "stopped"' in (out / "events.jsonl").read_text()


def wait_for_exit(session: Tmux, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while session.alive() and time.monotonic() < deadline:
        time.sleep(0.25)


def test_tscu_demo_opens_the_app_already_training(tmp_path):
    """`make demo` is `tscu demo` on a terminal: the app opens on the train screen and
    trains without a key pressed; the charts show the budget and the limits."""
    assert shutil.which("tmux"), "tmux is required (make setup installs it on Debian/Ubuntu)"
    out = tmp_path / "demo"
    command = tscu_command("demo", "--output-dir", str(out), "--set", "train.max_steps=400",
                           "--set", "train.eval_steps=5", "--set", "train.eval_batches=2")
    session = Tmux(f"tscu-demo-{tmp_path.name}", tmp_path, command)
    try:
        screen = session.wait_for(
            lambda s: re.search(r"step \d+/400", s) and re.search(r"watts\s+\d+\.\d W", s)
            and re.search(r"degrees\s+\d+\.\d °C", s) and len(BARS & set(s)) >= 3,
            timeout=240)
        assert "running" in screen and "telemetry simulated (simulated)" in screen
        assert re.search(r"\d+\.\d-\d+\.\d W ┈ budget 20\s", screen)
        assert re.search(r"\d+\.\d-\d+\.\d °C ┈ max 75 ┈ emergency 85\s", screen)
        assert "/ S* auto" in screen and "peak " in screen, screen  # SCU off by default
        session.keys("q")  # stops with a checkpoint, then exits
        wait_for_exit(session, 60)
        assert not session.alive(), "the app did not exit after q"
    finally:
        session.kill()
    assert '"reason": "stopped"' in (out / "run" / "events.jsonl").read_text()
