"""Attention that keeps packed documents apart, in any mlx-lm model, unchanged.

A training block holds several documents (data/packing.py). Each query may see
only the keys of its own document, causally: a block-diagonal causal mask.
mlx-lm's models build their mask from the KV cache they are given
(`create_attention_mask(h, cache)` asks `cache.make_mask`), so `DocumentMask`
is passed as every layer's cache: it stores nothing (`update_and_fetch` hands
the keys and values back, `offset` is 0) and makes the block-diagonal mask.
Every attention path then honours it:

- mlx-lm's own `scaled_dot_product_attention` (GPU, or TSCU_CPU_KERNELS=0) gets
  the boolean mask from `make_mask`;
- tscu's CPU attention (cpu_kernels.py) sees the `DocumentMask` as the cache and
  uses the document starts directly: the native segment softmax reads only each
  row's own document (masked keys are skipped, as the causal kernel skips the
  future), the MLX-op fallback adds the mask;
- checkpointed layers (checkpointing.py) pass the cache through as an argument,
  so a recomputed layer masks as its forward pass did.

Positions are not restarted per document: RoPE, which every architecture tscu
trains uses, makes a query-key score depend only on their distance, so inside a
document's diagonal block the scores are those of the document alone at
positions 0, 1, ... (tests/test_document_masks.py checks that a packed batch's
loss equals the sum of its documents' losses computed one at a time). A model
with learned absolute positions would see other positions; `uses_rope` tells.
"""

from __future__ import annotations

from typing import Any

import mlx.nn as nn

from tscu_tui.engine.models.runtime import mx


class DocumentMask:
    """A stand-in KV cache for one training forward pass over packed blocks. `starts`
    (batch, length) int32: the index of the first token of each position's document."""

    offset = 0  # positions start at 0: RoPE sees each document at its own distances

    def __init__(self, starts: mx.array) -> None:
        self.starts = starts
        self._mask: mx.array | None = None

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        return keys, values

    @property
    def mask(self) -> mx.array:
        """(batch, 1, length, length) boolean: query i sees key j of its own document, j <= i."""
        if self._mask is None:
            n = self.starts.shape[1]
            rows = mx.arange(n)[:, None]
            cols = mx.arange(n)[None, :]
            self._mask = ((cols <= rows)[None] & (cols >= self.starts[:, :, None]))[:, None]
        return self._mask

    def make_mask(self, n: int, return_array: bool = False, window_size: int | None = None
                  ) -> mx.array:
        """The mask mlx-lm's models ask their cache for (`create_attention_mask`)."""
        if n != self.starts.shape[1]:
            raise ValueError(f"a document mask for {self.starts.shape[1]} tokens was asked "
                             f"for {n}")
        if window_size is None:
            return self.mask
        rows = mx.arange(n)[:, None]
        return self.mask & (rows < mx.arange(n)[None, :] + window_size)[None, None]

    def additive(self) -> mx.array:
        """The mask as 0 / -inf, shaped to broadcast over (batch, kv heads, group, q, k)."""
        return mx.where(self.mask, 0.0, -mx.inf).astype(mx.float32)[:, :, None]


def document_cache(model: nn.Module, starts: mx.array) -> list[Any]:
    """The `cache` argument that makes `model(inputs, cache=...)` attend per document."""
    layers = getattr(model, "layers", None)
    count = len(layers) if layers is not None else 1
    mask = DocumentMask(starts)
    return [mask] * count


def uses_rope(model: nn.Module) -> bool:
    """Whether the model's attention rotates queries and keys (RoPE): then a document's
    scores do not depend on where it sits in the block."""
    return any(hasattr(m, "rope") for _, m in model.named_modules())
