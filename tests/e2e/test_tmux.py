"""End to end: the real `tscu` in a real terminal (tmux), driven by send-keys.

The app trains the embedded model on the demo data; the test reads the screen
with capture-pane and looks for live numbers and sparkline glyphs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tscu_tui.engine.config import load_config, save_config
from tscu_tui.engine.models.load import EMBEDDED_MODEL

TSCU = Path(sys.executable).parent / "tscu"
BARS = set("▂▃▄▅▆▇█")  # sparkline glyphs above the baseline: the chart has data


class Tmux:
    def __init__(self, name: str, cwd: Path, command: str) -> None:
        self.name = name
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "100", "-y", "30",
                        "-c", str(cwd), command], check=True)

    def screen(self) -> str:
        result = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                                capture_output=True, text=True)
        return result.stdout if result.returncode == 0 else ""

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name],
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
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


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
    session = Tmux(f"tscu-e2e-{tmp_path.name}", tmp_path, f"{TSCU} --config tscu.toml")
    try:
        session.wait_for(lambda s: "idle: press s to start" in s, timeout=30)
        session.keys("s")
        screen = session.wait_for(
            lambda s: re.search(r"watts\s+\d+\.\d W", s) and re.search(r"tokens/s\s+[\d,]+", s)
            and re.search(r"held-out BPT\s+\d+\.\d{3}", s) and len(BARS & set(s)) >= 3,
            timeout=120)
        assert "telemetry simulated (simulated)" in screen
        assert re.search(r"control factor c\s+\d\.\d\d", screen)
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
