"""Many epochs of a small corpus (issue 21): train.epochs, scu.mode = "auto", the test
split measured at the end (final and best-validation adapters), the "auto" target from
validation, and the overfitting signal. Ablations of this regime: test_ablation.py."""

from __future__ import annotations

import json
import math

import pytest
from runs import tiny_config, train

from tscu_tui.cli import main
from tscu_tui.engine.config import ScuConfig, TrainConfig, load_config
from tscu_tui.engine.data import PreparedDataset
from tscu_tui.engine.errors import ConfigError, TscuError
from tscu_tui.engine.events import EvalEvent, LogEvent, RunStarted, StepEvent, TestEvent
from tscu_tui.engine.train.run_plan import plan_run
from tscu_tui.engine.train.scu_run import RunScu
from tscu_tui.engine.train.selection import FitWatch

# ------------------------------------------------------------------ train.epochs


def test_epochs_or_max_steps_whichever_a_later_layer_gives(tmp_path):
    file = tmp_path / "c.toml"
    file.write_text("[train]\nepochs = 2.5\n")
    config = load_config(file)  # max_steps' default does not count as given
    assert (config.train.epochs, config.train.max_steps) == (2.5, 0)
    assert load_config(file, ["train.max_steps=7"]).train.epochs == 0  # --set wins
    file.write_text("[train]\nmax_steps = 40\n")
    config = load_config(file, ["train.epochs=3"])
    assert (config.train.epochs, config.train.max_steps) == (3.0, 0)


@pytest.mark.parametrize(("text", "overrides", "message"), [
    ("[train]\nepochs = 2\nmax_steps = 5\n", [],
     "train.epochs = 2 and train.max_steps = 5 are both set: give one of them"),
    ("", ["train.epochs=2", "train.max_steps=5"], "are both set"),
    ("[train]\nmax_steps = 0\n", [], "train.max_steps = 0 and train.epochs = 0: set one"),
    ("[train]\nepochs = -1\n", [], "c.toml:2: train.epochs = -1: must be a number >= 0"),
])
def test_both_or_neither_is_one_line_naming_the_settings(tmp_path, text, overrides, message):
    file = tmp_path / "c.toml"
    file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(file, overrides)
    assert len(info.value.problems) == 1 and message in info.value.problems[0]
    assert info.value.problems[0].startswith(str(file))


