"""Information per joule (TSCU.md section 2, Efficiency): N x the drop in held-out data
BPT, one N (ParamBPT's) everywhere, the MDL view only with the penalty on, the tracker's
baseline carried through a checkpoint. Real training on the embedded model, on the
simulated plant (the energy source tests can rely on)."""

from __future__ import annotations

import io
import json
import queue

import pytest
from rich.console import Console
from runs import tiny_config

from tscu_tui.console_display import ConsoleDisplay
from tscu_tui.engine.events import Command, EvalEvent, RunFinished, StepEvent
from tscu_tui.engine.telemetry.efficiency import EfficiencyTracker, mdl_meaning
from tscu_tui.engine.train.trainer import Trainer

# `tscu demo --headless` on the embedded model before this definition (main at 5c2bd39,
# measured here): held-out BPT fell at every evaluation, ParamBPT (penalty off) rose,
# and the old TotalBPT difference gave -607 bits/J at step 50, -90 bits/J at the end,
# and a "diminishing returns" warning. (step, held-out BPT, ParamBPT, joules)
DEMO_N = 543_195
DEMO_EVALS = [(0, 9.5565, 0.0, 605.8), (25, 5.2685, 3.6784, 1426.4),
              (50, 4.4148, 5.4288, 2228.7), (75, 3.8260, 6.1742, 2733.8),
              (100, 3.6390, 6.5649, 3164.2), (125, 3.4387, 6.7815, 3774.4),
              (150, 3.3779, 6.9201, 4244.8), (175, 3.3075, 6.9898, 4707.8),
              (200, 3.2880, 7.0284, 5187.6)]


def _demo_readings(mdl: bool) -> list:
    _, bpt0, param0, joules0 = DEMO_EVALS[0]
    tracker = EfficiencyTracker(n_tokens=DEMO_N, target_bits_per_joule=1.0, patience=3,
                                heldout_bpt_start=bpt0, param_bpt_start=param0,
                                energy_j_start=joules0, mdl=mdl)
    return [tracker.update(heldout_bpt=bpt, energy_j=joules, tokens_processed=step * 1016,
                           param_bpt=param) for step, bpt, param, joules in DEMO_EVALS[1:]]


def test_held_out_bpt_falling_gives_positive_information_whatever_param_bpt_does():
    readings = _demo_readings(mdl=False)
    for (_, before, _, _), (_, after, _, _), r in zip(DEMO_EVALS, DEMO_EVALS[1:], readings,
                                                      strict=False):
        assert r.bits_marginal == pytest.approx(DEMO_N * (before - after))
        assert r.eta_marginal_bits_per_j > 0
    assert not any(r.diminishing_returns for r in readings)
    last = readings[-1]
    assert last.bits_cumulative == pytest.approx(DEMO_N * (9.5565 - 3.2880))
    assert last.eta_cumulative_bits_per_j == pytest.approx(
        DEMO_N * (9.5565 - 3.2880) / (5187.6 - 605.8))  # about +743 bits/J, not -90
    assert last.mdl_bits_cumulative is None and last.mdl_eta_cumulative_bits_per_j is None


def test_mdl_view_subtracts_the_adapters_parameter_bits_and_says_what_its_sign_means():
    last = _demo_readings(mdl=True)[-1]
    assert last.mdl_bits_cumulative == pytest.approx(DEMO_N * ((9.5565 - 3.2880)
                                                               - (7.0284 - 0.0)))
    assert last.mdl_bits_cumulative < 0 < last.bits_cumulative
    assert last.mdl_eta_cumulative_bits_per_j == pytest.approx(
        last.mdl_bits_cumulative / (5187.6 - 605.8))
    assert mdl_meaning(last.mdl_bits_cumulative) == (
        "the adapter now costs more bits than it saves")
    assert "saves more" in mdl_meaning(1.0) and mdl_meaning(None) is None


def test_state_dict_carries_the_baseline_and_the_streak():
    tracker = EfficiencyTracker(n_tokens=100, target_bits_per_joule=1.0, patience=2,
                                heldout_bpt_start=5.0, energy_j_start=10.0)
    tracker.update(4.0, 20.0, 10)
    tracker.update(3.999, 1020.0, 20)  # below target: streak 1
    clone = EfficiencyTracker(n_tokens=100, target_bits_per_joule=1.0, patience=2,
                              heldout_bpt_start=3.0)  # a resumed run's first evaluation
    clone.load_state_dict(json.loads(json.dumps(tracker.state_dict())))
    a, b = tracker.update(3.998, 2020.0, 30), clone.update(3.998, 2020.0, 30)
    assert a == b and b.bits_cumulative == pytest.approx(100 * (5.0 - 3.998))
    assert b.newly_diminishing  # the streak survived the checkpoint


