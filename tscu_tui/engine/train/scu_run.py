"""The SCU inside one run: prior centre, penalty scale, lambda, and the "auto" target.

The controller (scu.py) is pure; this object adds what a run knows: the mode
(`pi`, `fixed`, `off`; `auto` was resolved by run_plan.py before the run), where
the prior is centred (the anchor), N, and when `scu.target_s = "auto"` resolves.

"auto" is the S at which the adapter's description length stops paying in held-out
bits: S at the best validation evaluation (that evaluation's exact ParamBPT over it
plus the smoothed training DataBPT; the smoothed S lags far behind a fast-growing
ParamBPT early in a run), taken once validation BPT has failed to beat that best for
AUTO_PATIENCE evaluations after warm-up. Until then
there is no penalty at all (lambda = 0, so the run is exactly `off` with the same
seed); from then on the controller holds S there, starting from the lambda at which
the penalty weighs as much as the data term (lambda = DataBPT / ParamBPT). A run that
never stops improving on validation never resolves, and stays `off`. Why this rule
and not the sharper MDL one (grow ParamBPT while each bit of it buys at least one
bit of held-out BPT): that exchange rate depends on the prior's sigma, and at the
default sigma a small corpus makes ParamBPT dwarf every held-out gain (README, The
SCU), so it would stop the adapter before it learned anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import mlx.nn as nn

from tscu_tui.engine.config import ScuConfig, TrainConfig
from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train.objective import Anchor, anchor_of, sum_of_squares
from tscu_tui.engine.train.scu import LambdaController, ScuGains

#: Evaluations without a new best validation BPT (after warm-up) before "auto" resolves.
AUTO_PATIENCE = 2


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


@dataclass
class AutoSearch:
    """"auto" while it looks for its target: the best validation evaluation so far."""

    best_bpt: float = math.inf
    best_step: int = 0
    best_s: float | None = None  # S at the best evaluation
    first_s: float | None = None  # ... at the first evaluation after step 0
    data_bpt: float | None = None  # the training DataBPT, smoothed as S is
    evals_since_best: int = 0


@dataclass(frozen=True)
class Resolved:
    """"auto" took its value at this evaluation."""

    target_s: float
    best_step: int
    lambda_start: float


class RunScu:
    """lambda and S* of one run; `anchor` is set for `prior_center = "init"`."""

    def __init__(self, scu: ScuConfig, train: TrainConfig, scale: float) -> None:
        self.mode = scu.mode
        self.scale = scale
        self.center = scu.prior_center
        self.auto = scu.target_s == "auto"
        self.warmup_steps = train.warmup_steps
        self.target: float | None = None if self.auto else float(scu.target_s)
        self.controller = scu_controller(scu, self.target or 0.5)
        searching = self.mode == "pi" and self.auto
        self.lambda_reg = 0.0 if scu.mode == "off" or searching else scu.lambda_init
        self.search = AutoSearch()
        self.anchor: Anchor | None = None

    @property
    def searching(self) -> bool:
        return self.mode == "pi" and self.target is None

    def set_anchor(self, model: nn.Module) -> None:
        """Take the prior's centre from the adapter as initialised (before any restore)."""
        self.anchor = anchor_of(model) if self.center == "init" else None

    def sum_sq(self, model: nn.Module) -> mx.array:
        return sum_of_squares(model, self.anchor)

    def after_step(self, s: float, step: int, skipped: bool, data_bpt: float = math.nan
                   ) -> ScuStep:
        """Update lambda (mode pi) from this step's S; `step` counts from 1."""
        if self.searching and not skipped and math.isfinite(data_bpt):
            last = self.search.data_bpt
            alpha = self.controller.gains.ema_alpha
            self.search.data_bpt = data_bpt if last is None else last + alpha * (data_bpt - last)
        if self.mode != "pi" or skipped:
            smoothed = self.controller.s_smoothed
            return ScuStep(self.lambda_reg, 0.0, 0.0, s if smoothed is None else smoothed,
                           self.target)
        if self.target is None:  # "auto", still searching: smooth S, no penalty
            smoothed = self.controller.observe(s)
            return ScuStep(self.lambda_reg, 0.0, 0.0, s if smoothed is None else smoothed,
                           None)
        reading = self.controller.update(s)
        self.lambda_reg = reading.lambda_reg
        return ScuStep(reading.lambda_reg, reading.p_term, reading.i_term, reading.s_smoothed,
                       self.target)

    def after_eval(self, step: int, heldout_bpt: float, param_bpt: float
                   ) -> Resolved | None:
        """Feed a validation evaluation (and the adapter's ParamBPT then) to "auto";
        returns what it resolved to, if now."""
        if not self.searching or not math.isfinite(heldout_bpt):
            return None
        search, smoothed = self.search, self.controller.s_smoothed
        data = search.data_bpt
        s_now = param_bpt / (data + param_bpt) if data is not None and data + param_bpt > 0 \
            and math.isfinite(param_bpt) else None
        if step > 0 and search.first_s is None and s_now:
            search.first_s = s_now
        if heldout_bpt < search.best_bpt:
            search.best_bpt, search.best_step, search.evals_since_best = heldout_bpt, step, 0
            search.best_s = s_now if step > 0 else None
            return None
        if step <= self.warmup_steps:
            return None
        search.evals_since_best += 1
        # Validation never improved on the base model: the least S the run has measured.
        target = search.best_s if search.best_s else search.first_s
        if search.evals_since_best < AUTO_PATIENCE or not target or smoothed is None \
                or not 0 < target < 1:
            return None
        self.target = self.controller.target_s = target
        # The penalty starts as heavy as the data term: lambda * ParamBPT = DataBPT.
        self.controller.start_at((1.0 - smoothed) / smoothed if smoothed > 0 else 1.0)
        self.lambda_reg = self.controller.lambda_reg
        return Resolved(target_s=target, best_step=search.best_step,
                        lambda_start=self.lambda_reg)

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "target": self.target,
                "lambda_reg": self.lambda_reg, "search": asdict(self.search)}

    def load_state_dict(self, state: dict[str, Any], lambda_reg: float) -> None:
        if "controller" not in state:  # checkpoints before "auto": the controller alone
            state = {"controller": state, "target": state["target_s"]}
        self.controller.load_state_dict(state["controller"])
        if self.auto or self.target is None:
            self.target = state["target"]
        if "search" in state:
            self.search = AutoSearch(**state["search"])
        self.lambda_reg = lambda_reg
