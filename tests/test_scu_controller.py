"""The lambda controller against a simulated plant: 10^4 steps, no clock, no sleep."""

from __future__ import annotations

import math

import pytest

from tscu_tui.engine.train.scu import ERROR_MAX, LambdaController, ScuGains, log_error


class Plant:
    """S as a lagged function of lambda: the penalty pulls sum(w^2) towards c/lambda."""

    def __init__(self, c: float = 0.05, data_bpt: float = 3.0, lag: float = 0.05) -> None:
        self.c, self.data_bpt, self.lag = c, data_bpt, lag
        self.param_bpt = 1.0  # far from equilibrium at the start, like LoRA init

    def step(self, lambda_reg: float) -> float:
        self.param_bpt += self.lag * (self.c / lambda_reg - self.param_bpt)
        return self.param_bpt / (self.data_bpt + self.param_bpt)


def run(controller: LambdaController, plant: Plant, steps: int) -> list[float]:
    trace = []
    for _ in range(steps):
        s = plant.step(controller.lambda_reg)
        controller.update(s)
        trace.append(s)
    return trace


@pytest.mark.parametrize("target", [0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999])
def test_the_same_gains_track_any_target_within_the_deadband(target):
    """The error is scale-free: one set of gains holds S's odds within a few percent of
    the target's, from S* = 0.001 to 0.999 (the plant's lambda at equilibrium is 0.3
    whatever the target, so only S's scale changes)."""
    controller = LambdaController(target_s=target, lambda_init=1.0)
    plant = Plant(c=0.3 * 3.0 * target / (1 - target))
    trace = run(controller, plant, 10_000)
    settled = [abs(log_error(s, target)) for s in trace[2_000:]]
    assert max(settled) < 0.06, max(settled)


def test_the_error_is_the_log_of_the_odds_ratio_clipped():
    assert log_error(0.02, 0.01) == pytest.approx(math.log(2 * 0.99 / 0.98))
    assert log_error(0.01, 0.01) == 0.0
    assert log_error(0.999, 0.99) == pytest.approx(math.log(999 / 99))  # not flat near 1
    assert log_error(0.0, 0.5) == -ERROR_MAX and log_error(1.0, 0.5) == ERROR_MAX


def test_s_above_target_raises_lambda_and_below_lowers_it():
    high = LambdaController(target_s=0.01, lambda_init=1.0)
    high.update(0.2)
    assert high.lambda_reg > 1.0
    low = LambdaController(target_s=0.3, lambda_init=1.0)
    low.update(0.01)
    assert low.lambda_reg < 1.0


def test_deadband_holds_lambda_and_leaks_the_integral():
    controller = LambdaController(target_s=0.01, lambda_init=1.0)
    controller.integral = 0.1
    reading = controller.update(0.0102)  # odds 2% off: inside the 5% deadband
    assert reading.in_deadband and controller.lambda_reg == 1.0
    assert math.isclose(controller.integral, 0.1 * 0.995)


def test_anti_windup_at_a_bound_keeps_recovery_fast():
    gains = ScuGains(lambda_max=2.0, ki=0.02)
    controller = LambdaController(target_s=0.001, lambda_init=1.0, gains=gains)
    plant = Plant(c=10.0)  # target unreachable: lambda saturates at its maximum
    run(controller, plant, 2_000)
    assert controller.lambda_reg == 2.0
    assert abs(controller.integral) <= gains.integral_max
    integral_at_bound = controller.integral
    run(controller, plant, 500)
    assert controller.integral == integral_at_bound  # frozen, not wound up
    controller.target_s = 0.9  # now far below: lambda must leave the bound at once
    controller.update(plant.step(controller.lambda_reg))
    controller.update(plant.step(controller.lambda_reg))
    assert controller.lambda_reg < 2.0


def test_lambda_stays_within_bounds_and_ignores_non_finite_s():
    controller = LambdaController(target_s=0.5, lambda_init=5.0, gains=ScuGains(lambda_min=0.1))
    for s in [0.0] * 200 + [float("nan"), float("inf")]:
        controller.update(s)
    assert controller.lambda_reg == 0.1
    assert math.isfinite(controller.integral)


def test_state_round_trip_reproduces_the_trajectory():
    a = LambdaController(target_s=0.02, lambda_init=1.0)
    plant_a = Plant()
    run(a, plant_b := Plant(), 300)
    run(a, plant_a, 0)
    b = LambdaController(target_s=0.5, lambda_init=3.0)
    b.load_state_dict(a.state_dict())
    plant_a.param_bpt = plant_b.param_bpt
    assert run(a, plant_b, 200) == run(b, plant_a, 200)


def test_reset_restores_the_initial_state():
    controller = LambdaController(target_s=0.01, lambda_init=1.0)
    run(controller, Plant(), 100)
    controller.reset()
    assert (controller.lambda_reg, controller.integral, controller.s_smoothed) == (1.0, 0.0, None)