def test_epochs_resolve_to_steps_of_the_batch_sampler(demo_data):
    meta = PreparedDataset.open(demo_data).meta
    blocks = meta.split("train").blocks
    config = load_config(None, ["train.epochs=2.5", "train.batch_size=4",
                                "train.gradient_accumulation_steps=3"])
    plan = plan_run(config, meta)
    per_epoch = (blocks // 4) / 3  # the ragged tail of each permutation is dropped
    assert plan.steps_per_epoch == pytest.approx(per_epoch)
    assert plan.steps == math.ceil(2.5 * per_epoch) and plan.from_epochs
    assert plan.apply(config).train.max_steps == plan.steps
    by_steps = plan_run(load_config(None, ["train.max_steps=30"]), meta)
    assert by_steps.steps == 30 and by_steps.epochs == pytest.approx(30 / by_steps.steps_per_epoch)


def test_scu_auto_is_on_only_past_one_epoch(demo_data):
    meta = PreparedDataset.open(demo_data).meta
    one = plan_run(load_config(None, ['scu.mode="auto"', "train.epochs=1"]), meta)
    more = plan_run(load_config(None, ['scu.mode="auto"', "train.epochs=1.2"]), meta)
    assert (one.scu_mode, more.scu_mode) == ("off", "pi")
    assert one.scu_mode_setting == more.scu_mode_setting == "auto"
    assert "scu.mode = auto -> pi (the run exceeds one epoch)" in more.describe()
    fixed = plan_run(load_config(None, ['scu.mode="fixed"', "train.epochs=3"]), meta)
    assert fixed.scu_mode == "fixed"


def test_check_config_shows_the_resolved_steps(demo_data, tmp_path, capsys):
    file = tmp_path / "c.toml"
    file.write_text(f'[data]\npath = "{demo_data}"\n[train]\nepochs = 2\nbatch_size = 4\n'
                    "gradient_accumulation_steps = 1\n")
    assert main(["check-config", str(file)]) == 0
    blocks = PreparedDataset.open(demo_data).meta.split("train").blocks
    out = capsys.readouterr().out
    assert (f"# Run on {demo_data}: {2 * (blocks // 4)} optimizer steps (train.epochs = 2), "
            f"{blocks // 4} steps an epoch.") in out
    file.write_text('[data]\npath = "nowhere"\n[train]\nepochs = 2\n')
    assert main(["check-config", str(file)]) == 0
    assert "# Steps not resolved: prepared dataset not found: nowhere" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "train.epochs=0", "--set", "train.max_steps=0"],
     "train.max_steps = 0 and train.epochs = 0"),
    (["--set", "train.epochs=2", "--set", "train.max_steps=9"], "are both set"),
    (["--set", "lora.dropout=1.5"], "lora.dropout = 1.5: must be a number in [0, 0.9]"),
    (["--set", "train.weight_decay=-1"], "train.weight_decay = -1"),
])
def test_train_refuses_bad_lengths_in_one_line_and_writes_nothing(demo_data, tmp_path, capsys,
                                                                  args, message):
    out = tmp_path / "run"
    assert main(["train", "--dataset-path", str(demo_data), "--output-dir", str(out),
                 *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tscu: error: ") and message in err[0], err
    assert not out.exists()


def test_a_test_fraction_that_leaves_no_training_data_is_refused(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["prepare", "--dataset", "pydoc", "--model", "tscu-tiny-qwen3",
                 "--output-dir", str(out), "--validation-fraction", "0.5",
                 "--test-fraction", "0.5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--test-fraction 0.5 leave no training data" in err[0], err
    assert not out.exists()


# ------------------------------------------------------------------ "auto" from validation

def _scu(**train: int) -> RunScu:
    return RunScu(ScuConfig(mode="pi", target_s="auto"), TrainConfig(warmup_steps=2, **train),
                  scale=1.0)


def test_auto_waits_for_validation_to_stay_above_its_best_then_holds_that_s():
    scu = _scu()
    trace = {1: 0.2, 2: 0.4, 3: 0.5, 4: 0.6, 5: 0.7, 6: 0.8}
    evals = {2: (4.0, 1.5), 4: (4.1, 2.0), 6: (4.2, 3.0)}  # step: (validation, ParamBPT)
    resolved = scu.after_eval(0, 5.0, 0.0)  # the base model: never a target
    for step in range(1, 7):
        out = scu.after_step(trace[step], step, skipped=False, data_bpt=3.0)
        assert out.lambda_reg == 0.0 and out.target_s is None  # no penalty while searching
        if step in evals:
            resolved = scu.after_eval(step, *evals[step]) or resolved
            assert (resolved is None) == (step < 6)  # two evaluations above the best
    assert resolved is not None and resolved.best_step == 2
    # S at the best evaluation: its ParamBPT over the smoothed training DataBPT plus it
    assert resolved.target_s == scu.target == pytest.approx(1.5 / (3.0 + 1.5))
    # lambda starts where the penalty weighs as much as the data: DataBPT / ParamBPT
    smoothed = scu.controller.s_smoothed
    assert resolved.lambda_start == pytest.approx((1 - smoothed) / smoothed)
    assert scu.after_step(0.9, 7, skipped=False).lambda_reg > resolved.lambda_start


def test_auto_never_resolves_while_validation_improves_or_during_warmup():
    scu = _scu()
    for step, bpt in ((1, 4.0), (2, 4.5), (3, 3.9), (4, 3.8), (5, 3.7)):
        scu.after_step(0.1 * step, step, skipped=False, data_bpt=3.0)
        assert scu.after_eval(step, bpt, 0.1 * step) is None  # steps 1-2 are warm-up
    assert scu.searching and scu.lambda_reg == 0.0


def test_auto_search_survives_a_checkpoint():
    a = _scu()
    for step, bpt in ((1, 4.0), (2, 3.0), (3, 3.5)):
        a.after_step(0.1 * step, step, skipped=False, data_bpt=3.0)
        a.after_eval(step, bpt, 0.1 * step)
    b = _scu()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())), a.lambda_reg)
    a.after_step(0.5, 4, skipped=False, data_bpt=3.0)
    b.after_step(0.5, 4, skipped=False, data_bpt=3.0)
    resolved = a.after_eval(4, 3.6, 0.4)
    assert resolved is not None and b.after_eval(4, 3.6, 0.4) == resolved


# ------------------------------------------------------------------ the overfitting signal

def _step(step: int, data_bpt: float) -> StepEvent:
    return StepEvent(step=step, max_steps=20, loss=data_bpt, data_bpt=data_bpt, param_bpt=0.0,
                     s=0.0, s_smoothed=0.0, s_target=None, lambda_reg=0.0, scu_p=0.0,
                     scu_i=0.0, lr=1e-3, grad_norm=1.0, tokens=0, tokens_per_s=1.0,
                     step_s=0.1, elapsed_s=0.0, eta_s=0.0)


def _eval(step: int, bpt: float) -> EvalEvent:
    return EvalEvent(step=step, heldout_bpt=bpt, perplexity=2 ** bpt, best_bpt=bpt,
                     is_best=False, eval_s=0.1)


def feed(watch: FitWatch, train: list[float], evals: dict[int, float]):
    state = watch.evaluate(_eval(0, evals[0]))
    for step, bpt in enumerate(train, start=1):
        watch.step(_step(step, bpt))
        if step in evals:
            state = watch.evaluate(_eval(step, evals[step]))
    return state


def test_overfitting_is_validation_above_its_best_while_training_falls():
    train = [5.0, 4.0, 3.5, 3.0, 2.5, 2.0]
    state = feed(FitWatch(), train, {0: 6.0, 2: 4.0, 4: 4.2, 6: 4.3})
    assert state.overfitting and (state.best_step, state.best_bpt) == (2, 4.0)
    assert state.describe().startswith("OVERFITTING: validation above its best for 2 "
                                       "evaluations while the training loss falls")
    assert "best validation 4.0000 bits/token at step 2, adapter in best/" in state.describe()
    once = feed(FitWatch(), train[:4], {0: 6.0, 2: 4.0, 4: 4.2})
    assert not once.overfitting and once.evals_above_best == 1
    flat = feed(FitWatch(), [5.0, 4.0, 4.5, 4.6, 4.7, 4.8], {0: 6.0, 2: 4.0, 4: 4.2, 6: 4.3})
    assert not flat.overfitting  # training loss not falling: a plateau, not overfitting
    never = feed(FitWatch(), [6.0, 5.5, 5.0, 4.5], {0: 3.0, 2: 3.5, 4: 3.6})
    assert never.overfitting and "the base model (step 0)" in never.describe()


# ------------------------------------------------------------------ the test split in a run

def test_a_run_measures_test_for_base_final_and_best_adapters(shift_data, tmp_path):
    out = tmp_path / "run"
    events, _ = train(tiny_config(shift_data, out, 'scu.mode="off"', "train.max_steps=0",
                                  "train.epochs=4", "train.eval_steps=2",
                                  "train.learning_rate=5e-3", "lora.r=8", "lora.alpha=8.0"))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.max_steps == 16 and started.steps_per_epoch == 4.0
    assert started.test_tokens == PreparedDataset.open(shift_data).meta.split("test").tokens
    tests = [e for e in events if isinstance(e, TestEvent)]
    evals = [e for e in events if isinstance(e, EvalEvent)]
    best = min(evals, key=lambda e: e.heldout_bpt)
    assert [(t.adapter, t.step) for t in tests] == [("base", 0), ("final", 16),
                                                   ("best", best.step)]
    assert tests[0].test_bpt != evals[0].heldout_bpt  # the other split
    summary = json.loads((out / "mlx_training_summary.json").read_text())
    split = PreparedDataset.open(shift_data).meta.split("test").tokens
    assert summary["test"] == {"split": "dataset split", "tokens": split,
                               "evaluated_tokens": tests[1].tokens,  # train.eval_batches
                               "base_bpt": tests[0].test_bpt, "final_bpt": tests[1].test_bpt,
                               "best_bpt": tests[2].test_bpt, "best_step": best.step}
    assert (summary["epochs"], summary["max_steps"], summary["best_step"]) == (4.0, 16,
                                                                               best.step)
    analysis = json.loads((out / "mlx_tscu_analysis.json").read_text())
    assert analysis["test"] == summary["test"]
    card = (out / "README.md").read_text()
    assert f"{tests[2].test_bpt:.4f} with the best-validation adapter (step {best.step})" in card
    log = (out / "logs" / "mlx_training.log").read_text()
    assert f"test split, final adapter (step 16): {tests[1].test_bpt:.4f}" in log
    assert any(isinstance(e, LogEvent) and e.message.startswith("plan: 16 optimizer steps")
               for e in events)


def test_without_a_test_split_the_run_says_so(demo_data, tmp_path):
    out = tmp_path / "run"
    events, _ = train(tiny_config(demo_data, out, "train.max_steps=4", "train.eval_steps=4"))
    assert not [e for e in events if isinstance(e, TestEvent)]
    summary = json.loads((out / "mlx_training_summary.json").read_text())
    assert summary["test"]["split"] == "none" and summary["test"]["final_bpt"] is None
    assert "**Test split**: none" in (out / "README.md").read_text()


def test_auto_target_needs_a_validation_split(tmp_path):
    from runs import write_shift_corpus

    from tscu_tui.engine.data import PrepareOptions, prepare_dataset
    from tscu_tui.engine.models.load import EMBEDDED_MODEL

    source = write_shift_corpus(tmp_path / "src")
    (source / "valid.jsonl").unlink()
    data = tmp_path / "data"
    prepare_dataset(PrepareOptions(dataset=str(source), model=EMBEDDED_MODEL, output_dir=data,
                                   block_size=64, validation_fraction=0.0))
    config = load_config(None, ['scu.mode="pi"', 'scu.target_s="auto"', "train.batch_size=4"])
    with pytest.raises(TscuError, match='scu.target_s = "auto" needs a validation split'):
        plan_run(config, PreparedDataset.open(data).meta, data)
