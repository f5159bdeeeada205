"""The SCU inside one run: prior centre, penalty scale, lambda, and the "auto" target.

The controller (scu.py) is pure; this object adds what a run knows: the mode
(`pi`, `fixed`, `off`), where the prior is centred (the anchor), N, and when
`scu.target_s = "auto"` resolves.

"auto": lambda stays at `lambda_init` until the end of warm-up (at least
AUTO_MIN_STEPS optimizer steps) while the controller only smooths S; the target
is then the smoothed S reached there, and the controller holds it from that
step on. With the prior centred on the initial weights, that is the share of
the description length the adapter earned while the learning rate ramped up:
reachable by construction (the run was there), so lambda starts inside its
bounds, and it scales with N, sigma and the model without hand tuning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import mlx.nn as nn

from tscu_tui.engine.config import ScuConfig, TrainConfig
from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train.objective import Anchor, anchor_of, sum_of_squares
from tscu_tui.engine.train.scu import LambdaController, ScuGains

AUTO_MIN_STEPS = 10


def auto_resolve_step(train: TrainConfig) -> int:
    """The optimizer step at which `target_s = "auto"` takes its value."""
    return max(train.warmup_steps, AUTO_MIN_STEPS)


def scu_controller(scu: ScuConfig, target_s: float) -> LambdaController:
    gains = ScuGains(kp=scu.kp, ki=scu.ki, deadband=scu.deadband,
                     integral_max=scu.integral_max, ema_alpha=scu.ema_alpha, leak=scu.leak,
                     lambda_min=scu.lambda_min, lambda_max=scu.lambda_max)
    return LambdaController(target_s=target_s, lambda_init=scu.lambda_init, gains=gains)


@dataclass(frozen=True)
class ScuStep:
    """What the SCU did after one optimizer step."""

    lambda_reg: float
    p_term: float
    i_term: float
    s_smoothed: float
    target_s: float | None  # None while "auto" has not resolved
    resolved_now: bool = False


class RunScu:
    """lambda and S* of one run; `anchor` is set for `prior_center = "init"`."""

    def __init__(self, scu: ScuConfig, train: TrainConfig, scale: float) -> None:
        self.mode = scu.mode
        self.scale = scale
        self.center = scu.prior_center
        self.auto = scu.target_s == "auto"
        self.resolve_at = auto_resolve_step(train)
        self.target: float | None = None if self.auto else float(scu.target_s)
        self.controller = scu_controller(scu, self.target or 0.0)
        self.lambda_reg = 0.0 if scu.mode == "off" else scu.lambda_init
        self.anchor: Anchor | None = None

    def set_anchor(self, model: nn.Module) -> None:
        """Take the prior's centre from the adapter as initialised (before any restore)."""
        self.anchor = anchor_of(model) if self.center == "init" else None

    def sum_sq(self, model: nn.Module) -> mx.array:
        return sum_of_squares(model, self.anchor)

    def after_step(self, s: float, step: int, skipped: bool) -> ScuStep:
        """Update lambda (mode pi) from this step's S; `step` counts from 1."""
        if self.mode != "pi" or skipped:
            smoothed = self.controller.s_smoothed
            return ScuStep(self.lambda_reg, 0.0, 0.0, s if smoothed is None else smoothed,
                           self.target)
        if self.target is None:  # "auto", still calibrating
            smoothed = self.controller.observe(s)
            if step < self.resolve_at or smoothed is None or not math.isfinite(smoothed) \
                    or smoothed <= 0:
                return ScuStep(self.lambda_reg, 0.0, 0.0, s if smoothed is None else smoothed,
                               None)
            self.target = self.controller.target_s = smoothed
            return ScuStep(self.lambda_reg, 0.0, 0.0, smoothed, smoothed, resolved_now=True)
        reading = self.controller.update(s)
        self.lambda_reg = reading.lambda_reg
        return ScuStep(reading.lambda_reg, reading.p_term, reading.i_term, reading.s_smoothed,
                       self.target)

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "target": self.target,
                "lambda_reg": self.lambda_reg}

    def load_state_dict(self, state: dict[str, Any], lambda_reg: float) -> None:
        if "controller" not in state:  # checkpoints before "auto": the controller alone
            state = {"controller": state, "target": state["target_s"]}
        self.controller.load_state_dict(state["controller"])
        if self.auto or self.target is None:
            self.target = state["target"]
        self.lambda_reg = lambda_reg
