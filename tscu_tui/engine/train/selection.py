"""Selecting on validation, reporting on test, and saying when a run overfits.

Training selects and stops on the validation split: the best evaluation's adapter
is kept in `best/`, and early stopping counts evaluations without a new best. The
test split is never trained or selected on; the trainer measures it for the base
model (step 0), the final adapter and the best-validation adapter, and reports quote
those (`summarize_tests`). `FitWatch` follows a run's events and says when it
overfits: validation BPT above its best for OVERFIT_EVALS evaluations while the
training loss falls.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import mlx.nn as nn
from mlx.utils import tree_flatten

from tscu_tui.engine.events import EvalEvent, StepEvent, TestEvent
from tscu_tui.engine.train.evaluate import HeldOut

#: Evaluations above the best validation BPT (with the training loss falling) that
#: make a run "overfitting".
OVERFIT_EVALS = 2
#: Run ends that skip the test evaluations: a stop by hand (it may be resumed, and
#: then measured) and a temperature emergency (no more computing).
NO_TEST_AFTER = ("stopped", "emergency_stop")


def summarize_tests(tests: list[dict[str, Any]], test_source: str, test_tokens: int
                 ) -> dict[str, Any]:
    """The run's test numbers for its summary, analysis and card (None: not measured)."""
    by_adapter = {t["adapter"]: t for t in tests}

    def bpt(adapter: str) -> float | None:
        return by_adapter[adapter]["test_bpt"] if adapter in by_adapter else None

    best = by_adapter.get("best")
    measured = by_adapter.get("final") or by_adapter.get("base")
    return {"split": test_source if test_tokens else "none", "tokens": test_tokens,
            "evaluated_tokens": measured["tokens"] if measured else None,
            "base_bpt": bpt("base"), "final_bpt": bpt("final"), "best_bpt": bpt("best"),
            "best_step": best["step"] if best else None}


def no_test_line(summary: dict[str, Any]) -> str | None:
    """Why a run has no test numbers, in words; None when it has them."""
    test = summary.get("test") or {}
    if test.get("final_bpt") is not None:
        return None
    if not test.get("tokens"):
        return ("this dataset has no test split: the numbers are validation BPT, the split "
                "training selected on (prepare with data.test_fraction > 0 for a test split)")
    return f"the test split was not measured (the run ended: {summary.get('status')})"


@dataclass(frozen=True)
class FitState:
    """Where a run stands against its validation best."""

    best_step: int | None = None
    best_bpt: float | None = None
    evals_above_best: int = 0
    train_falling: bool = False

    @property
    def overfitting(self) -> bool:
        return self.evals_above_best >= OVERFIT_EVALS and self.train_falling

    def describe(self) -> str:
        if self.best_step is None or self.best_bpt is None:
            return ""
        where = "the base model (step 0)" if self.best_step == 0 else \
            f"step {self.best_step}, adapter in best/"
        text = f"best validation {self.best_bpt:.4f} bits/token at {where}"
        if self.overfitting:
            return (f"OVERFITTING: validation above its best for {self.evals_above_best} "
                    f"evaluations while the training loss falls; {text}")
        return text


class FitWatch:
    """Folds a run's step and evaluation events into a FitState."""

    def __init__(self) -> None:
        self.state = FitState()
        self._interval: list[float] = []  # training DataBPT since the last evaluation
        self._first: float | None = None  # step 1's DataBPT: the base model's
        self._train_at_best: float | None = None

    def step(self, event: StepEvent) -> None:
        if math.isfinite(event.data_bpt) and not event.skipped:
            self._interval.append(event.data_bpt)
            if self._first is None:
                self._first = event.data_bpt

    def evaluate(self, event: EvalEvent) -> FitState:
        train = statistics.fmean(self._interval) if self._interval else None
        self._interval = []
        s = self.state
        if s.best_bpt is None or event.heldout_bpt < s.best_bpt:
            self._train_at_best = train if event.step > 0 else None
            self.state = FitState(best_step=event.step, best_bpt=event.heldout_bpt)
            return self.state
        reference = self._train_at_best if self._train_at_best is not None else self._first
        falling = train is not None and reference is not None and train < reference
        self.state = FitState(best_step=s.best_step, best_bpt=s.best_bpt,
                              evals_above_best=s.evals_above_best + 1, train_falling=falling)
        return self.state



Measure = Callable[[str], tuple[HeldOut, float]]  # split -> (result, seconds)


class TestSplit:
    """One run's test split: the base model at step 0, the final and the best-validation
    adapters at the end, each measured by `measure` (the function validation uses)."""

    __test__ = False  # not a pytest class

    def __init__(self, blocks: int, measure: Measure, emit: Callable[[TestEvent], None],
                 recorded: list[dict[str, Any]] | None = None) -> None:
        self.blocks, self.measure, self.emit = blocks, measure, emit  # blocks: how many
        self.events: dict[str, TestEvent] = {
            r["adapter"]: TestEvent(**r) for r in recorded or [] if r["adapter"] == "base"}

    def run(self, adapter: str, step: int) -> TestEvent | None:
        if not self.blocks:
            return None
        result, seconds = self.measure("test")
        return self._emit(TestEvent(adapter=adapter, step=step, test_bpt=result.bpt,
                                    perplexity=result.perplexity, tokens=result.tokens,
                                    eval_s=seconds))

    def _emit(self, event: TestEvent) -> TestEvent:
        self.events[event.adapter] = event
        self.emit(event)
        return event

    def at_end(self, model: nn.Module, step: int, best_step: int,
               load_best: Callable[[], bool]) -> None:
        """The final adapter, then the best-validation one (`load_best` puts it in the
        model on every rank); the final weights are back in place afterwards."""
        final = self.run("final", step)
        if final is None or step == 0:
            return
        if best_step in (step, 0):  # the final weights, or the base model's
            same = final if best_step else self.events.get("base")
            if same is not None:
                self._emit(replace(same, adapter="best"))
            return
        weights = dict(tree_flatten(model.trainable_parameters()))
        if load_best():
            self.run("best", best_step)
            model.load_weights(list(weights.items()), strict=False)

    def recorded(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.events.values()]