def _evals_of(events: list) -> list[EvalEvent]:
    return [e for e in events if isinstance(e, EvalEvent)]


def test_real_run_stop_and_resume_keep_one_n_and_one_baseline(demo_data, tmp_path):
    """Penalty off, `scu.tokens_n` set (so the train split's token count would differ):
    every evaluation's bits are N x the held-out drop, before and after a stop and
    --resume, which continues the first session's baseline (BPT and joules)."""
    n = 50_000
    out = tmp_path / "run"
    config = tiny_config(demo_data, out, 'telemetry.source="simulated"',
                         "telemetry.interval_seconds=0.05", "tscu.enabled=false",
                         "scu.mode=off", 'scu.prior_center="init"', f"scu.tokens_n={n}",
                         "train.eval_steps=3", "train.save_steps=1000")
    first: list = []
    commands: queue.Queue[Command] = queue.Queue()

    def user(event) -> None:  # presses stop after step 7 (evaluations at 0, 3, 6)
        first.append(event)
        if isinstance(event, StepEvent) and event.step == 7:
            commands.put(Command.STOP)

    Trainer(config, user, commands).run()
    assert isinstance(first[-1], RunFinished) and first[-1].reason == "stopped"
    second: list = []
    Trainer(config, second.append, resume=True).run()
    assert isinstance(second[-1], RunFinished) and second[-1].reason == "completed"

    evals = _evals_of(first) + _evals_of(second)
    assert [e.step for e in evals] == [0, 3, 6, 9, 12]
    assert evals[0].bits_cumulative is None  # the baseline itself
    base = evals[0]
    for before, e in zip(evals, evals[1:], strict=False):
        assert e.bits_marginal == pytest.approx(n * (before.heldout_bpt - e.heldout_bpt))
        assert e.bits_cumulative == pytest.approx(n * (base.heldout_bpt - e.heldout_bpt))
        assert (e.eta_marginal_bits_per_j > 0) == (e.heldout_bpt < before.heldout_bpt)
        joules = e.energy_j - base.energy_j  # the resumed session's joules continue
        assert e.eta_cumulative_bits_per_j == pytest.approx(e.bits_cumulative / joules,
                                                            rel=0.05)
        assert e.mdl_eta_cumulative_bits_per_j is None  # penalty off: no MDL view
    assert evals[-1].heldout_bpt < base.heldout_bpt and evals[-1].bits_cumulative > 0

    analysis = json.loads((out / "mlx_tscu_analysis.json").read_text())["efficiency"]
    assert analysis["n_tokens"] == n and analysis["mdl"] is None
    assert analysis["information_bits_cumulative"] == pytest.approx(evals[-1].bits_cumulative)
    assert analysis["information_per_joule_cumulative_bits"] == pytest.approx(
        evals[-1].eta_cumulative_bits_per_j)
    card = (out / "README.md").read_text()
    assert f"{n:,} training tokens" in card and "MDL view" not in card

    stream = io.StringIO()
    display = ConsoleDisplay(Console(file=stream, force_terminal=False, width=200))
    for event in second:
        display(event)
    line = next(x for x in stream.getvalue().splitlines() if x.startswith("eval at step 12"))
    assert f"{evals[-1].eta_cumulative_bits_per_j:.3g} bits/J" in line and "learned +" in line


def test_penalty_on_reports_the_mdl_view_beside_the_information(demo_data, tmp_path):
    out = tmp_path / "run"
    trainer_events: list = []
    Trainer(tiny_config(demo_data, out, 'telemetry.source="simulated"',
                        "telemetry.interval_seconds=0.05", "tscu.enabled=false",
                        "scu.mode=fixed", "scu.lambda_init=0.5", 'scu.prior_center="init"',
                        "train.max_steps=4", "train.eval_steps=2", "train.save_steps=1000"),
            trainer_events.append).run()
    last = _evals_of(trainer_events)[-1]
    from tscu_tui.engine.data.store import PreparedDataset

    n = PreparedDataset.open(demo_data).meta.split("train").trained_tokens  # one N: the
    # targets that carry loss (padding after a whole document does not)
    assert last.mdl_bits_cumulative == pytest.approx(
        last.bits_cumulative - n * last.param_bpt)  # ParamBPT starts at 0 (prior at init)
    analysis = json.loads((out / "mlx_tscu_analysis.json").read_text())["efficiency"]
    assert analysis["mdl"]["bits_cumulative"] == pytest.approx(last.mdl_bits_cumulative)
    assert analysis["mdl"]["meaning"] == mdl_meaning(last.mdl_bits_cumulative)
    assert "MDL view" in (out / "README.md").read_text()
