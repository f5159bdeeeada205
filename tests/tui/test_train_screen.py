"""The train screen driven by keys alone, on real training of the embedded model."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from runs import tiny_config

from tscu_tui.app import TscuApp
from tscu_tui.engine.config import Config, load_config
from tscu_tui.engine.runs.files import EVENTS_FILE
from tscu_tui.engine.runs.follow import read_events
from tscu_tui.screens.error import ErrorDialog
from tscu_tui.screens.plot import PlotScreen
from tscu_tui.screens.train import TrainScreen
from tscu_tui.widgets.metric_chart import MetricChart
from tscu_tui.widgets.metric_panel import MetricPanel

RECORDED = Path(__file__).parents[1] / "data" / "runs"


def simulated(data: Path, out: Path, *overrides: str) -> Config:
    """A short run with the T-SCU on the simulated plant, so watts and degrees exist."""
    return tiny_config(data, out, 'telemetry.source="simulated"', "telemetry.interval_seconds=0.05",
                       "tscu.power_budget_watts=30.0", "train.max_steps=16", *overrides)


async def until(pilot, condition, timeout: float = 90.0) -> None:
    """Let the app run until `condition()` holds (a real run takes seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        await pilot.pause(0.05)


def panel_values(screen: TrainScreen, panel_id: str) -> list[float]:
    return list(screen.query_one(f"#{panel_id}", MetricPanel).values)


@pytest.mark.asyncio
async def test_start_by_key_fills_every_chart_and_writes_the_run(demo_data, tmp_path):
    out = tmp_path / "run"
    app = TscuApp(simulated(demo_data, out), tmp_path / "tscu.toml")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainScreen) and screen.state == "idle"
        await pilot.press("s")
        await until(pilot, lambda: screen.state == "finished")
        for panel in ("power", "temp", "control", "tokens-per-s", "loss", "heldout", "s",
                      "lambda"):
            assert panel_values(screen, panel), panel
        # The chart widgets got the data, not just the panels' deques, and the budget.
        chart = screen.query_one("#power MetricChart", MetricChart)
        assert len(chart.values) == len(panel_values(screen, "power")) > 5
        assert [(r.label, r.value) for r in chart.references] == [("budget", 30.0)]
        power = screen.query_one("#power", MetricPanel)
        low, high = min(power.values), max(power.values)
        assert power.range_text() == f"{low:.1f}-{high:.1f} W ┈ budget 30"
        assert str(screen.query_one("#temp .metric-range").render()).endswith(
            "°C ┈ max 75 ┈ emergency 85")
        assert "(simulated)" in str(screen.query_one("#telemetry-source").render())
        log = "\n".join(screen.query_one("#log").lines)
        assert "checkpoint (final) at step 16" in log and "eval step" in log
    assert (out / "mlx_training_summary.json").exists()


