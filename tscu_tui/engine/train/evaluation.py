"""Evaluating during a run: measure, record, best so far, early stopping, efficiency.

`Evaluation` measures held-out BPT (validation during the run, the test split at
its start and end), records each validation as an `EvalEvent` with the information
per joule beside it, keeps the best adapter so far in best/, shows the model's
samples, and says when the run should stop (no better BPT for
`train.early_stopping_patience` evaluations, or diminishing returns with
`tscu.efficiency_action = "stop"`): it returns the reason, the loop stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tscu_tui.engine.events import EvalEvent, Event
from tscu_tui.engine.runs.files import ADAPTER_WEIGHTS
from tscu_tui.engine.telemetry import EfficiencyReading
from tscu_tui.engine.telemetry.efficiency import event_fields
from tscu_tui.engine.train import lora
from tscu_tui.engine.train.evaluate import HeldOut
from tscu_tui.engine.train.objective import budget
from tscu_tui.engine.train.samples import TrainingSamples
from tscu_tui.engine.train.selection import TestSplit
from tscu_tui.engine.train.session import Session
from tscu_tui.engine.train.thermal import ThermalControl


class Evaluation:
    def __init__(self, session: Session, thermal: ThermalControl,
                 emit: Callable[[Event], None], log: Callable[..., None]) -> None:
        self.session, self.thermal, self.emit, self.log = session, thermal, emit, log
        data = session.data
        self.tests = TestSplit(len(data.blocks("test")), self.heldout, emit,
                               (session.history or {}).get("tests"))
        self.samples = (TrainingSamples(session.config.data, data.meta, session.tokenizer)
                        if session.parallel.is_main else None)  # rank 0 alone reports them

    def measure(self) -> tuple[HeldOut, float]:
        result, seconds = self.heldout("validation")
        self.session.progress.last_bpt = result.bpt
        return result, seconds

    def heldout(self, split: str) -> tuple[HeldOut, float]:
        """Held-out BPT of `split` (validation or test) and the seconds it took."""
        s = self.session
        self.thermal.duty.busy(True)
        started = time.perf_counter()
        result = s.parallel.heldout(s.model, s.data, split, s.config.train.batch_size,
                                    s.config.train.eval_batches)
        self.thermal.duty.busy(False)
        return result, time.perf_counter() - started

    def evaluate(self) -> tuple[float, str | None]:
        """Evaluate and record; the seconds it computed and why the run stops, if it does."""
        result, eval_s = self.measure()
        return eval_s, self.record(result, eval_s)

    def record(self, result: HeldOut, eval_s: float) -> str | None:
        """The evaluation's event (and best/ when it is the best); a stop reason or None."""
        s = self.session
        cfg, p = s.config, s.progress
        p.last_eval_step = p.step
        is_best = result.bpt < p.best_bpt
        if is_best:
            p.best_bpt, p.best_step, p.evals_without_best = result.bpt, p.step, 0
            if p.step > 0 and s.parallel.is_main:
                lora.save_adapters(s.run_dir / "best", s.model, s.adapter_config)
        elif p.step > 0:
            p.evals_without_best += 1
        param_bpt = budget(0.0, s.scu.sum_sq(s.model).item(), s.scale).param_bpt
        eff = self.thermal.on_eval(result.bpt, param_bpt, p.tokens, s.n_tokens,
                                   mdl=cfg.scu.mode != "off")
        resolved = s.scu.after_eval(p.step, result.bpt, param_bpt)
        if resolved is not None:
            self.log(f"scu.target_s = auto resolved to {resolved.target_s:.5g}: S at step "
                     f"{resolved.best_step}, the best validation evaluation; the controller "
                     f"holds it from here, lambda from {resolved.lambda_start:.4g}")
        self.emit(EvalEvent(
            step=p.step, heldout_bpt=result.bpt, perplexity=result.perplexity,
            best_bpt=p.best_bpt, is_best=is_best, eval_s=eval_s, param_bpt=param_bpt,
            energy_j=self.thermal.energy_j(), **event_fields(eff)))
        self._sample()
        return self._stop_reason(eff)

    def _stop_reason(self, eff: EfficiencyReading | None) -> str | None:
        cfg, p = self.session.config, self.session.progress
        if eff is not None and eff.newly_diminishing:
            target = cfg.tscu.target_efficiency_bits_per_joule
            message = (f"diminishing returns: marginal information per joule below {target:g} "
                       f"bits/J for {cfg.tscu.efficiency_patience} evaluations")
            if cfg.tscu.efficiency_action == "stop":
                self.log(message + ": stopping", "warning")
                return "diminishing_returns"
            self.log(message, "warning")
        patience = cfg.train.early_stopping_patience
        if patience and p.evals_without_best >= patience:
            self.log(f"no better held-out BPT in {patience} evaluations: stopping early")
            return "early_stopping"
        return None

    def _sample(self) -> None:
        """The model's answers to the held-out prompts (train/samples.py)."""
        if self.samples is None:
            return
        self.thermal.duty.busy(True)
        event = self.samples(self.session.model, self.session.progress.step)
        self.thermal.duty.busy(False)
        if event is not None:
            self.emit(event)

    def test_at_end(self) -> None:
        """The test split on the final adapter and on the best-validation one."""
        p = self.session.progress
        self.tests.at_end(self.session.model, p.step, p.best_step, self.load_best)

    def load_best(self) -> bool:
        """best/ into the model on every rank; False (and a warning) when it is missing."""
        s = self.session
        file = s.run_dir / "best" / ADAPTER_WEIGHTS
        found = file.is_file() if s.parallel.is_main else None
        if s.parallel.distributed:
            found = s.parallel.broadcast_json(found)
        if not found:
            self.log(f"{file} is missing: the best-validation adapter's test BPT is not "
                     "measured", "warning")
            return False
        if s.parallel.is_main:
            lora.load_adapter_weights(s.model, file)
        s.parallel.sync_weights(s.model)
        return True
