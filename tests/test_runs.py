"""Finding runs on disk and reading what they recorded (engine only, no UI)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tscu_tui.engine.errors import ModelError
from tscu_tui.engine.runs.files import EVENTS_FILE, METRICS_FILE, SUMMARY_FILE
from tscu_tui.engine.runs.reader import find_runs, load_run, log_tail, summarize
from tscu_tui.engine.runs.sample import generate_samples

RECORDED = Path(__file__).parent / "data" / "runs"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    shutil.copytree(RECORDED, tmp_path / "runs")
    return tmp_path / "runs"


def test_finds_both_recorded_runs_with_their_recorded_numbers(runs):
    found = find_runs([runs / "demo-simulated", runs, runs.parent])  # overlapping roots
    assert [r.path.name for r in found] == ["demo-no-tscu", "demo-simulated"]
    off, on = found
    assert on.status == "completed" and on.steps == 60 and on.max_steps == 60
    assert on.heldout_bpt_initial == pytest.approx(9.388494841496147)
    assert on.heldout_bpt_final == on.heldout_bpt_best == pytest.approx(5.764174989741652)
    assert on.energy_j == pytest.approx(2091.4007946012803)
    assert on.avg_power_w == pytest.approx(21.227919766140573)
    assert on.peak_temp_c == pytest.approx(48.151292122032714)
    assert on.efficiency_bits_per_j == pytest.approx(1118.85842424258)
    assert on.duration_s == pytest.approx(104.30601310299971)
    assert (on.telemetry_source, on.telemetry_kind, on.governor_enabled) == (
        "simulated", "simulated", True)
    # Estimated telemetry has no temperature: None, not a made-up constant.
    assert off.peak_temp_c is None and off.telemetry_kind == "estimated"
    assert off.avg_power_w == pytest.approx(14.845852517567325)
    assert off.governor_enabled is False


def test_search_is_shallow_and_skips_checkpoint_folders(runs, tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    shutil.copytree(runs / "demo-no-tscu", deep / "run")
    assert find_runs([tmp_path / "a"]) == []  # four levels down: not searched
    assert [r.path for r in find_runs([tmp_path / "a"], depth=4)] == [deep / "run"]
    (runs / "demo-simulated" / "checkpoints" / "step_1").mkdir(parents=True)
    (runs / "demo-simulated" / "checkpoints" / "step_1" / EVENTS_FILE).write_text("")
    assert len(find_runs([runs])) == 2
    assert find_runs([tmp_path / "missing"]) == []


def test_load_run_has_the_history_analysis_config_and_log(runs):
    detail = load_run(runs / "demo-simulated")
    assert len(detail.history["steps"]) == 60 and len(detail.history["evals"]) == 5
    assert detail.history["steps"][0]["telemetry_kind"] == "simulated"
    assert detail.analysis["governor_enabled"] is True
    assert detail.config["tscu"]["power_budget_watts"] == 20.0
    assert detail.log_tail.splitlines()[-1].endswith("run finished at step 60: completed")


def test_a_run_in_progress_is_read_from_its_events(runs):
    run = runs / "demo-simulated"
    lines = (run / EVENTS_FILE).read_text().splitlines(keepends=True)
    for name in (SUMMARY_FILE, METRICS_FILE, "mlx_tscu_analysis.json"):
        (run / name).unlink()
    step_30 = next(i for i, line in enumerate(lines)
                   if '"StepEvent"' in line and '"step": 30,' in line)
    (run / EVENTS_FILE).write_text("".join(lines[:step_30 + 1]) + '{"event": "StepEv')
    summary = summarize(run)
    assert summary.status == "in progress" and summary.steps == 30 and summary.max_steps == 60
    # energy over wall time, and the wall time itself: recorded only at the end
    assert summary.avg_power_w is None and summary.duration_s is None
    steps = [json.loads(x) for x in lines[:step_30 + 1] if '"StepEvent"' in x]
    assert summary.energy_j == pytest.approx(steps[-1]["energy_j"])
    assert summary.peak_temp_c == pytest.approx(max(s["temp_c"] for s in steps))
    detail = load_run(run)
    assert len(detail.history["steps"]) == 30 and detail.analysis == {}


def test_broken_runs_are_skipped_with_a_one_line_reason(runs, tmp_path):
    (runs / "demo-no-tscu" / SUMMARY_FILE).write_text("{not json")
    (runs / "garbage").mkdir()
    (runs / "garbage" / EVENTS_FILE).write_text("hello\n")
    (runs / "empty").mkdir()
    (runs / "empty" / EVENTS_FILE).write_text("")
    skipped: list[str] = []
    found = find_runs([runs], skipped)
    assert [r.path.name for r in found] == ["demo-simulated"]
    assert len(skipped) == 3 and all("\n" not in reason for reason in skipped)
    assert any("mlx_training_summary.json: not valid JSON" in r for r in skipped)
    assert any("garbage/events.jsonl:1: not a tscu event" in r for r in skipped)
    assert any("no RunStarted event" in r for r in skipped)


def test_log_tail_keeps_the_last_lines(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert log_tail(log, 3) == "line 997\nline 998\nline 999"
    assert log_tail(tmp_path / "absent") == ""


def test_sampling_a_run_without_an_adapter_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelError, match="no adapter to sample from"):
        generate_samples("tscu-tiny-qwen3", tmp_path, "U+00E9 is")
