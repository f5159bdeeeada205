"""`tscu ablate` on the embedded model: arms x seeds as real runs over several epochs of a
corpus it overfits, paired by seed, reported at the final and the best-validation step on
the test split; resuming; bad input refused in one line with nothing written."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest

from tscu_tui.cli import main
from tscu_tui.engine.models.load import EMBEDDED_MODEL
from tscu_tui.engine.runs.ablations import find_ablations, table_rows, versus_off
from tscu_tui.engine.train.ablation import parse_arm, parse_arms, plan, run_state
from tscu_tui.engine.train.ablation_stats import summarize

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


SHIFT = """
[model]
name = "{model}"
[data]
path = "{data}"
block_size = 64
sample_max_tokens = 0
[lora]
r = 8
alpha = 8.0
dropout = 0.0
[train]
batch_size = 4
gradient_accumulation_steps = 1
learning_rate = 5e-3
lr_scheduler = "constant"
warmup_steps = 2
epochs = 4
eval_steps = 2
save_steps = 8
logging_steps = 8
eval_batches = 2
[telemetry]
source = "none"
"""
ARMS = "off,fixed:1@init,pi:auto@init,wd:0.5,dropout:0.2"


@pytest.fixture(scope="module")
def shift_toml(shift_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ablate-shift") / "shift.toml"
    path.write_text(SHIFT.format(model=EMBEDDED_MODEL, data=shift_data))
    return path


@pytest.fixture(scope="module")
def ablation(shift_toml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real ablation: off, a fixed lambda, pi:auto, weight decay and dropout, 2 seeds x
    4 epochs (16 steps) of a corpus with a test split that the model overfits."""
    out = tmp_path_factory.mktemp("ablation") / "abl"
    # One BLAS thread throughout: the count adapts to the machine's load otherwise, and a
    # different summation order would make runs that should agree bit for bit differ in
    # the last digits.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TSCU_BLAS_THREADS", "1")
        assert main(["ablate", str(shift_toml), "--arms", ARMS, "--seeds", "2",
                     "--output-dir", str(out)]) == 0
    return out


def metrics(ablation: Path, arm: str, seed: int) -> dict:
    slug = arm.replace(":", "-").replace("@", "-")
    return json.loads((ablation / "runs" / f"{slug}-seed{seed}" /
                       "mlx_tscu_training_metrics.json").read_text())


def summary(ablation: Path, arm: str, seed: int) -> dict:
    slug = arm.replace(":", "-").replace("@", "-")
    return json.loads((ablation / "runs" / f"{slug}-seed{seed}" /
                       "mlx_training_summary.json").read_text())


