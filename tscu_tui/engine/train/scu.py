"""The SCU lambda controller (TSCU.md section 1): a pure PI controller.

It owns no clock: the caller passes the measured S and `dt` (in optimizer
steps) once per optimizer step. lambda moves multiplicatively,
`lambda <- clip(lambda * exp((Kp*e + I) * dt))`, so the controller acts on
log-lambda and never crosses zero. S above target raises lambda: a stronger
penalty shrinks the LoRA weights, ParamBPT falls, and S falls with it.

The error is scale-free: `e = ln(S_hat / S*) - ln((1 - S_hat) / (1 - S*))`, the log
of the ratio of the odds ParamBPT / DataBPT to the target's. For S and S* well below
1 it is ln(S_hat / S*), the error TSCU.md asks for; the second term keeps it from
flattening near S = 1, where a small corpus puts S (the pilot of issue 21: S = 0.994
at the validation minimum, where ln(S/S*) moves by 0.006 while ParamBPT doubles).
Either way a gain means the same for a target of 0.001 or 0.99, which the old
absolute error `S_hat - S*` did not: its gains had to shrink with S*.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

#: The error is clipped to this (S off by a factor e^3 = 20 in odds): S = 0 (a prior
#: centred on the initial adapter, at step 1) must not be an infinite error.
ERROR_MAX = 3.0


@dataclass(frozen=True)
class ScuGains:
    kp: float = 0.15
    ki: float = 0.0
    deadband: float = 0.05
    integral_max: float = 0.2
    ema_alpha: float = 0.3
    leak: float = 0.995
    lambda_min: float = 1e-4
    lambda_max: float = 10.0


@dataclass(frozen=True)
class ScuReading:
    """What one update decided, for telemetry."""

    s_measured: float
    s_smoothed: float
    error: float
    p_term: float
    i_term: float
    lambda_reg: float
    in_deadband: bool
    saturated: bool


def _log_odds(s: float) -> float:
    s = min(max(s, 1e-12), 1.0 - 1e-12)
    return math.log(s / (1.0 - s))


def log_error(s_smoothed: float, target_s: float) -> float:
    """ln of (S_hat's odds over S*'s), clipped to +-ERROR_MAX."""
    error = _log_odds(s_smoothed) - _log_odds(target_s)
    return min(max(error, -ERROR_MAX), ERROR_MAX)


class LambdaController:
    """PI control of lambda so the smoothed S tracks `target_s`."""

    def __init__(self, target_s: float, lambda_init: float, gains: ScuGains | None = None
                 ) -> None:
        self.target_s = target_s
        self.gains = gains or ScuGains()
        self.lambda_init = lambda_init
        self.reset()

    def reset(self) -> None:
        self.lambda_reg = self._clip(self.lambda_init)
        self.integral = 0.0
        self.s_smoothed: float | None = None

    def _clip(self, value: float) -> float:
        return min(max(value, self.gains.lambda_min), self.gains.lambda_max)

    def start_at(self, lambda_reg: float) -> None:
        """Take over lambda from here (the "auto" target resolving mid-run)."""
        self.lambda_reg = self._clip(lambda_reg)
        self.integral = 0.0

    def observe(self, s_measured: float, dt: float = 1.0) -> float | None:
        """Smooth a measured S without acting on lambda; return the smoothed S."""
        if math.isfinite(s_measured):
            if self.s_smoothed is None:
                self.s_smoothed = s_measured
            else:
                alpha = 1.0 - (1.0 - self.gains.ema_alpha) ** dt
                self.s_smoothed += alpha * (s_measured - self.s_smoothed)
        return self.s_smoothed

    def update(self, s_measured: float, dt: float = 1.0) -> ScuReading:
        g = self.gains
        if not math.isfinite(s_measured):  # a bad step must not poison the state
            return self._reading(s_measured, 0.0, 0.0, in_deadband=True, saturated=False)
        self.observe(s_measured, dt)
        assert self.s_smoothed is not None
        error = log_error(self.s_smoothed, self.target_s)
        if abs(error) <= g.deadband:
            self.integral *= g.leak ** dt
            return self._reading(s_measured, error, 0.0, in_deadband=True, saturated=False)
        pushing_up = error > 0 and self.lambda_reg >= g.lambda_max
        pushing_down = error < 0 and self.lambda_reg <= g.lambda_min
        saturated = pushing_up or pushing_down
        if not saturated:  # anti-windup: no integration into a bound
            self.integral = (g.leak ** dt) * self.integral + g.ki * error * dt
            self.integral = min(max(self.integral, -g.integral_max), g.integral_max)
        p_term = g.kp * error
        self.lambda_reg = self._clip(self.lambda_reg * math.exp((p_term + self.integral) * dt))
        return self._reading(s_measured, error, p_term, in_deadband=False, saturated=saturated)

    def _reading(self, s: float, error: float, p_term: float, *, in_deadband: bool,
                 saturated: bool) -> ScuReading:
        return ScuReading(s_measured=s, s_smoothed=self.s_smoothed if self.s_smoothed
                          is not None else s, error=error, p_term=p_term,
                          i_term=self.integral, lambda_reg=self.lambda_reg,
                          in_deadband=in_deadband, saturated=saturated)

    def state_dict(self) -> dict[str, object]:
        return {"target_s": self.target_s, "lambda_init": self.lambda_init,
                "lambda_reg": self.lambda_reg, "integral": self.integral,
                "s_smoothed": self.s_smoothed, "gains": asdict(self.gains),
                "error": "log-odds"}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.target_s = float(state["target_s"])  # type: ignore[arg-type]
        self.lambda_init = float(state["lambda_init"])  # type: ignore[arg-type]
        self.lambda_reg = float(state["lambda_reg"])  # type: ignore[arg-type]
        smoothed = state["s_smoothed"]
        self.s_smoothed = None if smoothed is None else float(smoothed)  # type: ignore[arg-type]
        if state.get("error") != "log-odds":
            # Saved under the absolute-error law: its gains and integral are in other
            # units, so the resumed run goes on with this config's gains, integral 0.
            self.integral = 0.0
            return
        self.gains = ScuGains(**state["gains"])  # type: ignore[arg-type]
        self.integral = float(state["integral"])  # type: ignore[arg-type]
