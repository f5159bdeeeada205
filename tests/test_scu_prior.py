"""Where the prior is centred (scu.prior_center) and scu.target_s = "auto", on real runs of
the embedded model."""

from __future__ import annotations

import math

import numpy as np
from runs import tiny_config, train

from tscu_tui.engine.events import EvalEvent, LogEvent, RunStarted, StepEvent


def steps_of(events: list) -> list[StepEvent]:
    return [e for e in events if isinstance(e, StepEvent)]


def test_prior_centred_on_init_gives_parambpt_zero_at_step_zero(demo_data, tmp_path):
    init, _ = train(tiny_config(demo_data, tmp_path / "init", 'scu.prior_center="init"',
                                "scu.mode=fixed", "train.max_steps=3", "train.eval_steps=3"))
    zero, _ = train(tiny_config(demo_data, tmp_path / "zero", 'scu.prior_center="zero"',
                                "scu.mode=fixed", "train.max_steps=3", "train.eval_steps=3"))
    started = next(e for e in init if isinstance(e, RunStarted))
    first_eval = next(e for e in init if isinstance(e, EvalEvent))
    assert started.s_initial == 0.0 and first_eval.step == 0 and first_eval.param_bpt == 0.0
    init_steps = steps_of(init)
    assert init_steps[0].param_bpt == 0.0  # step 1's budget is measured on the step-0 weights
    assert 0 < init_steps[1].param_bpt < init_steps[2].param_bpt  # grows with what is learned
    # centred on zero, the random LoRA A matrices alone make S large before any learning
    assert next(e for e in zero if isinstance(e, RunStarted)).s_initial > 0.1
    assert steps_of(zero)[0].param_bpt > 10 * init_steps[2].param_bpt


def lora_a(run_dir) -> dict[str, np.ndarray]:
    from tscu_tui.engine.models.runtime import mx

    weights = mx.load(str(run_dir / "adapters.safetensors"))
    return {k: np.array(v.astype(mx.float32)) for k, v in weights.items() if "lora_a" in k}


def test_the_init_prior_pulls_towards_the_initial_weights_not_zero(demo_data, tmp_path):
    short = ("train.max_steps=8", "train.eval_steps=8")
    strong = ("scu.mode=fixed", "scu.lambda_init=50.0", "scu.prior_sigma=0.001", *short)
    train(tiny_config(demo_data, tmp_path / "init", 'scu.prior_center="init"', *strong))
    train(tiny_config(demo_data, tmp_path / "zero", 'scu.prior_center="zero"', *strong))
    train(tiny_config(demo_data, tmp_path / "free", "scu.mode=off", *short))
    # the same seed with a vanishing learning rate: the adapter as initialised
    train(tiny_config(demo_data, tmp_path / "start", "scu.mode=off",
                      "train.learning_rate=1e-12", *short))
    a0 = lora_a(tmp_path / "start")

    def distance(name: str) -> float:
        return math.sqrt(sum(float(((w - a0[k]) ** 2).sum())
                             for k, w in lora_a(tmp_path / name).items()))

    def norm(name: str) -> float:
        return math.sqrt(sum(float((w ** 2).sum()) for w in lora_a(tmp_path / name).values()))

    assert distance("init") < 0.3 * distance("free")  # held near where it started
    assert norm("zero") < 0.8 * norm("start")  # zero-centred: A itself is shrunk
    assert distance("zero") > 2 * distance("init")


def test_auto_target_resolves_once_validation_stops_improving_and_is_then_held(shift_data,
                                                                               tmp_path):
    events, _ = train(tiny_config(shift_data, tmp_path / "run", 'scu.target_s="auto"',
                                  'scu.prior_center="init"', "train.max_steps=20",
                                  "train.eval_steps=2", "train.save_steps=20",
                                  "train.learning_rate=1e-2", "lora.r=8", "lora.alpha=8.0"))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.s_target is None
    steps = steps_of(events)
    resolved = next(i for i, e in enumerate(steps) if e.s_target is not None)
    assert all(e.lambda_reg == 0.0 for e in steps[:resolved])  # `off` until then
    evals = [e for e in events if isinstance(e, EvalEvent)]
    best = min((e for e in evals if e.step < steps[resolved].step), key=lambda e: e.heldout_bpt)
    # two evaluations above the best (after the warm-up of 2 steps), then it resolves
    assert steps[resolved].step == best.step + 2 * 2 + 1 and best.step > 0
    target = steps[resolved].s_target
    assert 0 < target < 1 and all(e.s_target == target for e in steps[resolved:])
    assert len({e.lambda_reg for e in steps[resolved:]}) > 1  # now it controls
    assert any(isinstance(e, LogEvent) and "auto resolved to" in e.message for e in events)