@pytest.mark.asyncio
async def test_pause_save_stop_and_resume_are_single_keys(demo_data, tmp_path):
    out = tmp_path / "run"
    app = TscuApp(tiny_config(demo_data, out, "train.max_steps=400"), tmp_path / "tscu.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("s")
        await until(pilot, lambda: screen.last_step is not None)
        await until(pilot, lambda: screen.state == "running")
        await pilot.pause()
        footer = {key.description for key in screen.query("FooterKey")}
        assert {"Pause/Resume", "Stop", "Save now"} <= footer and "Start" not in footer
        await pilot.press("p")
        await until(pilot, lambda: screen.state == "paused")
        paused_at = screen.last_step.step
        await pilot.press("c")
        await until(pilot, lambda: "checkpoint (requested)" in "\n".join(
            screen.query_one("#log").lines))
        assert screen.last_step.step == paused_at  # paused: no step ran meanwhile
        await pilot.press("p")
        await until(pilot, lambda: screen.state == "running")
        await pilot.press("x")
        await until(pilot, lambda: screen.state == "finished")
        stopped_at = screen.last_step.step
        assert stopped_at < 400 and screen.stopped_run == str(out)
        await pilot.press("s")  # resumes the stopped run from its checkpoint
        await until(pilot, lambda: screen.last_step is not None
                    and screen.last_step.step > stopped_at)
        await pilot.press("x")
        await until(pilot, lambda: screen.state == "finished")
    starts = [e for e in read_events(out) if type(e).__name__ == "RunStarted"]
    assert [s.start_step for s in starts] == [0, stopped_at]


@pytest.mark.asyncio
async def test_quitting_during_a_run_checkpoints_and_leaves_no_thread(demo_data, tmp_path):
    out = tmp_path / "run"
    app = TscuApp(tiny_config(demo_data, out, "train.max_steps=400"), tmp_path / "tscu.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("s")
        await until(pilot, lambda: screen.last_step is not None)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)
    assert not [t for t in threading.enumerate() if "Training" in t.name]
    finished = [e for e in read_events(out) if type(e).__name__ == "RunFinished"]
    assert finished and finished[-1].reason == "stopped"
    assert any((out / "checkpoints").iterdir())


@pytest.mark.asyncio
async def test_a_failing_run_shows_a_one_line_error_dialog(tmp_path):
    config = tiny_config(tmp_path / "no-such-data", tmp_path / "run")
    app = TscuApp(config, tmp_path / "tscu.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        cause = str(app.screen.query_one("#error-cause").render())
        assert "no-such-data" in cause and "\n" not in cause.strip()
        assert "Traceback" not in cause
        await pilot.press("escape")
        assert isinstance(app.screen, TrainScreen) and app.screen.state == "failed"


@pytest.mark.asyncio
async def test_watch_follows_a_recorded_run_read_only(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RECORDED / "demo-simulated", run)
    app = TscuApp(load_config(None), tmp_path / "tscu.toml", watch_dir=run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.state == "finished", timeout=10)
        assert len(panel_values(screen, "power")) == 60
        assert panel_values(screen, "heldout")[-1] == pytest.approx(5.7642, abs=1e-4)
        await pilot.press("s")  # read-only: no training starts
        await pilot.pause()
        assert not app.mlx_busy() and screen.state == "finished"
        assert screen.check_action("start_training", ()) is False


@pytest.mark.asyncio
async def test_failed_telemetry_is_shown_failed_not_as_readings(tmp_path):
    """A run whose sensor was lost: the status line says so, with why (the step record
    carries it), and the readings are n/a."""
    import json

    run = tmp_path / "run"
    shutil.copytree(RECORDED / "demo-simulated", run)
    records = [json.loads(line) for line in (run / EVENTS_FILE).read_text().splitlines()]
    last = max(i for i, r in enumerate(records) if r["event"] == "StepEvent")
    records[last].update(power_w=None, temp_c=None, energy_j=None,
                         telemetry_status="lost: sensor gone")
    (run / EVENTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    app = TscuApp(load_config(None), tmp_path / "tscu.toml", watch_dir=run)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.state == "finished", timeout=10)
        status = str(screen.query_one("#telemetry-source").render())
        assert status == "telemetry simulated (simulated) FAILED, lost: sensor gone"


@pytest.mark.asyncio
async def test_watch_shows_the_watched_runs_settings_not_the_local_config(tmp_path):
    from tscu_tui.commands.watch import run_config

    run = tmp_path / "run"
    shutil.copytree(RECORDED / "demo-simulated", run)
    local = load_config(None, ['model.name="Qwen/Qwen3-4B-MLX-4bit"', 'data.path="elsewhere"',
                               "tscu.power_budget_watts=33.0", "scu.target_s=0.2"])
    watched = run_config(run)
    assert watched is not None and watched.model.name == "tscu-tiny-qwen3"
    app = TscuApp(watched, tmp_path / "tscu.toml", watch_dir=run)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.state == "finished", timeout=10)
        log = "\n".join(screen.query_one("#log").lines)
        assert "model tscu-tiny-qwen3, data demo_output/data" in log
        assert local.model.name not in log and "elsewhere" not in log
        assert "budget 20 W" in log
        refs = {p: [(r.label, r.value) for r in screen.panel(p).references]
                for p in ("power", "s")}
        assert refs == {"power": [("budget", 20.0)], "s": [("S*", 0.05)]}
        screen.panel("temp").focus()
        await pilot.press("f")  # the focused chart, full size, with axes
        plot = app.screen
        assert isinstance(plot, PlotScreen) and plot.plot_title == "degrees"
        assert len(plot.points) == 60 and plot.points[-1][0] == 60
        legend = str(plot.query_one("#plot-legend").render())
        assert "limit: emergency 85 °C" in legend and "reference: max 75 °C" in legend
        await pilot.press("escape")
        assert app.screen is screen
    assert run_config(tmp_path) is None  # no mlx_config.json: the local config is shown


@pytest.mark.asyncio
async def test_watch_picks_up_lines_written_while_it_follows(tmp_path):
    source = (RECORDED / "demo-simulated" / EVENTS_FILE).read_text().splitlines(keepends=True)
    run = tmp_path / "run"
    run.mkdir()
    events = run / EVENTS_FILE
    events.write_text("".join(source[:10]))
    app = TscuApp(load_config(None), tmp_path / "tscu.toml", watch_dir=run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.events_seen == 10, timeout=10)
        with events.open("a") as handle:  # the rest, the last line in two writes
            handle.write("".join(source[10:-1]) + source[-1][:20])
            handle.flush()
            await until(pilot, lambda: screen.events_seen == len(source) - 1, timeout=10)
            handle.write(source[-1][20:])
        await until(pilot, lambda: screen.state == "finished", timeout=10)
        assert screen.events_seen == len(source)


@pytest.mark.asyncio
async def test_keys_are_remapped_from_the_config(tmp_path):
    config = load_config(None, ['keys.show_results="9"', 'keys.help="f2"'])
    app = TscuApp(config, tmp_path / "tscu.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("9")
        assert app.current_mode == "results"
        await pilot.press("f2")
        help_text = "\n".join(str(s.render()) for s in app.screen.query("Static"))
        assert "9" in help_text and "Go to the results screen." in help_text


def test_every_binding_id_is_a_keys_field_and_in_the_palette():
    from dataclasses import fields

    from tscu_tui.app import SCREENS
    from tscu_tui.engine.config import KeysConfig

    bindings = [*TscuApp.BINDINGS, *(b for s in SCREENS.values() for b in s.BINDINGS)]
    assert {b.id for b in bindings if b.id} == {f.name for f in fields(KeysConfig)}
    # Only the universal escape/enter conventions go without an id (and a [keys] field).
    assert {b.key for b in bindings if not b.id} <= {"escape", "enter"}


@pytest.mark.asyncio
async def test_palette_offers_every_screen_action(tmp_path):
    from tscu_tui.app import SCREENS

    app = TscuApp(load_config(None), tmp_path / "tscu.toml")
    async with app.run_test(size=(80, 24)):
        titles = {c.title for c in app.get_system_commands(app.screen)}
    for name, screen in SCREENS.items():
        assert f"Go to {name}" in titles
        for binding in screen.BINDINGS:
            if binding.id:
                assert f"{name.title()}: {binding.description}" in titles


@pytest.mark.asyncio
async def test_a_run_that_will_not_fit_asks_before_starting(demo_data, tmp_path, monkeypatch):
    import tscu_tui.engine.models.memory as memory
    from tscu_tui.screens.confirm import ConfirmDialog

    # Free memory is this machine's reading; pretend only 1 MiB is free.
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 20)
    out = tmp_path / "run"
    # grad_checkpoint=false: the dialog is the point here; with "auto" the pretended 1 MiB
    # would also turn checkpointing on (tests/test_memory_saving.py covers that).
    app = TscuApp(tiny_config(demo_data, out, "train.max_steps=4", "train.grad_checkpoint=false"),
                  tmp_path / "tscu.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmDialog)
        assert "only 1 MiB is free" in str(app.screen.query_one("#confirm-text").render())
        await pilot.press("n")
        assert app.screen is screen and screen.state == "idle" and not app.mlx_busy()
        assert "not started: This run needs about" in "\n".join(screen.query_one("#log").lines)
        await pilot.press("s")
        await pilot.press("y")
        await until(pilot, lambda: screen.state == "finished")
    assert (out / "mlx_training_summary.json").exists()


@pytest.mark.asyncio
async def test_push_to_hub_uploads_a_finished_run_loopback_fake_hub(demo_data, tmp_path,
                                                                      monkeypatch):
    from fake_hub import FakeHub

    monkeypatch.setenv("HF_TOKEN", "hf_app_token")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "run"
    config = tiny_config(demo_data, out, "train.max_steps=4", "hub.push_to_hub=true",
                         'hub.hub_model_id="someone/from-the-app"')
    app = TscuApp(config, tmp_path / "tscu.toml")
    with FakeHub() as hub:  # the network boundary, on loopback
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            await pilot.press("s")
            await until(pilot, lambda: "hub: uploaded: " in "\n".join(
                screen.query_one("#log").lines))
            log = "\n".join(screen.query_one("#log").lines)
    assert f"hub: uploaded: {hub.endpoint}/someone/from-the-app" in log
    assert "someone/from-the-app@main:README.md" in hub.files


@pytest.mark.asyncio
async def test_the_screen_names_the_best_checkpoint_and_says_when_the_run_overfits(tmp_path):
    """The recorded run, its validation made to turn up after step 15 (training keeps
    falling): the fit line names step 15's adapter as best and says it overfits."""
    import json

    run = tmp_path / "run"
    run.mkdir()
    turned = {15: 6.0, 30: 6.2, 45: 6.4, 60: 6.6}
    lines = []
    for line in (RECORDED / "demo-simulated" / EVENTS_FILE).read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "EvalEvent" and record["step"] in turned:
            record["heldout_bpt"] = turned[record["step"]]
        lines.append(json.dumps(record) + "\n")
    (run / EVENTS_FILE).write_text("".join(lines))
    app = TscuApp(load_config(None), tmp_path / "tscu.toml", watch_dir=run)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.state == "finished", timeout=10)
        fit = screen.query_one("#fit")
        text = str(fit.render())
        assert text.startswith("OVERFITTING: validation above its best for 3 evaluations "
                               "while the training loss falls"), text
        assert "best validation 6.0000 bits/token at step 15, adapter in best/" in text
        assert fit.has_class("overfitting") and fit.display
        log = [line for line in screen.query_one("#log").lines if "OVERFITTING" in line]
        assert len(log) == 1 and log[0].startswith("warning: ")  # said once, when it began
        assert "validation above its best for 2 evaluations" in log[0]
    app = TscuApp(load_config(None), tmp_path / "tscu.toml",
                  watch_dir=RECORDED / "demo-simulated")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.state == "finished", timeout=10)
        fit = screen.query_one("#fit")
        assert str(fit.render()) == ("best validation 5.7642 bits/token at step 60, adapter "
                                     "in best/") and not fit.has_class("overfitting")


@pytest.mark.asyncio
async def test_the_latest_answers_show_under_the_charts(demo_data, tmp_path):
    from tscu_tui.widgets.sample_answers import SampleAnswers

    config = tiny_config(demo_data, tmp_path / "run", "train.max_steps=2", "train.eval_steps=1",
                         "data.sample_max_tokens=3")
    app = TscuApp(config, tmp_path / "tscu.toml")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        answers = screen.query_one(SampleAnswers)
        assert not answers.display  # nothing sampled yet
        await pilot.press("s")
        await until(pilot, lambda: screen.state == "finished")
        await pilot.pause(0.1)
        assert answers.display
        text = str(answers.render())
        assert text.startswith("answers at step 2 (greedy):")
        assert text.count(" -> ") == 3 and "Unicode characters U+" in text
