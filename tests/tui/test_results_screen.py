"""The results screen driven by keys alone: list, open, compare, sample, upload; snapshots."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from fake_hub import FakeHub
from runs import tiny_config, train
from textual.widgets import DataTable, Static, TabbedContent

from tscu_tui.app import TscuApp
from tscu_tui.engine.config import load_config
from tscu_tui.screens.error import ErrorDialog
from tscu_tui.screens.results import ResultsScreen
from tscu_tui.screens.upload import UploadDialog
from tscu_tui.widgets.metric_chart import MetricChart
from tscu_tui.widgets.metric_panel import MetricPanel

RECORDED = Path(__file__).parents[1] / "data" / "runs"


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the recorded runs in an empty working directory (no demo_output)."""
    shutil.copytree(RECORDED, tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "runs"


def results_app(*overrides: str) -> TscuApp:
    return TscuApp(load_config(None, ['output.dir="runs/demo-simulated"', *overrides]),
                   Path("tscu.toml"))


async def until(pilot, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        await pilot.pause(0.05)


def row_texts(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def text(screen: ResultsScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


@pytest.mark.asyncio
async def test_lists_the_recorded_runs_with_their_numbers(recorded):
    app = results_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, ResultsScreen)
        rows = row_texts(screen.query_one("#runs", DataTable))
        #      mark run       status  steps final best energy  W  bits/J  time  start  peak C
        assert rows[0][:12] == ["", "runs/demo-no-tscu", "completed", "60/60", "5.764", "5.764",
                                "636", "14.8", "3,719", "0m47s", "9.388", "n/a"]
        assert rows[1][:12] == ["", "runs/demo-simulated", "completed", "60/60", "5.764",
                                "5.764", "2,091", "21.2", "1,119", "1m44s", "9.388", "48.2"]
        # estimated telemetry has no temperature: n/a above, not a number
        assert rows[0][-1] == "estimated" and rows[1][-1] == "simulated"
        assert text(screen, "#runs-title") == "2 runs in runs, demo_output"
        await pilot.press("down")  # the cursor's run in one sentence, all columns at 80 wide
        assert text(screen, "#run-headline") == (
            "runs/demo-simulated  completed, 60/60 steps, held-out 9.388 -> 5.764 BPT, 2,091 J,"
            " 21.2 W, 1,119 bits/J, 1m44s, telemetry simulated")


@pytest.mark.asyncio
async def test_open_a_run_and_switch_views_by_keys(recorded):
    app = results_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4", "down", "enter")
        screen = app.screen
        assert screen.view == "detail-view" and screen.opened.path.name == "demo-simulated"
        for panel in ("loss", "heldout", "s", "lambda", "power", "temp", "control",
                      "tokens-per-s"):
            data = screen.query_one(f"#chart-{panel} MetricChart", MetricChart).values
            assert data, panel
        assert len(screen.query_one("#chart-power", MetricPanel).values) == 60
        assert len(screen.query_one("#chart-heldout", MetricPanel).values) == 5
        assert screen.query_one("#chart-heldout", MetricPanel).readout == "5.764 (best 5.764)"
        tabs = screen.query_one("#detail-tabs", TabbedContent)
        await pilot.press("right")
        assert tabs.active == "analysis"
        assert re.search(r"\ntotal_energy_joules +2091\.4\n", text(screen, "#detail-analysis"))
        await pilot.press("right")
        assert tabs.active == "config"
        assert "power_budget_watts" in text(screen, "#detail-config")
        await pilot.press("right")
        assert tabs.active == "log"
        assert screen.query_one("#detail-log").lines[-1].endswith(
            "run finished at step 60: completed")
        await pilot.press("escape")
        assert screen.view == "runs-view"
        await pilot.press("up", "enter")  # another run replaces the charts
        assert screen.opened.path.name == "demo-no-tscu"
        assert screen.query_one("#chart-temp", MetricPanel).readout == "n/a"
        assert not screen.query_one("#chart-temp", MetricPanel).values


@pytest.mark.asyncio
async def test_mark_two_runs_and_compare_them(recorded):
    app = results_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4", "m")
        screen = app.screen
        assert screen.view == "runs-view" and row_texts(screen.query_one("#runs"))[0][0] == "A"
        await pilot.press("down", "m")
        assert screen.view == "compare-view"
        rows = {row[0]: row[1:] for row in row_texts(screen.query_one("#compare-table"))}
        assert rows["energy J"] == ["636", "2,091", "+1,455 (+229%)"]
        assert rows["avg W"] == ["14.8", "21.2", "+6.4 (+43%)"]
        assert rows["final BPT"] == ["5.764", "5.764", "+0.000 (+0%)"]
        assert rows["peak °C"] == ["n/a", "48.2", "n/a"]
        assert rows["governor"] == ["off", "on", "differs"]
        await pilot.press("escape")
        assert screen.view == "runs-view"
        await pilot.press("m")  # unmarks B
        assert [row[0] for row in row_texts(screen.query_one("#runs"))] == ["A", ""]


@pytest.mark.asyncio
async def test_rescan_picks_up_new_runs_and_reports_broken_ones(recorded):
    app = results_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        screen = app.screen
        shutil.copytree(recorded / "demo-no-tscu", recorded / "copy")
        (recorded / "broken").mkdir()
        (recorded / "broken" / "events.jsonl").write_text("{oops\n")
        await pilot.press("r")
        assert screen.query_one("#runs", DataTable).row_count == 3
        assert "1 folder skipped: runs/broken/events.jsonl:1: not a tscu event" in text(
            screen, "#runs-note")


@pytest.mark.asyncio
async def test_upload_without_a_token_says_so_in_one_line(recorded, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    (tmp_path / "hf").mkdir()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    app = results_app('hub.hub_model_id="someone/tscu-demo"')
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4", "u")
        assert isinstance(app.screen, UploadDialog)
        assert app.screen.query_one("#upload-repo").value == "someone/tscu-demo"
        await pilot.press("enter")
        results = app.get_screen("results")
        await until(pilot, lambda: not results.uploading)
        line = text(results, "#activity")
        assert line.startswith("upload failed: no Hugging Face token") and "\n" not in line
        await until(pilot, lambda: isinstance(app.screen, ErrorDialog))


@pytest.mark.asyncio
async def test_generate_from_base_and_adapter_of_a_fresh_run(demo_data, tmp_path,
                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    # trained hard (high lr, big LoRA scale, no penalty) so greedy output visibly changes
    config = tiny_config(demo_data, out, "train.learning_rate=1e-2", 'scu.mode="off"',
                         "lora.alpha=64.0", "train.max_steps=8", "train.eval_steps=8",
                         "train.save_steps=8")
    train(config)
    app = TscuApp(config, tmp_path / "tscu.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4", "g")
        screen = app.screen
        assert screen.view == "detail-view"
        assert screen.query_one("#detail-tabs", TabbedContent).active == "sample"
        await until(pilot, lambda: out in screen.samples)
        samples = screen.samples[out]
        assert samples.prompt == "U+00E9 is" and samples.base and samples.adapted
        assert samples.base != samples.adapted
        assert text(screen, "#sample-base") == samples.prompt + samples.base
        assert text(screen, "#sample-adapted") == samples.prompt + samples.adapted
        assert not app.mlx_busy()


@pytest.mark.asyncio
async def test_sample_is_refused_while_mlx_is_busy_and_needs_an_adapter(recorded,
                                                                       monkeypatch):
    app = results_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        screen = app.screen
        notices: list[str] = []
        monkeypatch.setattr(screen, "notify", lambda message, **_: notices.append(message))
        monkeypatch.setattr(app, "mlx_busy", lambda: True)
        await pilot.press("g")
        assert notices and "Another MLX job" in notices[0] and screen.view == "runs-view"
        monkeypatch.setattr(app, "mlx_busy", lambda: False)
        (recorded / "demo-no-tscu" / "adapters.safetensors").unlink()
        await pilot.press("g")
        assert screen.view == "detail-view" and not app.mlx_busy()
        assert text(screen, "#sample-state").endswith(
            "no adapter to sample from (missing adapters.safetensors)")


# -- snapshots of the recorded runs ------------------------------------------------------

def test_run_list_snapshot(snap_compare, recorded):
    assert snap_compare(results_app(), terminal_size=(80, 24), press=["4"])


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_run_detail_snapshot(snap_compare, recorded, size):
    assert snap_compare(results_app(), terminal_size=size, press=["4", "down", "enter"])


def test_compare_snapshot(snap_compare, recorded):
    assert snap_compare(results_app(), terminal_size=(80, 24),
                        press=["4", "m", "down", "m"])


@pytest.mark.asyncio
async def test_upload_key_loopback_fake_hub_reports_url_then_refusal_and_retry(
        recorded, tmp_path, monkeypatch):
    """The real push_run, against the fake Hub on loopback (the network boundary)."""
    monkeypatch.setenv("HF_TOKEN", "hf_loopback_test")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    app = results_app('hub.hub_model_id="someone/tscu-demo"')
    with FakeHub() as ok, FakeHub(status=401) as refused:
        monkeypatch.setenv("HF_ENDPOINT", ok.endpoint)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("4", "down", "u")
            assert isinstance(app.screen, UploadDialog)
            await pilot.press("end", "2", "enter")  # edit the prefilled id
            results = app.get_screen("results")
            await until(pilot, lambda: not results.uploading)
            assert text(results, "#activity") == f"uploaded: {ok.endpoint}/someone/tscu-demo2"
            uploaded = {key.split(":", 1)[1] for key in ok.files}
            assert {"README.md", "adapter_model.safetensors",
                    "mlx/adapters.safetensors"} <= uploaded
            assert all(key.startswith("someone/tscu-demo2@main:") for key in ok.files)
            monkeypatch.setenv("HF_ENDPOINT", refused.endpoint)
            await pilot.press("u")  # the retry dialog keeps the last repo id
            assert app.screen.query_one("#upload-repo").value == "someone/tscu-demo2"
            await pilot.press("enter")
            await until(pilot, lambda: not results.uploading)
            line = text(results, "#activity")
            assert line.startswith("upload failed: ") and "(401" in line
            assert line.endswith("(press u to retry)") and "hf_loopback_test" not in line
            await until(pilot, lambda: isinstance(app.screen, ErrorDialog))  # the app's dialog
            await pilot.press("escape", "u", "escape")  # escape cancels the dialog
            assert app.screen is results and refused.requests


@pytest.mark.asyncio
async def test_a_run_in_progress_is_followed_while_open(recorded):
    run = recorded / "demo-simulated"
    lines = (run / "events.jsonl").read_text().splitlines(keepends=True)
    for name in ("mlx_training_summary.json", "mlx_tscu_training_metrics.json",
                 "mlx_tscu_analysis.json"):
        (run / name).unlink()
    (run / "events.jsonl").write_text("".join(lines[:20]))
    app = results_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4", "down")
        screen = app.screen
        assert row_texts(screen.query_one("#runs"))[1][2:4] == ["in progress", "17/60"]
        await pilot.press("enter", "right")  # on the analysis tab
        power = screen.query_one("#chart-power", MetricPanel)
        assert len(power.values) == 17
        (run / "events.jsonl").write_text("".join(lines))  # the run goes on and ends
        await until(pilot, lambda: screen.opened.status == "completed", timeout=10)
        assert len(power.values) == 60
        assert screen.query_one("#detail-tabs", TabbedContent).active == "analysis"


@pytest.mark.asyncio
async def test_clicking_a_column_header_sorts_by_it(recorded):
    app = results_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        screen = app.screen
        table = screen.query_one("#runs", DataTable)
        energy_x = sum(c.get_render_width(table) for c in list(table.columns.values())[:6])
        await pilot.click("#runs", offset=(energy_x + 2, 0))
        assert screen.sorted_by == ("energy", False)
        await pilot.click("#runs", offset=(energy_x + 2, 0))
        assert screen.sorted_by == ("energy", True)
        assert [row[1] for row in row_texts(table)] == ["runs/demo-simulated",
                                                         "runs/demo-no-tscu"]


@pytest.mark.asyncio
async def test_sort_by_key_and_each_folder_named_once(recorded, tmp_path):
    demo = tmp_path / "demo_output"
    shutil.copytree(recorded / "demo-no-tscu", demo / "run")
    app = TscuApp(load_config(None, ['output.dir="demo_output/run"']), Path("tscu.toml"))
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("4")
        screen = app.screen
        # demo_output/run, its parent demo_output and the demo's folder: one folder
        assert str(screen.query_one("#runs-title", Static).content) == "1 run in demo_output"
    shutil.rmtree(demo)
    app = results_app()
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("4")
        screen = app.screen
        table = screen.query_one("#runs", DataTable)
        await pilot.press("o")  # the first column: status
        assert screen.sorted_by == ("status", False)
        for _ in range(4):  # steps, final, best, energy
            await pilot.press("o")
        assert screen.sorted_by == ("energy", False)
        assert [row[1] for row in row_texts(table)] == ["runs/demo-no-tscu",
                                                         "runs/demo-simulated"]
        await pilot.press("O")
        assert screen.sorted_by == ("energy", True)
        assert [row[1] for row in row_texts(table)] == ["runs/demo-simulated",
                                                         "runs/demo-no-tscu"]
        assert "sorted by energy J, descending" in str(
            screen.query_one("#activity", Static).content)


@pytest.mark.asyncio
async def test_the_detail_view_shows_the_runs_picture(recorded):
    import json

    from textual_image.widget import Image

    from tscu_tui.engine.config import config_from_dict
    from tscu_tui.engine.train.plots import write_curves

    run = recorded / "demo-simulated"
    write_curves(run, json.loads((run / "mlx_tscu_training_metrics.json").read_text()),
                 config_from_dict(json.loads((run / "mlx_config.json").read_text()), "run"))
    app = results_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4", "down", "enter", "right")
        assert text(app.screen, "#detail-analysis").startswith(
            "picture: runs/demo-simulated/training_curves.png (the Picture tab shows it)")
        app.screen.detail.open_tab("picture")
        await pilot.pause()
        image = app.screen.query_one("#picture-image", Image)
        assert image.display and image.image == "runs/demo-simulated/training_curves.png"
        assert image.region.height > 10  # drawn (half blocks here: Pilot has no graphics)
        await pilot.press("escape", "up", "enter")  # a run without one: a note, no image
        assert not text(app.screen, "#detail-analysis").startswith("picture")
        assert not app.screen.query_one("#picture-image", Image).display
        assert text(app.screen, "#picture-note").startswith("no training_curves.png yet")
