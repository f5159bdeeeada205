"""scu.target_s = "auto" in the app: "auto" before the run, the resolved value after it."""

from __future__ import annotations

import json
import time

import pytest
from runs import tiny_config

from tscu_tui.app import TscuApp
from tscu_tui.screens.train import TrainScreen
from tscu_tui.widgets.metric_panel import MetricPanel


@pytest.mark.asyncio
async def test_train_screen_shows_auto_then_the_resolved_target(shift_data, tmp_path):
    out = tmp_path / "run"
    config = tiny_config(shift_data, out, 'scu.target_s="auto"', 'scu.prior_center="init"',
                         "train.max_steps=0", "train.epochs=5", "train.eval_steps=2",
                         "train.learning_rate=1e-2", "lora.r=8", "lora.alpha=8.0")
    app = TscuApp(config, tmp_path / "tscu.toml")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        assert any("SCU pi S*=auto" in line for line in screen.query_one("#log").lines)
        assert any(line.startswith("length: 20 optimizer steps (train.epochs = 5), 4 steps "
                                   "an epoch") for line in screen.query_one("#log").lines)
        await pilot.press("s")
        deadline = time.monotonic() + 120
        while screen.state != "finished":
            assert time.monotonic() < deadline, "timed out waiting for the run"
            await pilot.pause(0.05)
        resolved = json.loads((out / "mlx_tscu_analysis.json").read_text())["scu"]["target_s"]
        assert resolved > 0
        assert screen.query_one("#s", MetricPanel).readout.endswith(f"/ S* {resolved:g}")
