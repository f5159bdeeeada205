"""`tscu ablate` on the embedded model: arms x seeds as real runs, the report, resuming,
and bad input refused in one line with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tscu_tui.cli import main
from tscu_tui.engine.models.load import EMBEDDED_MODEL
from tscu_tui.engine.runs.ablations import find_ablations, table_rows, versus_off
from tscu_tui.engine.train.ablation import parse_arm, plan, run_state

TINY = """
[model]
name = "{model}"
[data]
path = "{data}"
block_size = 64
sample_max_tokens = 0
[lora]
r = 4
alpha = 8.0
dropout = 0.0
[train]
batch_size = 4
gradient_accumulation_steps = 1
learning_rate = 2e-3
warmup_steps = 2
max_steps = 12
eval_steps = 6
save_steps = 6
logging_steps = 6
eval_batches = 2
[telemetry]
source = "none"
"""


@pytest.fixture(scope="module")
def tiny_toml(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ablate") / "tiny.toml"
    path.write_text(TINY.format(model=EMBEDDED_MODEL, data=demo_data))
    return path


@pytest.fixture(scope="module")
def ablation(tiny_toml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real ablation: off, a fixed lambda and pi:auto, 2 seeds x 12 steps."""
    out = tmp_path_factory.mktemp("ablation") / "abl"
    assert main(["ablate", str(tiny_toml), "--arms", "off,fixed:1@init,pi:auto@init",
                 "--seeds", "2", "--output-dir", str(out)]) == 0
    return out


@pytest.mark.parametrize(("args", "message"), [
    (["--arms", "off,foo"], "--arms: 'foo' is not an arm"),
    (["--arms", "fixed:-0.5"], "--arms: 'fixed:-0.5': a fixed lambda must be >= 0"),
    (["--arms", "pi:1.5"], "--arms: 'pi:1.5': a target S must lie in (0, 1]"),
    (["--arms", "off,off"], "--arms: 'off' is given twice"),
    (["--seeds", "0"], "--seeds 0: must be at least 1"),
    (["--seeds", "two"], "--seeds two: must be a whole number"),
    (["--steps", "0"], "--steps 0: must be at least 1"),
    (["--set", "scu.kp=-1"], "scu.kp = -1"),
])
def test_bad_input_is_one_line_exit_1_and_nothing_written(tiny_toml, tmp_path, capsys, args,
                                                           message):
    out = tmp_path / "never"
    assert main(["ablate", str(tiny_toml), "--output-dir", str(out), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tscu: error: ") and message in err[0], err
    assert not out.exists()


def test_unprepared_data_is_refused_before_anything_is_written(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(TINY.format(model=EMBEDDED_MODEL, data=tmp_path / "nodata"))
    out = tmp_path / "out"
    assert main(["ablate", str(config), "--arms", "off", "--seeds", "1",
                 "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nodata" in err[0]
    assert not out.exists()


def test_arm_specs_become_config_overrides():
    assert parse_arm("off").overrides == ('scu.mode="off"',)
    assert parse_arm("default").overrides == ()
    assert parse_arm("fixed:0.1").overrides == ('scu.mode="fixed"', "scu.lambda_init=0.1")
    assert parse_arm("pi:auto@init").overrides == (
        'scu.mode="pi"', 'scu.target_s="auto"', 'scu.prior_center="init"')
    assert parse_arm("pi:0.01@zero").slug == "pi-0.01-zero"


def test_report_has_every_arm_with_its_statistics(ablation: Path):
    report = json.loads((ablation / "ablation.json").read_text())
    assert [a["arm"] for a in report["arms"]] == ["off", "fixed:1@init", "pi:auto@init"]
    for arm in report["arms"]:
        assert len(arm["runs"]) == 2
        finals = [r["heldout_bpt"] for r in arm["runs"]]
        assert arm["heldout_bpt_mean"] == pytest.approx(sum(finals) / 2)
        assert arm["heldout_bpt_std"] == pytest.approx(abs(finals[0] - finals[1]) / 2 ** 0.5)
        assert arm["best_bpt_mean"] <= arm["heldout_bpt_mean"] + 1e-12
        assert arm["wall_s_mean"] > 0
        assert arm["curve"][0]["step"] == 0 and arm["curve"][-1]["step"] == 12
        assert {r["seed"] for r in arm["runs"]} == {42, 43}
    off, fixed, auto = report["arms"]
    # every run starts from the same base model on the same held-out blocks
    assert {r["base_bpt"] for a in report["arms"] for r in a["runs"]} == {
        report["base_heldout_bpt"]}
    assert off["lambda_at_bound_share"] is None and fixed["lambda_at_bound_share"] is None
    assert 0.0 <= auto["lambda_at_bound_share"] <= 1.0
    assert auto["target_s_mean"] > 0  # "auto" resolved in both runs
    # the runs really differ: a penalty changes the result
    assert fixed["heldout_bpt_mean"] != off["heldout_bpt_mean"]
    md = (ablation / "ablation.md").read_text()
    assert f"Base model held-out BPT (step 0): {report['base_heldout_bpt']:.4f}" in md
    for row in table_rows(report):
        assert "| " + " | ".join(row) + " |" in md
    change = versus_off(fixed, off)
    assert change is not None and change[0] == pytest.approx(
        fixed["heldout_bpt_mean"] - off["heldout_bpt_mean"])
    assert (ablation / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [a.path for a in find_ablations([ablation.parent])] == [ablation]


def test_a_second_ablation_reuses_finished_runs(ablation: Path, tiny_toml: Path, capsys):
    events = sorted(ablation.glob("runs/*/events.jsonl"))
    before = {p: p.stat().st_mtime_ns for p in events}
    assert main(["ablate", str(tiny_toml), "--arms", "off,fixed:1@init,pi:auto@init",
                 "--seeds", "2", "--output-dir", str(ablation)]) == 0
    out = capsys.readouterr().out
    assert out.count("finished earlier, reused") == 6 and "training (" not in out
    assert {p: p.stat().st_mtime_ns for p in events} == before


def test_run_states_follow_what_is_on_disk(ablation: Path, tiny_toml: Path):
    arms = [parse_arm("off")]
    same = plan(tiny_toml, arms, 1, ablation, [])[0]
    assert run_state(same) == "finished"
    longer = plan(tiny_toml, arms, 1, ablation, [], steps=13)[0]
    assert run_state(longer) == "new"  # other settings: trained again, not reused
    other = plan(tiny_toml, arms, 1, ablation, ["train.learning_rate=1e-3"])[0]
    assert run_state(other) == "new"


def test_an_interrupted_run_is_resumed_from_its_checkpoint(tiny_toml: Path, tmp_path, capsys):
    out = tmp_path / "abl"
    args = ["ablate", str(tiny_toml), "--arms", "fixed:0.5", "--seeds", "1", "--output-dir",
            str(out)]
    assert main(args) == 0
    run = out / "runs" / "fixed-0.5-seed42"
    (run / "mlx_training_summary.json").unlink()  # as if it died after its last checkpoint
    capsys.readouterr()
    assert main(args) == 0
    assert f"[1/1] fixed:0.5 seed 42: resuming ({run})" in capsys.readouterr().out
    starts = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()
              if '"RunStarted"' in line]
    assert [s["start_step"] for s in starts] == [0, 12]
    assert json.loads((run / "mlx_training_summary.json").read_text())["status"] == "completed"
