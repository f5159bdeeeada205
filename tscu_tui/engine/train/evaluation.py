"""Evaluating during a run: measure, record, best so far, early stopping, efficiency."""

from __future__ import annotations

import time

from tscu_tui.engine.events import (
    EvalEvent,
)
from tscu_tui.engine.runs.files import ADAPTER_WEIGHTS
from tscu_tui.engine.telemetry.efficiency import event_fields
from tscu_tui.engine.train import lora
from tscu_tui.engine.train.evaluate import HeldOut
from tscu_tui.engine.train.objective import budget
from tscu_tui.engine.train.session import _Stop


class Evaluation:
    """Trainer's evaluations (a mixin until it is one object)."""

    def _measure(self) -> tuple[HeldOut, float]:
        result, seconds = self._heldout("validation")
        self.progress.last_bpt = result.bpt
        return result, seconds

    def _heldout(self, split: str) -> tuple[HeldOut, float]:
        """Held-out BPT of `split` (validation or test) and the seconds it took."""
        assert self.thermal is not None
        self.thermal.duty.busy(True)
        started = time.perf_counter()
        result = self.parallel.heldout(self.model, self.data, split,
                                       self.config.train.batch_size,
                                       self.config.train.eval_batches)
        self.thermal.duty.busy(False)
        return result, time.perf_counter() - started

    def _load_best(self) -> bool:
        """best/ into the model on every rank; False (and a warning) when it is missing."""
        file = self.run_dir / "best" / ADAPTER_WEIGHTS
        found = file.is_file() if self.parallel.is_main else None
        if self.parallel.distributed:
            found = self.parallel.broadcast_json(found)
        if not found:
            self.log(f"{file} is missing: the best-validation adapter's test BPT is not "
                     "measured", "warning")
            return False
        if self.parallel.is_main:
            lora.load_adapter_weights(self.model, file)
        self.parallel.sync_weights(self.model)
        return True

    def _evaluate(self) -> float:
        """Evaluate and record; returns the seconds it computed."""
        result, eval_s = self._measure()
        self._record_eval(result, eval_s)
        return eval_s

    def _record_eval(self, result: HeldOut, eval_s: float) -> None:
        cfg, p = self.config, self.progress
        p.last_eval_step = p.step
        is_best = result.bpt < p.best_bpt
        if is_best:
            p.best_bpt, p.best_step, p.evals_without_best = result.bpt, p.step, 0
            if p.step > 0 and self.parallel.is_main:
                lora.save_adapters(self.run_dir / "best", self.model, self.adapter_config)
        elif p.step > 0:
            p.evals_without_best += 1
        param_bpt = budget(0.0, self.scu.sum_sq(self.model).item(), self.scale).param_bpt
        assert self.thermal is not None
        eff = self.thermal.on_eval(result.bpt, param_bpt, p.tokens, self.n_tokens,
                                   mdl=cfg.scu.mode != "off")
        resolved = self.scu.after_eval(p.step, result.bpt, param_bpt)
        if resolved is not None:
            self.log(f"scu.target_s = auto resolved to {resolved.target_s:.5g}: S at step "
                     f"{resolved.best_step}, the best validation evaluation; the controller "
                     f"holds it from here, lambda from {resolved.lambda_start:.4g}")
        self.emit(EvalEvent(
            step=p.step, heldout_bpt=result.bpt, perplexity=result.perplexity,
            best_bpt=p.best_bpt, is_best=is_best, eval_s=eval_s, param_bpt=param_bpt,
            energy_j=self.thermal.energy_j(), **event_fields(eff)))
        self._sample()
        if eff is not None and eff.newly_diminishing:
            target = cfg.tscu.target_efficiency_bits_per_joule
            message = (f"diminishing returns: marginal information per joule below {target:g} "
                       f"bits/J for {cfg.tscu.efficiency_patience} evaluations")
            if cfg.tscu.efficiency_action == "stop":
                self.log(message + ": stopping", "warning")
                raise _Stop("diminishing_returns")
            self.log(message, "warning")
        patience = cfg.train.early_stopping_patience
        if patience and p.evals_without_best >= patience:
            self.log(f"no better held-out BPT in {patience} evaluations: stopping early")
            raise _Stop("early_stopping")

    def _sample(self) -> None:
        """The model's answers to the held-out prompts (train/samples.py)."""
        if self.samples is None or self.thermal is None:
            return
        self.thermal.duty.busy(True)
        event = self.samples(self.model, self.progress.step)
        self.thermal.duty.busy(False)
        if event is not None:
            self.emit(event)