@pytest.mark.parametrize(("args", "message"), [
    (["--arms", "off,foo"], "--arms: 'foo' is not an arm"),
    (["--arms", "fixed:-0.5"], "--arms: 'fixed:-0.5': a fixed lambda must be >= 0"),
    (["--arms", "pi:1.5"], "--arms: 'pi:1.5': a target S must lie in (0, 1)"),
    (["--arms", "pi:1"], "--arms: 'pi:1': a target S must lie in (0, 1)"),
    (["--arms", "off,wd:-1"], "--arms: 'wd:-1': a weight decay must be >= 0"),
    (["--arms", "dropout:1.5"], "--arms: 'dropout:1.5': a dropout rate must lie in [0, 1)"),
    (["--arms", "dropout:0.95"], "lora.dropout = 0.95: must be a number in [0, 0.9]"),
    (["--epochs", "0"], "--epochs 0: must be a number > 0"),
    (["--epochs", "-1.5"], "--epochs -1.5: must be a number > 0"),
    (["--epochs", "two"], "--epochs two: must be a number > 0"),
    (["--epochs", "2", "--steps", "5"], "--steps and --epochs: give one of them"),
    (["--set", "train.epochs=2", "--set", "train.max_steps=5"],
     "train.epochs = 2 and train.max_steps = 5 are both set"),
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
    assert parse_arm("wd:0.1").overrides == ('scu.mode="off"', "train.weight_decay=0.1")
    assert parse_arm("dropout:0.1").overrides == ('scu.mode="off"', "lora.dropout=0.1")
    assert parse_arm("dropout:0.1").slug == "dropout-0.1"


def test_report_gives_every_arm_final_and_best_on_test(ablation: Path):
    report = json.loads((ablation / "ablation.json").read_text())
    assert report["metric"] == "test" and report["off_arm"] == "off"
    assert report["steps"] == 16 and report["epochs"] == pytest.approx(4.0)
    assert [a["arm"] for a in report["arms"]] == ARMS.split(",")
    assert report["pairing_problems"] == []
    for arm in report["arms"]:
        assert len(arm["runs"]) == 2 and {r["seed"] for r in arm["runs"]} == {42, 43}
        finals = [r["test_final_bpt"] for r in arm["runs"]]
        bests = [r["test_best_bpt"] for r in arm["runs"]]
        assert arm["heldout_bpt_mean"] == pytest.approx(statistics.fmean(finals))
        assert arm["heldout_bpt_std"] == pytest.approx(statistics.stdev(finals))
        assert arm["best_bpt_mean"] == pytest.approx(statistics.fmean(bests))
        for run in arm["runs"]:
            evals = {step: bpt for step, bpt in run["curve"]}
            # the best step is the validation minimum (first one on a tie) ...
            assert evals[run["best_step"]] == min(evals.values()) == run["best_bpt"]
            # ... and the final reading is the last step's, on the test split
            assert run["curve"][-1][0] == 16 and run["heldout_bpt"] == evals[16]
            assert run["test_base_bpt"] == report["base_test_bpt"]
        assert arm["curve"][0]["step"] == 0 and arm["curve"][-1]["step"] == 16
    # every run starts from the same base model on the same held-out blocks
    assert {r["base_bpt"] for a in report["arms"] for r in a["runs"]} == {
        report["base_heldout_bpt"]}
    off, fixed, auto, wd, dropout = report["arms"]
    assert off["lambda_at_bound_share"] is None and fixed["lambda_at_bound_share"] is None
    assert (wd["weight_decay"], wd["dropout"], dropout["dropout"]) == (0.5, 0.0, 0.2)
    assert {wd["mode"], dropout["mode"]} == {"off"}
    # the corpus is one the model overfits: off's validation turns up after its best
    assert any(r["best_step"] < 16 for r in off["runs"])
    assert [a.path for a in find_ablations([ablation.parent])] == [ablation]


def test_paired_differences_are_per_seed_against_off(ablation: Path):
    report = json.loads((ablation / "ablation.json").read_text())
    off = {r["seed"]: r for r in report["arms"][0]["runs"]}
    for arm in report["arms"]:
        pairs = arm["paired"]
        if arm["arm"] == "off":
            assert pairs["final_vs_off_final"] is None and pairs["best_vs_off_best"] is None
        for name, own, theirs in (("final_vs_off_final", "final", "final"),
                                  ("final_vs_off_best", "final", "best"),
                                  ("best_vs_off_best", "best", "best")):
            if pairs[name] is None:
                continue
            diffs = [r[f"test_{own}_bpt"] - off[r["seed"]][f"test_{theirs}_bpt"]
                     for r in sorted(arm["runs"], key=lambda r: r["seed"])]
            pair = pairs[name]
            assert pair["diffs"] == pytest.approx(diffs) and pair["n"] == 2
            assert pair["mean"] == pytest.approx(statistics.fmean(diffs))
            assert pair["sd"] == pytest.approx(statistics.stdev(diffs))
            assert pair["beyond_noise"] == (abs(pair["mean"]) > 2 * pair["sd"] / math.sqrt(2))
    fixed = report["arms"][1]
    change = versus_off(fixed, report["arms"][0])
    assert change == (pytest.approx(fixed["paired"]["final_vs_off_final"]["mean"]),
                      fixed["paired"]["final_vs_off_final"]["beyond_noise"])
    md = (ablation / "ablation.md").read_text()
    assert "Every number is BPT on the test split" in md
    assert f"test BPT: {report['base_test_bpt']:.4f}" in md
    for row in table_rows(report):
        assert "| " + " | ".join(row) + " |" in md
    assert (ablation / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_arms_share_each_seeds_initial_adapter_and_data_order(ablation: Path):
    """Arms differ only in what they name: seed k of every arm starts from the same
    adapter and reads the same batches. So step 1 (measured on the initial weights, where
    B = 0 makes dropout a no-op) has the same training loss in every arm, and so has step 2
    where step 1's update was the same (an init-centred penalty has no gradient at the
    initial weights, and pi:auto has no penalty yet); seeds differ from each other."""
    arms = ARMS.split(",")
    for seed in (42, 43):
        digests = {arm: summary(ablation, arm, seed)["pairing"] for arm in arms}
        assert len({json.dumps(d, sort_keys=True) for d in digests.values()}) == 1, digests
        loss = {arm: [s["data_bpt"] for s in metrics(ablation, arm, seed)["steps"][:2]]
                for arm in arms}
        assert len({first for first, _ in loss.values()}) == 1, loss
        assert loss["off"][1] == loss["fixed:1@init"][1] == loss["pi:auto@init"][1]
        assert loss["dropout:0.2"][1] != loss["off"][1] != loss["wd:0.5"][1]
    assert summary(ablation, "off", 42)["pairing"] != summary(ablation, "off", 43)["pairing"]


def test_pi_auto_is_off_until_validation_stops_improving(ablation: Path):
    for seed in (42, 43):
        off, auto = metrics(ablation, "off", seed), metrics(ablation, "pi:auto@init", seed)
        resolved = next((s for s in auto["steps"] if s["s_target"] is not None), None)
        assert resolved is not None, "validation never turned up: the corpus did not overfit"
        before = [s for s in auto["steps"] if s["step"] < resolved["step"]]
        assert all(s["lambda_reg"] == 0.0 for s in before)
        assert [s["loss"] for s in before] == [s["loss"] for s in off["steps"][:len(before)]]
        evals = [e for e in auto["evals"] if e["step"] < resolved["step"]]
        best = min(evals, key=lambda e: e["heldout_bpt"])
        # the target is S at the best evaluation: its ParamBPT over the training DataBPT
        # (smoothed as the controller smooths S) plus it; two evaluations before
        data = None
        for step in auto["steps"][:best["step"]]:
            data = step["data_bpt"] if data is None else data + 0.3 * (step["data_bpt"] - data)
        assert resolved["s_target"] == pytest.approx(
            best["param_bpt"] / (data + best["param_bpt"]))
        assert [e["step"] for e in evals if e["step"] > best["step"]] == [
            best["step"] + 2, best["step"] + 4]
        assert resolved["lambda_reg"] > 0


def test_a_pair_that_does_not_share_its_seed_is_left_out(ablation: Path, shift_toml: Path,
                                                         tmp_path: Path):
    copy = tmp_path / "abl"
    shutil.copytree(ablation, copy)
    runs = plan(shift_toml, parse_arms("off,wd:0.5"), 2, copy, [])
    path = copy / "runs" / "wd-0.5-seed43" / "mlx_training_summary.json"
    data = json.loads(path.read_text())
    data["pairing"]["initial_adapter"] = "sha256:other"
    path.write_text(json.dumps(data))
    report = summarize(runs, {})
    assert report["pairing_problems"] == [
        "wd:0.5: seed 43: its initial adapter differs from off's"]
    assert report["arms"][1]["paired"]["final_vs_off_final"]["n"] == 1


def test_best_and_final_test_readings_are_the_saved_adapters(ablation: Path, shift_data: Path):
    """Measured again here from the run's files: the final adapter (what the run saved)
    and best/ (the best validation evaluation's), on the test split."""
    from tscu_tui.engine.config import LoraConfig
    from tscu_tui.engine.data import PreparedDataset
    from tscu_tui.engine.models.load import load_model
    from tscu_tui.engine.train import lora
    from tscu_tui.engine.train.evaluate import heldout_bits_per_token

    run = next(f"off-seed{seed}" for seed in (42, 43)
               if summary(ablation, "off", seed)["best_step"] < 16)
    folder = ablation / "runs" / run
    test = json.loads((folder / "mlx_training_summary.json").read_text())["test"]
    model, _, _ = load_model(EMBEDDED_MODEL)
    lora.apply_lora(model, LoraConfig(r=8, alpha=8.0, dropout=0.0))
    data = PreparedDataset.open(shift_data)
    measured = {}
    for name, file in (("final", folder / "adapters.safetensors"),
                       ("best", folder / "best" / "adapters.safetensors")):
        lora.load_adapter_weights(model, file)
        measured[name] = heldout_bits_per_token(model, data, "test", 4, 2).bpt
    assert measured["final"] == pytest.approx(test["final_bpt"], abs=1e-4)
    assert measured["best"] == pytest.approx(test["best_bpt"], abs=1e-4)
    assert not np.isclose(measured["final"], measured["best"])


def test_a_second_ablation_reuses_finished_runs(ablation: Path, shift_toml: Path, capsys):
    events = sorted(ablation.glob("runs/*/events.jsonl"))
    before = {p: p.stat().st_mtime_ns for p in events}
    assert main(["ablate", str(shift_toml), "--arms", ARMS, "--seeds", "2",
                 "--output-dir", str(ablation)]) == 0
    out = capsys.readouterr().out
    assert out.count("finished earlier, reused") == 10 and "training (" not in out
    assert {p: p.stat().st_mtime_ns for p in events} == before


def test_run_states_follow_what_is_on_disk(ablation: Path, shift_toml: Path):
    arms = [parse_arm("off")]
    same = plan(shift_toml, arms, 1, ablation, [])[0]
    assert run_state(same) == "finished"
    assert run_state(plan(shift_toml, arms, 1, ablation, [], epochs=4)[0]) == "finished"
    longer = plan(shift_toml, arms, 1, ablation, [], epochs=5)[0]
    assert longer.plan.steps == 20 and run_state(longer) == "new"
    other = plan(shift_toml, arms, 1, ablation, ["train.learning_rate=1e-3"])[0]
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
    # the demo data has no test split, and the report says so
    report = json.loads((out / "ablation.json").read_text())
    assert report["metric"] == "validation" and report["base_test_bpt"] is None
    assert "This dataset has no test split" in (out / "ablation.md").read_text()
