"""The SCU objective (TSCU.md section 1), differentiable end to end.

loss = CE + lambda * sum((w - w0)^2) / (2 sigma^2 N), computed inside
`nn.value_and_grad`, so lambda reaches the gradients. lambda is passed in as
an array each step (a constant of the step, never a trainable parameter).
w0, the prior's centre, is 0 (`scu.prior_center = "zero"`) or the adapter's
initial weights (`"init"`: the anchor, a frozen copy taken before step 0).
CE is the mean over the targets that carry loss (data.train_on: the answers of
chat records), attention kept to each packed document (train/batches.Batch).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlx.nn as nn
from mlx.utils import tree_flatten

from tscu_tui.engine.models import fused_loss
from tscu_tui.engine.models.checkpointing import loss_chunk_tokens, project, split_head
from tscu_tui.engine.models.cpu_kernels import cross_entropy as kernel_cross_entropy
from tscu_tui.engine.models.cpu_kernels import uses_cpu_kernels
from tscu_tui.engine.models.document_mask import document_cache
from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train.batches import Batch

LN2 = math.log(2.0)


def penalty_scale(prior_sigma: float, tokens_n: int) -> float:
    """1 / (2 sigma^2 N): turns sum(w^2) into nats per training token."""
    return 1.0 / (2.0 * prior_sigma**2 * tokens_n)


Anchor = dict[str, mx.array]  # trainable parameter name -> its value at the prior's centre


def anchor_of(model: nn.Module) -> Anchor:
    """A frozen float32 copy of the trainable weights: the prior's centre for "init"."""
    anchor = {name: mx.array(v.astype(mx.float32))
              for name, v in tree_flatten(model.trainable_parameters())}
    mx.eval(anchor)
    return anchor


def sum_of_squares(model: nn.Module, anchor: Anchor | None = None) -> mx.array:
    """sum((w - w0)^2) over the trainable weights; w0 = 0 without an anchor."""
    total = mx.array(0.0)
    for name, value in tree_flatten(model.trainable_parameters()):
        delta = value.astype(mx.float32)
        if anchor is not None:
            delta = delta - anchor[name]
        total = total + mx.sum(mx.square(delta))
    return total


def _per_token(model: nn.Module, logits: mx.array, targets: mx.array) -> mx.array:
    logits = logits.astype(mx.float32)
    if not uses_cpu_kernels(model):
        return nn.losses.cross_entropy(logits, targets, reduction="none")
    return kernel_cross_entropy(logits, targets)


def _forward(model: nn.Module, module: Any, inputs: mx.array, starts: mx.array | None
             ) -> mx.array:
    """`module(inputs)`, attending per packed document when `starts` says where each
    position's document begins (document_mask.py)."""
    if starts is None:
        return module(inputs)
    return module(inputs, cache=document_cache(model, starts))


def _chunked_sum(model: nn.Module, inputs: mx.array, targets: mx.array,
                 weights: mx.array | None, starts: mx.array | None, chunk: int) -> mx.array:
    """Summed (weighted) cross-entropy with the output projection run `chunk` tokens at a
    time: no micro-batch's full logits exist at once, forward or backward. On the CPU
    fast path one fused function does it (fused_loss.py); elsewhere each chunk is
    checkpointed."""
    split = split_head(model)
    assert split is not None
    body, layer = split
    hidden = _forward(model, body, inputs, starts)
    hidden = hidden.reshape(-1, hidden.shape[-1])
    flat = targets.reshape(-1)
    flat_w = None if weights is None else weights.reshape(-1)
    if fused_loss.supports(layer):
        per_token = fused_loss.linear_cross_entropy(layer, hidden, flat, chunk)
        return (per_token if flat_w is None else per_token * flat_w).sum()

    def chunk_loss(h: mx.array, t: mx.array, w: mx.array) -> mx.array:
        return (_per_token(model, project(layer, h), t) * w).sum()

    checkpointed = mx.checkpoint(chunk_loss)
    ones = mx.ones(flat.shape, dtype=mx.float32) if flat_w is None else flat_w
    return sum((checkpointed(hidden[i:i + chunk], flat[i:i + chunk], ones[i:i + chunk])
                for i in range(0, flat.shape[0], chunk)), mx.array(0.0))


def loss_sums(model: nn.Module, batch: Batch) -> tuple[mx.array, mx.array]:
    """(summed next-token cross-entropy in nats over the targets that carry loss, their
    count), attending per document where the batch says where documents start (through
    the CPU kernels when the model runs on the CPU fast path, see cpu_kernels.py; a chunk
    of tokens at a time when the model's logits would be large, see checkpointing.py)."""
    inputs, targets = batch.tokens[:, :-1], batch.tokens[:, 1:]
    weights = batch.weights
    count = mx.array(float(targets.size)) if weights is None else weights.sum()
    chunk = loss_chunk_tokens(model)
    if chunk:
        return _chunked_sum(model, inputs, targets, weights, batch.starts, chunk), count
    per_token = _per_token(model, _forward(model, model, inputs, batch.starts), targets)
    return (per_token if weights is None else per_token * weights).sum(), count


def cross_entropy(model: nn.Module, batch: Batch | mx.array) -> mx.array:
    """Mean next-token cross-entropy (nats) over the targets that carry loss (every
    target of `batch` when it is a plain array of blocks)."""
    batch = batch if isinstance(batch, Batch) else Batch(batch)
    total, count = loss_sums(model, batch)
    if batch.denominator is not None:
        count = batch.denominator
    return total / mx.maximum(count, 1.0)  # a batch of prompts alone trains nothing


def make_objective(scale: float, anchor: Anchor | None = None
                   ) -> Callable[..., tuple[mx.array, mx.array, mx.array]]:
    """f(model, batch, lambda_reg) -> (loss, ce, sum_sq); loss is what gets differentiated."""

    def objective(model: nn.Module, batch: Batch | mx.array, lambda_reg: mx.array
                  ) -> tuple[mx.array, mx.array, mx.array]:
        ce = cross_entropy(model, batch)
        sq = sum_of_squares(model, anchor)
        return ce + lambda_reg * scale * sq, ce, sq

    return objective


@dataclass(frozen=True)
class InformationBudget:
    """DataBPT, ParamBPT and S of one optimizer step."""

    data_bpt: float
    param_bpt: float

    @property
    def s(self) -> float:
        total = self.data_bpt + self.param_bpt
        return self.param_bpt / total if total > 0 else 0.0


def budget(ce_nats: float, sum_sq: float, scale: float) -> InformationBudget:
    return InformationBudget(data_bpt=ce_nats / LN2, param_bpt=sum_sq * scale / LN2)
