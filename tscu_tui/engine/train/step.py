"""One optimizer step: micro-batches, accumulation, gradient averaging, update.

`OptimizerStep` compiles the micro-step (loss and gradients, accumulated), the
gradient norm and the update once per run; calling it runs one step on this rank's
share of the batch, agrees the statistics (and any stop or save request) over the
ranks, and skips the update when the loss or the gradients are not finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_map

from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train.batches import Batch
from tscu_tui.engine.train.objective import make_objective
from tscu_tui.engine.train.session import Session


@dataclass(frozen=True)
class StepResult:
    """One step's statistics, averaged over micro-batches and ranks."""

    loss: float
    ce: float  # cross-entropy (nats per token)
    sq: float  # the adapters' sum of squares (the penalty's input)
    grad_norm: float  # NaN when the loss was not finite
    skipped: bool  # not finite: no update
    stop: bool  # a stop was requested on some rank
    save: bool  # and a save


class OptimizerStep:
    def __init__(self, session: Session) -> None:
        """Compile the micro-step (loss + grads, accumulated) and the update."""
        self.session = session
        model, optimizer = session.model, session.optimizer
        max_norm = session.config.train.max_grad_norm
        value_and_grad = nn.value_and_grad(model, make_objective(session.scale,
                                                                 session.scu.anchor))
        state = [model.state, mx.random.state]

        @partial(mx.compile, inputs=state, outputs=state)
        def micro_step(arrays: tuple[Any, ...], lambda_reg: mx.array, acc: Any) -> Any:
            (loss, ce, sq), grads = value_and_grad(model, Batch(*arrays), lambda_reg)
            if acc is not None:
                grads = tree_map(lambda a, b: a + b, acc, grads)
            return loss, ce, sq, grads

        update_state = [model.state, optimizer.state]

        @mx.compile
        def grad_norm(grads: Any, mean_scale: mx.array) -> mx.array:
            return mx.sqrt(sum(mx.sum(mx.square(g * mean_scale)) for g in _leaves(grads)))

        @partial(mx.compile, inputs=update_state, outputs=update_state)
        def update(grads: Any, mean_scale: mx.array) -> None:
            grads = tree_map(lambda g: g * mean_scale, grads)  # sum -> mean over micro-batches
            if max_norm > 0:
                grads, _ = optim.clip_grad_norm(grads, max_norm)
            optimizer.update(model, grads)

        self.micro_step, self.grad_norm, self.update = micro_step, grad_norm, update

    def __call__(self, lr: float, accum: int, stop: bool, save: bool) -> StepResult:
        """Step `session.progress.step` at learning rate `lr` over `accum` micro-batches;
        `stop` and `save` are this rank's requests, merged with the others'."""
        s = self.session
        cfg, parallel, blocks = s.config, s.parallel, s.train_blocks
        s.optimizer.learning_rate = mx.array(lr, dtype=mx.float32)
        lam = mx.array(s.scu.lambda_reg, dtype=mx.float32)
        # Dropout randomness is a function of (seed, step, rank): a resumed run draws
        # exactly what the uninterrupted one would have, with no RNG state saved.
        mx.random.seed(cfg.train.seed * 1_000_003 + s.progress.step
                       + parallel.world.rank * 7_919_000_003)
        loss_sum, ce_sum, sq, grads = 0.0, 0.0, 0.0, None
        for _ in range(accum):
            indices = s.sampler.next_indices()
            rows = parallel.shard(indices)  # this rank's share
            batch = blocks.batch(rows, parallel.denominator(
                blocks.trained(indices)) if parallel.distributed else None)
            loss, ce, sq_arr, grads = self.micro_step(batch.arrays, lam, grads)
            mx.eval(loss, ce, sq_arr, grads)
            loss_sum, ce_sum, sq = loss_sum + loss.item(), ce_sum + ce.item(), sq_arr.item()
        grads = parallel.average_gradients(grads)
        agreed = parallel.agree_step(loss_sum / accum, ce_sum / accum, sq, s.scu.lambda_reg,
                                     stop, save)
        skipped = not (math.isfinite(agreed.loss) and math.isfinite(agreed.sq))
        mean_scale = mx.array(1.0 / accum, dtype=mx.float32)
        # The norm is checked before any update: inf gradients under a finite loss
        # would turn into NaN weights through clipping (inf * 0).
        grad_norm = math.nan if skipped else self.grad_norm(grads, mean_scale).item()
        skipped = skipped or not math.isfinite(grad_norm)
        if not skipped:
            self.update(grads, mean_scale)
            mx.eval(s.model.parameters(), s.optimizer.state)
        return StepResult(loss=agreed.loss, ce=agreed.ce, sq=agreed.sq, grad_norm=grad_norm,
                          skipped=skipped, stop=agreed.stop, save=agreed.save)


def _leaves(tree: Any) -> list[mx.array]:
    from mlx.utils import tree_flatten

    return [v for _, v in tree_flatten(tree)]
