"""What makes two runs comparable seed by seed: the same initial adapter and data order.

An ablation compares arms by the per-seed difference of their results, which is only
fair when seed k of every arm started from the same adapter and saw the same batches
in the same order. Both are functions of the seed (the LoRA A matrices are drawn after
`mx.random.seed(train.seed)`, the batch order by BlockSampler from the seed), and no
arm's setting (penalty, weight decay, dropout) enters them; each run records their
digests in its summary, and the ablation report checks them instead of assuming it.
"""

from __future__ import annotations

import hashlib

import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train.batches import BlockSampler


def adapter_digest(model: nn.Module) -> str:
    """sha256 of the trainable weights (names, shapes and float32 values)."""
    digest = hashlib.sha256()
    for name, value in sorted(tree_flatten(model.trainable_parameters())):
        array = np.array(value.astype(mx.float32))
        digest.update(f"{name}:{array.shape};".encode())
        digest.update(array.tobytes())
    return "sha256:" + digest.hexdigest()


def data_order_digest(n_blocks: int, batch_size: int, seed: int, micro_batches: int) -> str:
    """sha256 of the block indices of the run's first `micro_batches` micro-batches."""
    sampler = BlockSampler(n_blocks, batch_size, seed)
    digest = hashlib.sha256()
    for _ in range(micro_batches):
        digest.update(sampler.next_indices().astype(np.int64).tobytes())
    return "sha256:" + digest.hexdigest()
