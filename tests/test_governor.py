"""The T-SCU governor against the simulated RC plant, in simulated time (no sleep)."""

from __future__ import annotations

import math

import pytest
from governor_loop import BUSY_W, FakeClock, simulated_run

from tscu_tui.engine.config.schema import TscuConfig
from tscu_tui.engine.telemetry.efficiency import EfficiencyTracker, landauer_efficiency
from tscu_tui.engine.telemetry.governor import Governor, GovernorLimits, duty_idle_seconds
from tscu_tui.engine.telemetry.simulated import PlantParams, ThermalPlant

STEP_COMPUTE_S = 0.5


def closed_loop(limits: GovernorLimits, steps: int = 3000, temp_c: float | None = None
                ) -> tuple[list[tuple[float, float, float, float]], Governor]:
    """Duty-cycled training steps on the plant; power measured over the last cycle.

    Returns (t_s, avg_power_w, max temp in the cycle, c) per step.
    """
    plant = ThermalPlant(PlantParams(), temp_c=temp_c)
    governor = Governor(limits)
    trace = []
    for _ in range(steps):
        start_t, start_e = plant.t_s, plant.energy_j
        hottest = plant.advance(STEP_COMPUTE_S, 1.0).temp_c
        idle_s = governor.idle_seconds(STEP_COMPUTE_S)
        hottest = max(hottest, plant.advance(idle_s, 0.0).temp_c)
        avg_power = (plant.energy_j - start_e) / (plant.t_s - start_t)
        reading = governor.update(avg_power, plant.temp_c, plant.t_s - start_t)
        trace.append((plant.t_s, avg_power, hottest, reading.control_factor))
    return trace, governor


