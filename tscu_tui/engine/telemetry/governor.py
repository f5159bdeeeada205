"""The T-SCU governor (TSCU.md section 2): a pure, dt-aware PI controller.

Each constraint becomes a normalised error, positive when violated:
  power       e_p = ln(avg_power / setpoint)
  temperature e_t = (T - (T_max - hysteresis)) / temp_scale_c
The PI acts on the most violated one (a max-selector over errors, i.e. a
min-selector over the control factors each would ask for) and outputs the
control factor `c = clip(exp(-(Kp*e + I)), c_min, 1)`: the compute share the
duty cycle realises. The integral is shared, so switching which constraint
binds is bumpless; it is clamped to [0, ln(1/c_min)] and frozen while the output
is saturated in the error's direction (anti-windup). The temperature setpoint
sits `hysteresis` below the maximum, so the integral settles the chip there
and a small overshoot still stays under T_max.

Why a logarithm: power is a static function of the compute share,
`P = P_idle + c * (P_full - P_idle)` with P_idle >= 0, so d ln P / d ln c =
c*(P_full - P_idle)/P lies in (0, 1] on any machine. Acting on ln c against
ln P, an integral gain up to 1 per measurement converges without overshoot
whatever the hardware, and the error of one measurement is corrected in the
next few, not over seconds. So the power integral advances once per fresh
measurement (the caller measures over the cycles since the last update); the
temperature integral, a first-order thermal lag, advances per second of dt.

Average power is the constraint, over the whole run: when the run so far has
drawn more than the budget (the first steps run at c = 1, before anything is
measured) the setpoint drops below the budget by that excess, so the run's
average comes back to the budget instead of staying above it.

It owns no clock: the caller passes `dt_s` (seconds since the last update).

What a checkpoint carries is the controller's state (c and the integral), not
its limits or gains: a resumed run obeys the config it is resumed with, and the
emergency latch starts clear, so a run stopped by it can resume once the chip
has cooled (train.cooldown). `fail_safe()` is the side to fall to when nothing
can be measured any more (telemetry.health): c at its floor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from tscu_tui.engine.config.schema import TscuConfig

Binding = Literal["power", "temperature", "none"]


@dataclass(frozen=True)
class GovernorGains:
    """Tuned against the simulated plant (tests/test_governor.py, tests/governor_loop.py)."""

    kp: float = 0.3  # temperature
    ki: float = 0.2  # temperature: per second of dt
    kp_power: float = 0.1
    ki_power: float = 0.5  # per measurement (stable up to 1, see the module doc)
    temp_scale_c: float = 5.0  # 5 C over the setpoint counts like e-fold the power budget
    # Integrate at most this many seconds per update: a long step or a pause must
    # not turn one stale error into a jump of the integral (discrete instability).
    max_dt_s: float = 2.0
    # The power setpoint: budget * (1 - payback * excess of the run's average so far),
    # never below floor * budget.
    payback: float = 1.0
    setpoint_floor: float = 0.5


#: GovernorLimits field -> its [tscu] config key
LIMIT_KEYS = {"power_budget_w": "power_budget_watts", "max_temp_c": "max_temperature_celsius",
              "hysteresis_c": "temperature_hysteresis_celsius",
              "emergency_temp_c": "emergency_shutdown_temp", "c_min": "control_factor_min"}


@dataclass(frozen=True)
class GovernorLimits:
    power_budget_w: float = 20.0
    max_temp_c: float = 75.0
    hysteresis_c: float = 2.0
    emergency_temp_c: float = 85.0
    c_min: float = 0.1

    @classmethod
    def from_config(cls, tscu: TscuConfig) -> GovernorLimits:
        return cls(**{field: getattr(tscu, key) for field, key in LIMIT_KEYS.items()})

    def changes_from(self, old: GovernorLimits) -> list[str]:
        """'tscu.KEY OLD -> NEW' for each limit that differs from `old`."""
        return [f"tscu.{key} {getattr(old, field):g} -> {getattr(self, field):g}"
                for field, key in LIMIT_KEYS.items()
                if getattr(old, field) != getattr(self, field)]


@dataclass(frozen=True)
class GovernorReading:
    """What one update decided, for telemetry and the step log."""

    control_factor: float
    power_error: float | None
    temp_error: float | None
    error: float | None
    binding: Binding
    p_term: float
    i_term: float
    saturated: bool
    emergency: bool


def duty_idle_seconds(t_compute_s: float, control_factor: float) -> float:
    """Idle after a step that computed `t_compute_s` so the compute share is `c`."""
    c = min(max(control_factor, 1e-6), 1.0)
    return max(t_compute_s, 0.0) * (1.0 - c) / c


class Governor:
    """PI control of the compute share under power and temperature limits."""

    def __init__(self, limits: GovernorLimits, gains: GovernorGains | None = None) -> None:
        self.limits = limits
        self.gains = gains or GovernorGains()
        self.reset()

    def reset(self) -> None:
        self.control_factor = 1.0
        self.integral = 0.0
        self.emergency = False

    def power_setpoint(self, run_avg_power_w: float | None = None) -> float:
        """The power to aim the next measurement at: the budget, lowered by how far the
        run's average so far is above it (an energy debt paid back)."""
        lim, g = self.limits, self.gains
        if not _finite(run_avg_power_w) or lim.power_budget_w <= 0:
            return lim.power_budget_w
        excess = max(run_avg_power_w / lim.power_budget_w - 1.0, 0.0)  # type: ignore[operator]
        return lim.power_budget_w * max(1.0 - g.payback * excess, g.setpoint_floor)

    def errors(self, avg_power_w: float | None, temp_c: float | None,
               run_avg_power_w: float | None = None) -> tuple[float | None, float | None]:
        lim, g = self.limits, self.gains
        power_error = None
        if _finite(avg_power_w) and lim.power_budget_w > 0:
            setpoint = self.power_setpoint(run_avg_power_w)
            power_error = math.log(max(avg_power_w, 1e-9) / setpoint)  # type: ignore[arg-type]
        temp_error = None
        if _finite(temp_c):
            setpoint = lim.max_temp_c - lim.hysteresis_c
            temp_error = (temp_c - setpoint) / g.temp_scale_c  # type: ignore[operator]
        return power_error, temp_error

    def update(self, avg_power_w: float | None, temp_c: float | None, dt_s: float,
               run_avg_power_w: float | None = None) -> GovernorReading:
        """One decision. `avg_power_w` should cover the time since the last update (one
        fresh measurement); `run_avg_power_w`, the run's average so far, paces the debt."""
        lim, g = self.limits, self.gains
        power_error, temp_error = self.errors(avg_power_w, temp_c, run_avg_power_w)
        self.check_emergency(temp_c)
        candidates = [(e, name) for e, name in ((power_error, "power"),
                                                 (temp_error, "temperature")) if e is not None]
        if not candidates:  # nothing measured: hold the last decision, learn nothing
            return self._reading(power_error, temp_error, None, "none", 0.0, False)
        error, binding = max(candidates)
        u_max = math.log(1.0 / lim.c_min)
        p_term = (g.kp_power if binding == "power" else g.kp) * error
        unclipped = p_term + self.integral
        at_floor = unclipped >= u_max and error > 0
        at_ceiling = unclipped <= 0.0 and error < 0
        saturated = at_floor or at_ceiling
        if dt_s > 0 and not saturated:
            step = g.ki_power if binding == "power" else g.ki * min(dt_s, g.max_dt_s)
            self.integral = min(max(self.integral + step * error, 0.0), u_max)
        c = math.exp(-(p_term + self.integral))
        self.control_factor = lim.c_min if self.emergency else min(max(c, lim.c_min), 1.0)
        return self._reading(power_error, temp_error, error, binding, p_term, saturated)

    def check_emergency(self, temp_c: float | None) -> bool:
        """Latch the emergency (c at its floor) once `temp_c` reaches the emergency limit;
        cheap, so the caller checks every step, between measurements too."""
        if _finite(temp_c) and temp_c >= self.limits.emergency_temp_c:  # type: ignore[operator]
            self.emergency = True
            self.control_factor = self.limits.c_min
        return self.emergency

    def fail_safe(self) -> None:
        """Nothing is measured any more: c at its floor until a measurement returns (the
        integral is kept, so the first update after that carries on from it)."""
        self.control_factor = self.limits.c_min

    def idle_seconds(self, t_compute_s: float) -> float:
        return duty_idle_seconds(t_compute_s, self.control_factor)

    def _reading(self, power_error: float | None, temp_error: float | None,
                 error: float | None, binding: Binding, p_term: float, saturated: bool
                 ) -> GovernorReading:
        return GovernorReading(control_factor=self.control_factor, power_error=power_error,
                               temp_error=temp_error, error=error, binding=binding,
                               p_term=p_term, i_term=self.integral, saturated=saturated,
                               emergency=self.emergency)

    def state_dict(self) -> dict[str, object]:
        return {"control_factor": self.control_factor, "integral": self.integral,
                "emergency": self.emergency, "limits": asdict(self.limits),
                "gains": asdict(self.gains)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """The controller's state; limits and gains stay this governor's own (the config's
        and the code's), and the emergency latch clear (see the module doc). The
        integral is clamped to the current floor's range."""
        u_max = math.log(1.0 / self.limits.c_min)
        self.integral = min(max(float(state["integral"]), 0.0), u_max)  # type: ignore[arg-type]
        self.control_factor = min(max(float(state["control_factor"]),  # type: ignore[arg-type]
                                      self.limits.c_min), 1.0)
        self.emergency = False

    @staticmethod
    def saved_limits(state: dict[str, object]) -> GovernorLimits | None:
        """The limits a checkpoint's governor ran under (None if it did not say)."""
        limits = state.get("limits")
        try:
            return GovernorLimits(**limits) if isinstance(limits, dict) else None
        except TypeError:  # a field renamed since: nothing to compare with
            return None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
