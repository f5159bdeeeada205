"""The results screen lists ablations made by a real `tscu ablate` and shows one by keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable

from tscu_tui.app import TscuApp
from tscu_tui.cli import main
from tscu_tui.engine.config import load_config
from tscu_tui.engine.models.load import EMBEDDED_MODEL
from tscu_tui.engine.runs.ablations import table_rows
from tscu_tui.screens.results import ResultsScreen
from tscu_tui.widgets.ablation_view import curves

TINY = f"""
[model]
name = "{EMBEDDED_MODEL}"
[data]
path = "{{data}}"
[lora]
r = 4
alpha = 8.0
dropout = 0.0
[train]
batch_size = 4
learning_rate = 2e-3
gradient_accumulation_steps = 1
warmup_steps = 2
max_steps = 10
eval_steps = 5
save_steps = 5
eval_batches = 2
[telemetry]
source = "none"
"""


def rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


@pytest.mark.asyncio
async def test_ablation_listed_opened_and_closed_by_keys(demo_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY.format(data=demo_data))
    assert main(["ablate", "tiny.toml", "--arms", "off,pi:auto@init", "--seeds", "1"]) == 0
    report = json.loads(Path("ablation_output/ablation.json").read_text())
    app = TscuApp(load_config(None, ['output.dir="runs/x"']), Path("tscu.toml"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, ResultsScreen)
        listed = screen.query_one("#ablations", DataTable)
        assert listed.display
        best = min(report["arms"], key=lambda a: a["heldout_bpt_mean"])
        assert rows(listed) == [["ablation_output", "2 x 1", "10",
                                 f"{best['arm']} ({best['heldout_bpt_mean']:.4f})"]]
        listed.focus()
        await pilot.press("enter")
        assert screen.view == "ablation-view"
        assert rows(screen.query_one("#ablation-table", DataTable)) == table_rows(report)
        assert set(curves(screen.ablations[0])) == {"off", "pi:auto@init"}
        picture = str(screen.query_one("#ablation-picture").render())
        assert picture.endswith("ablation_output/ablation.png")
        await pilot.press("escape")
        assert screen.view == "runs-view"


@pytest.mark.asyncio
async def test_no_ablations_no_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = TscuApp(load_config(None, ['output.dir="runs/x"']), Path("tscu.toml"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        assert not app.screen.query_one("#ablations", DataTable).display