def test_power_budget_below_busy_power_settles_within_5_percent():
    budget = 20.0  # the plant draws 40 W flat out
    trace, _ = closed_loop(GovernorLimits(power_budget_w=budget, max_temp_c=95.0,
                                          emergency_temp_c=100.0))
    settled = trace[len(trace) // 2:]
    elapsed = settled[-1][0] - settled[0][0]
    energy = sum(p * (t1 - t0) for (t0, *_), (t1, p, *_) in zip(settled, settled[1:],
                                                                 strict=False))
    assert abs(energy / elapsed - budget) / budget < 0.05
    assert all(abs(p - budget) / budget < 0.05 for _, p, _, _ in settled)
    assert settled[-1][3] == pytest.approx(15 / 35, rel=0.02)  # (budget-idle)/(busy-idle)


def test_temperature_constraint_holds_below_maximum():
    limits = GovernorLimits(power_budget_w=100.0, max_temp_c=60.0, hysteresis_c=2.0,
                            emergency_temp_c=90.0)
    trace, governor = closed_loop(limits)
    assert max(temp for _, _, temp, _ in trace) < limits.max_temp_c
    assert trace[-1][2] == pytest.approx(58.0, abs=0.5)  # held at max - hysteresis
    assert 0.1 < trace[-1][3] < 1.0 and not governor.emergency


def test_emergency_flag_trips_at_low_emergency_temperature():
    limits = GovernorLimits(power_budget_w=100.0, max_temp_c=80.0, emergency_temp_c=40.0)
    trace, governor = closed_loop(limits, steps=400)
    assert governor.emergency
    assert trace[-1][3] == limits.c_min


def test_unconstrained_runs_flat_out_and_integral_does_not_wind_up():
    governor = Governor(GovernorLimits(power_budget_w=100.0, max_temp_c=90.0))
    for _ in range(1000):
        reading = governor.update(avg_power_w=40.0, temp_c=50.0, dt_s=1.0)
    assert reading.control_factor == 1.0 and governor.integral == 0.0
    # Saturated at the floor for a long time: the integral stays bounded, so the
    # governor recovers quickly once the violation ends.
    for _ in range(1000):
        governor.update(avg_power_w=1000.0, temp_c=None, dt_s=1.0)
    assert governor.control_factor == governor.limits.c_min
    assert governor.integral <= math.log(1.0 / governor.limits.c_min)
    for _ in range(20):
        reading = governor.update(avg_power_w=10.0, temp_c=None, dt_s=1.0)
    assert reading.control_factor == 1.0


def test_min_selector_picks_the_most_violated_constraint():
    governor = Governor(GovernorLimits(power_budget_w=20.0, max_temp_c=75.0, hysteresis_c=2.0))
    hot = governor.update(avg_power_w=21.0, temp_c=83.0, dt_s=1.0)
    assert hot.binding == "temperature" and hot.error == pytest.approx(hot.temp_error)
    governor.reset()
    power = governor.update(avg_power_w=40.0, temp_c=60.0, dt_s=1.0)
    assert power.binding == "power" and power.power_error == pytest.approx(math.log(2.0))
    assert power.control_factor < 1.0


def test_missing_measurements_hold_the_last_decision():
    governor = Governor(GovernorLimits(power_budget_w=20.0))
    governor.update(40.0, None, 1.0)
    before = governor.control_factor
    reading = governor.update(None, None, 1.0)
    assert reading.binding == "none" and reading.control_factor == before
    assert governor.update(math.nan, None, 1.0).control_factor == before


def test_state_dict_round_trip_and_reset():
    governor = Governor(GovernorLimits.from_config(TscuConfig()))
    for _ in range(5):
        governor.update(35.0, 70.0, 1.0)
    clone = Governor(GovernorLimits())
    clone.load_state_dict(governor.state_dict())
    assert clone.state_dict() == governor.state_dict()
    assert clone.update(30.0, 70.0, 1.0) == governor.update(30.0, 70.0, 1.0)
    governor.reset()
    assert governor.control_factor == 1.0 and governor.integral == 0.0


def test_duty_idle_seconds_gives_the_requested_compute_share():
    assert duty_idle_seconds(2.0, 1.0) == 0.0
    assert duty_idle_seconds(2.0, 0.5) == pytest.approx(2.0)
    idle = duty_idle_seconds(0.3, 0.25)
    assert 0.3 / (0.3 + idle) == pytest.approx(0.25)


def test_efficiency_bits_per_joule_and_landauer():
    tracker = EfficiencyTracker(n_tokens=1000, target_bits_per_joule=1.0, patience=2,
                                heldout_bpt_start=5.0)
    first = tracker.update(heldout_bpt=4.0, energy_j=100.0, tokens_processed=500, temp_c=None)
    assert first.bits_marginal == pytest.approx(1000.0)
    assert first.eta_marginal_bits_per_j == pytest.approx(10.0)
    assert first.tokens_per_j == pytest.approx(5.0) and first.j_per_token == pytest.approx(0.2)
    assert first.landauer_marginal == pytest.approx(10.0 * 1.380649e-23 * 300.0 * math.log(2))
    second = tracker.update(heldout_bpt=3.5, energy_j=300.0, tokens_processed=1000, temp_c=50.0)
    assert second.eta_marginal_bits_per_j == pytest.approx(2.5)
    assert second.eta_cumulative_bits_per_j == pytest.approx(1500.0 / 300.0)
    assert second.temp_k == pytest.approx(323.15)
    assert landauer_efficiency(1.0, 26.85) == pytest.approx(landauer_efficiency(1.0))


def test_diminishing_returns_needs_patience_and_fires_once():
    tracker = EfficiencyTracker(n_tokens=100, target_bits_per_joule=1.0, patience=3,
                                heldout_bpt_start=2.0)
    bpt, energy, flags = 2.0, 0.0, []
    for drop in (0.5, 0.001, 0.001, 0.5, 0.001, 0.001, 0.001, 0.001):
        bpt, energy = bpt - drop, energy + 10.0
        reading = tracker.update(bpt, energy, tokens_processed=0)
        flags.append((reading.diminishing_returns, reading.newly_diminishing))
    assert [d for d, _ in flags] == [False, False, False, False, False, False, True, True]
    assert [n for _, n in flags].count(True) == 1 and flags[6][1]


def test_power_setpoint_pays_back_the_runs_excess_and_never_exceeds_the_budget():
    governor = Governor(GovernorLimits(power_budget_w=20.0))
    assert governor.power_setpoint(None) == 20.0
    assert governor.power_setpoint(15.0) == 20.0  # under budget: no credit is spent
    assert governor.power_setpoint(22.0) == pytest.approx(18.0)  # 10% over: aim 10% under
    assert governor.power_setpoint(60.0) == pytest.approx(10.0)  # never below half


@pytest.mark.parametrize("step_s", [0.02, 0.1, 0.5])
def test_sixty_step_run_averages_within_5_percent_of_the_budget_whatever_the_speed(step_s):
    """The whole chain in simulated time: budget 0.6x full power, evaluations (3 steps'
    compute each) inside the duty cycle; fast and slow machines alike."""
    run = simulated_run(steps=60, step_s=step_s, eval_every=20, eval_s=3 * step_s)
    assert abs(run.avg_power_w / (0.6 * BUSY_W) - 1) < 0.05
    assert run.control[-1] == pytest.approx((0.6 * BUSY_W - 5.0) / 35.0, abs=0.03)
    assert run.c_variation() < 0.01  # settled: c does not swing from step to step


def test_evaluations_outside_the_duty_cycle_would_break_the_budget():
    """Heavy evaluations (10 steps' compute every 10 steps): idled for, the budget holds;
    the same run with the evaluation's idle left out ends above it, though the governor
    lowers c for the steps to make up."""
    held = simulated_run(steps=60, step_s=0.1, eval_every=10, eval_s=1.0)
    skipped = simulated_run(steps=60, step_s=0.1, eval_every=10, eval_s=1.0, idle_evals=False)
    assert abs(held.avg_power_w / (0.6 * BUSY_W) - 1) < 0.05
    assert skipped.avg_power_w > 1.05 * (0.6 * BUSY_W)


def test_emergency_is_checked_every_step_not_only_per_measurement():
    """Between two power measurements a step that reads the emergency temperature
    already stops the run (c at its floor, the flag the trainer acts on)."""
    run = simulated_run("tscu.max_temperature_celsius=25.5",
                        "tscu.temperature_hysteresis_celsius=0.1",
                        "tscu.emergency_shutdown_temp=26.0", steps=6, step_s=0.5,
                        eval_every=1000)
    # 26.3 °C after the second step; the first measurement completes with the third.
    assert run.emergencies[0] == 2 and run.control[1] == 0.1


def test_a_checkpoint_restores_the_controller_not_its_limits_nor_the_emergency_latch():
    """A run stopped by its emergency temperature must be resumable: the latch starts
    clear, and the limits are the config's now (with the changes said), not the
    checkpoint's (which `over_budget` would contradict)."""
    hot = Governor(GovernorLimits(max_temp_c=25.5, hysteresis_c=0.1, emergency_temp_c=26.0))
    hot.update(30.0, 27.0, 1.0)
    assert hot.emergency and hot.control_factor == 0.1
    state = hot.state_dict()
    resumed = Governor(GovernorLimits.from_config(TscuConfig()))
    resumed.load_state_dict(state)
    assert not resumed.emergency and resumed.limits == GovernorLimits.from_config(TscuConfig())
    assert not resumed.check_emergency(60.0)  # 60 °C is fine under 75/85
    assert resumed.limits.changes_from(Governor.saved_limits(state)) == [
        "tscu.max_temperature_celsius 25.5 -> 75",
        "tscu.temperature_hysteresis_celsius 0.1 -> 2",
        "tscu.emergency_shutdown_temp 26 -> 85"]
    assert Governor.saved_limits({"limits": {"renamed": 1}}) is None


def test_the_emergency_stop_is_armed_with_the_governor_switched_off():
    """`tscu.enabled = false` turns off the duty cycling, not the emergency stop."""
    run = simulated_run("tscu.enabled=false", "tscu.max_temperature_celsius=25.5",
                        "tscu.temperature_hysteresis_celsius=0.1",
                        "tscu.emergency_shutdown_temp=26.0", steps=6, step_s=0.5,
                        eval_every=1000)
    assert run.emergencies and run.emergencies[0] == 2
    assert run.stops[run.emergencies[0] - 1] == "emergency_stop"
    assert run.control == [1.0] * 6  # no duty cycling: c is not reported (None)


def _hot_resume(*overrides: str) -> tuple[bool, list[str], list[str], float, FakeClock]:
    """A run stopped by its emergency, resumed on a chip still at 90 °C (simulated)."""
    from tscu_tui.engine.config import load_config
    from tscu_tui.engine.telemetry.simulated import SimulatedSource
    from tscu_tui.engine.train.thermal import DutyMeter, ThermalControl

    clock = FakeClock()
    duty = DutyMeter(clock)
    plant = ThermalPlant(PlantParams(), temp_c=90.0)
    config = load_config(None, ['telemetry.source="simulated"', *overrides])
    warnings: list[str] = []
    infos: list[str] = []
    thermal = ThermalControl(config, on_warning=warnings.append, on_info=infos.append,
                             source=SimulatedSource(plant, duty=duty.fraction, clock=clock),
                             duty=duty, clock=clock)
    stopped = Governor(GovernorLimits(emergency_temp_c=88.0))
    stopped.check_emergency(89.0)
    thermal.load_state_dict({"governor": stopped.state_dict(), "energy_j": 0.0})
    thermal.start(background=False)
    thermal.announce()  # as the trainer does: the run's lines, then the wait
    started = clock.t
    cool = thermal.cooldown(clock.advance)
    thermal.stop()
    return cool, warnings, infos, clock.t - started, clock


def test_resuming_after_an_emergency_waits_for_the_chip_to_cool_with_a_countdown():
    cool, warnings, infos, waited, _ = _hot_resume()
    # 90 °C idling towards 31 °C with a 36 s time constant: below 75 °C after ~11.6 s.
    assert cool and waited == pytest.approx(36 * math.log((90 - 31) / (75 - 31)), abs=0.6)
    countdown = [w for w in warnings if w.startswith("cooling before resuming")]
    assert countdown[0] == "cooling before resuming: 90.0 °C, resumes below 75 °C; gives up " \
                           "in 600 s"
    assert len(countdown) == 3  # one line every 5 s of the ~12 s
    assert infos[-1].startswith("resuming after the emergency stop: 74.")
    assert infos[-1].endswith("°C is below tscu.max_temperature_celsius (75 °C) after 11 s")
    assert "the config's limits apply, changed since the checkpoint: " \
           "tscu.emergency_shutdown_temp 88 -> 85" in infos


def test_a_chip_that_does_not_cool_in_time_is_not_resumed():
    cool, warnings, _, waited, _ = _hot_resume("tscu.cooldown_timeout_seconds=4")
    assert not cool and waited == pytest.approx(4.0, abs=0.1)
    assert warnings[-1].startswith("still 8") and "not resuming" in warnings[-1]
