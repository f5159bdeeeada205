"""Held-out bits per token on a split of the prepared dataset.

`heldout_bits_per_token(model, data, "validation", ...)` and the same call with
"test" measure alike: the mean next-token cross-entropy in bits over the targets
that carry loss (data.train_on: the answers of chat records), attention kept to
each packed document, over the first `max_batches` batches of the split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mlx.nn as nn

from tscu_tui.engine.data import PreparedDataset
from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train.batches import SplitBlocks
from tscu_tui.engine.train.objective import LN2, loss_sums


@dataclass(frozen=True)
class HeldOut:
    bpt: float
    tokens: int  # targets that carried loss

    @property
    def perplexity(self) -> float:
        return math.exp(self.bpt * LN2)


def evaluated_rows(blocks: int, batch_size: int, max_batches: int) -> int:
    """How many blocks an evaluation of `max_batches` batches reads (0 = all)."""
    return blocks if max_batches <= 0 else min(blocks, max_batches * batch_size)


def heldout_nats(model: nn.Module, blocks: SplitBlocks, starts: list[int], batch_size: int,
                 stop: int) -> tuple[float, int]:
    """(summed nats, targets) over the batches of `blocks` starting at `starts`."""
    was_training = model.training
    model.eval()
    total, count = mx.array(0.0), mx.array(0.0)
    for start in starts:
        nats, targets = loss_sums(model, blocks.batch(slice(start, min(start + batch_size,
                                                                       stop))))
        total, count = total + nats, count + targets
        mx.eval(total, count)
    if was_training:
        model.train()
    return total.item(), int(count.item())


def heldout_bits_per_token(model: nn.Module, data: PreparedDataset, split: str,
                           batch_size: int, max_batches: int = 0) -> HeldOut:
    """Held-out BPT of `split` over its first `max_batches` batches (0 = all): always the
    same blocks in the same order, so evaluations are comparable."""
    blocks = SplitBlocks(data, split)
    n = evaluated_rows(len(blocks), batch_size, max_batches)
    nats, tokens = heldout_nats(model, blocks, list(range(0, n, batch_size)), batch_size, n)
    return HeldOut(bpt=nats / max(tokens, 1) / LN2, tokens=tokens)
