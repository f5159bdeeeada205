"""One optimizer step: the compiled micro-step and update."""

from __future__ import annotations

from functools import partial
from typing import Any

import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_map

from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train.batches import Batch
from tscu_tui.engine.train.objective import make_objective


class StepBuilding:
    """Trainer's compiled step (a mixin until it is one object)."""

    def _build_steps(self) -> None:
        """Compile the micro-step (loss + grads, accumulated) and the update."""
        model, optimizer = self.model, self.optimizer
        max_norm = self.config.train.max_grad_norm
        value_and_grad = nn.value_and_grad(model, make_objective(self.scale, self.scu.anchor))
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

        self._micro_step, self._grad_norm, self._update = micro_step, grad_norm, update


def _leaves(tree: Any) -> list[mx.array]:
    from mlx.utils import tree_flatten

    return [v for _, v in tree_flatten(tree)]
