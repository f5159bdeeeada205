"""The end-of-run picture: written with every run, linked from the card, uploaded."""

from __future__ import annotations

import struct
from pathlib import Path

from tscu_tui.engine.config import load_config
from tscu_tui.engine.hub.push import upload_plan
from tscu_tui.engine.runs.files import CURVES_FILE
from tscu_tui.engine.train.plots import panels, render_curves


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_every_run_ends_with_a_picture_linked_from_its_card(tiny_run: Path):
    picture = tiny_run / CURVES_FILE
    assert png_size(picture.read_bytes()) == (900, 1400)  # seven panels of 2 inches
    card = (tiny_run / "README.md").read_text()
    assert f"]({CURVES_FILE})" in card
    assert CURVES_FILE in {item.path_in_repo for item in upload_plan(tiny_run)}


def test_panels_carry_the_budget_limits_and_target_as_references():
    config = load_config(None, ["tscu.power_budget_watts=24.0", "scu.target_s=0.05"])
    refs = {key: [(label, value) for label, value, _ in references]
            for _, key, _, references in panels(config)}
    assert refs["power_w"] == [("budget", 24.0)]
    assert refs["temp_c"] == [("max", 75.0), ("emergency", 85.0)]
    assert refs["s"] == [("S*", 0.05)]
    off = {key: refs for _, key, _, refs in panels(load_config(None, ["tscu.enabled=false"]))}
    assert off["power_w"] == []  # no governor: no budget to read the watts against
    history = {"steps": [{"step": i, "loss": 5.0 - i / 10, "power_w": None, "s": 0.1,
                          "lambda_reg": 1.0, "temp_c": None, "control_factor": None}
                         for i in range(1, 11)], "evals": [{"step": 10, "heldout_bpt": 4.2}]}
    assert png_size(render_curves(history, config, "t"))[0] == 900  # missing data: drawn
