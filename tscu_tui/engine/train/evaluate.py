"""Held-out bits per token on validation blocks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import mlx.nn as nn
import numpy as np

from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train.objective import LN2, cross_entropy


@dataclass(frozen=True)
class HeldOut:
    bpt: float
    tokens: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.bpt * LN2)


def heldout_bits_per_token(model: nn.Module, blocks: np.ndarray, batch_size: int,
                           max_batches: int = 0) -> HeldOut:
    """Mean next-token cross-entropy in bits over the first `max_batches` batches (0 = all).

    Always the same blocks in the same order, so evaluations are comparable.
    """
    n = len(blocks) if max_batches <= 0 else min(len(blocks), max_batches * batch_size)
    was_training = model.training
    model.eval()
    total, count = mx.array(0.0), 0
    for start in range(0, n, batch_size):
        batch = mx.array(np.asarray(blocks[start:start + batch_size], dtype=np.int32))
        total = total + cross_entropy(model, batch, reduction="sum")
        count += batch.shape[0] * (batch.shape[1] - 1)
        mx.eval(total)
    if was_training:
        model.train()
    return HeldOut(bpt=total.item() / max(count, 1) / LN2, tokens=count)
