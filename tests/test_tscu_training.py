"""T-SCU in real training runs: the governor really duty-cycles, stops on emergency."""

from __future__ import annotations

import json
import statistics

import pytest
from runs import tiny_config, train

from tscu_tui.engine.events import (
    CheckpointEvent,
    EvalEvent,
    LogEvent,
    RunFinished,
    StepEvent,
)


def test_simulated_plant_budget_below_busy_power_holds_the_budget_within_5_percent(
        demo_data, tmp_path):
    """60 steps on the simulated plant (5 W idle, 40 W flat out) under a budget of 0.6x
    full power, evaluations included: the run's average power (energy over wall time,
    exact on the plant whatever this machine's speed) is within 5% of the budget."""
    budget = 0.6 * 40.0
    events, _ = train(tiny_config(demo_data, tmp_path / "run", 'telemetry.source="simulated"',
                                  "telemetry.interval_seconds=0.05",
                                  f"tscu.power_budget_watts={budget}", "train.max_steps=60",
                                  "train.eval_steps=20", "train.save_steps=1000"))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert all(e.telemetry_source == "simulated" and e.telemetry_kind == "simulated"
               for e in steps)
    late = steps[20:]
    # The governor throttled towards (24 - 5) / (40 - 5) = 0.54 and idles every step.
    assert statistics.median(e.control_factor for e in late) < 0.7
    assert all(e.idle_s > 0 for e in late)
    analysis = json.loads((tmp_path / "run" / "mlx_tscu_analysis.json").read_text())
    assert analysis["telemetry_source"] == "simulated"
    assert analysis["telemetry_kind"] == "simulated"
    assert abs(analysis["avg_power_watts"] / budget - 1) < 0.05
    assert analysis["total_energy_joules"] > 0
    evals = [e for e in events if isinstance(e, EvalEvent)]
    assert evals[-1].eta_cumulative_bits_per_j is not None and evals[-1].energy_j > 0


def test_estimated_source_low_budget_measurably_lowers_the_duty_fraction(demo_data, tmp_path):
    events, _ = train(tiny_config(demo_data, tmp_path / "run", 'telemetry.source="estimated"',
                                  "telemetry.interval_seconds=0.05",
                                  "tscu.power_budget_watts=1.0", "train.max_steps=20",
                                  "train.eval_steps=1000", "train.save_steps=1000"))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert all(e.telemetry_kind == "estimated" and e.power_w is not None for e in steps)
    late = steps[5:]
    compute = sum(e.step_s for e in late)
    duty = compute / (compute + sum(e.idle_s for e in late))
    assert duty < 0.6


def test_emergency_stop_saves_a_checkpoint_and_resumes_under_the_configs_limits(
        demo_data, tmp_path):
    """Stopped at a 26 °C emergency on the simulated plant; resumed with the default
    limits (75/85 °C) it trains on to the planned step, saying which limits changed
    and that the chip is cool enough (it once stopped again at the next step)."""
    hot = ('telemetry.source="simulated"', "telemetry.interval_seconds=0.05",
           "train.eval_steps=1000", "train.save_steps=1000")
    events, _ = train(tiny_config(demo_data, tmp_path / "run", *hot,
                                  "tscu.max_temperature_celsius=25.5",
                                  "tscu.temperature_hysteresis_celsius=0.1",
                                  "tscu.emergency_shutdown_temp=26.0", "train.max_steps=500"))
    assert isinstance(events[-1], RunFinished) and events[-1].reason == "emergency_stop"
    stopped = events[-1].step
    assert stopped < 500
    checkpoints = [e for e in events if isinstance(e, CheckpointEvent)]
    assert checkpoints[0].reason == "emergency" and checkpoints[0].step == stopped
    assert max(e.temp_c for e in events if isinstance(e, StepEvent)) >= 26.0

    resumed, _ = train(tiny_config(demo_data, tmp_path / "run", *hot,
                                   f"train.max_steps={stopped + 4}"), resume=True)
    assert isinstance(resumed[-1], RunFinished), resumed[-1]
    assert (resumed[-1].reason, resumed[-1].step) == ("completed", stopped + 4)
    said = [e.message for e in resumed if isinstance(e, LogEvent)]
    assert ("the config's limits apply, changed since the checkpoint: "
            "tscu.max_temperature_celsius 25.5 -> 75, tscu.temperature_hysteresis_celsius "
            "0.1 -> 2, tscu.emergency_shutdown_temp 26 -> 85") in said
    assert any(m.startswith("resuming after the emergency stop: 2") and
               m.endswith("°C is below tscu.max_temperature_celsius (75 °C)") for m in said)


def test_an_evaluation_a_stop_came_before_is_made_on_resume(demo_data, tmp_path):
    """The emergency stops a step before its evaluation (no compute while too hot); the
    resumed run evaluates that step first, so its record is the uninterrupted run's."""
    sim = ('telemetry.source="simulated"', "telemetry.interval_seconds=0.05",
           "train.eval_steps=1", "train.save_steps=1000")
    events, _ = train(tiny_config(demo_data, tmp_path / "run", *sim,
                                  "tscu.max_temperature_celsius=25.0",
                                  "tscu.temperature_hysteresis_celsius=0.1",
                                  "tscu.emergency_shutdown_temp=25.01", "train.max_steps=50"))
    assert events[-1].reason == "emergency_stop"
    stopped = events[-1].step
    assert [e.step for e in events if isinstance(e, EvalEvent)] == list(range(stopped))
    resumed, _ = train(tiny_config(demo_data, tmp_path / "run", *sim,
                                   f"train.max_steps={stopped + 2}"), resume=True)
    assert resumed[-1].reason == "completed"
    assert [e.step for e in resumed if isinstance(e, EvalEvent)] == [
        stopped, stopped + 1, stopped + 2]


def test_opt_in_lr_coupling_and_adaptive_batch_sizing_follow_the_control_factor(
        demo_data, tmp_path):
    from tscu_tui.engine.train.schedule import lr_at

    config = tiny_config(demo_data, tmp_path / "run", 'telemetry.source="simulated"',
                         "telemetry.interval_seconds=0.05", "tscu.power_budget_watts=10.0",
                         "tscu.lr_coupling=true", "tscu.adaptive_batch_sizing=true",
                         "train.gradient_accumulation_steps=4", "train.max_steps=12",
                         "train.eval_steps=1000", "train.save_steps=1000")
    events, _ = train(config)
    steps = [e for e in events if isinstance(e, StepEvent)]
    per_micro = config.train.batch_size * 63
    assert steps[0].tokens == 4 * per_micro and steps[0].lr == lr_at(0, config.train)
    # Step k runs with the control factor the governor set after step k-1.
    for prev, cur in zip(steps, steps[1:], strict=False):
        c = prev.control_factor
        assert cur.tokens - prev.tokens == per_micro * max(1, round(4 * c))
        expected = lr_at(cur.step - 1, config.train) * (c if c < 1.0 else 1.0)
        assert cur.lr == pytest.approx(expected, rel=1e-9)
    assert min(e.control_factor for e in steps) < 0.5  # the governor really throttled
