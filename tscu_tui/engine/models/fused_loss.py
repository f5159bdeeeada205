"""The output projection and the cross-entropy as one function that never holds much.

For a large vocabulary the loss is where a LoRA step's memory goes: Qwen3's head is
151,936 x 2,560 (1.6 GB as float32) and one 2 x 1,024-token micro-batch's logits are
1.2 GB a copy. `linear_cross_entropy` computes per-token losses from the hidden
states a chunk of tokens at a time, and each chunk's logits a slice of the
vocabulary at a time, dequantizing each slice of the 4-bit head for one matmul. Its
VJP does the same again (recomputing each chunk's logits from the hidden states and
the saved loss) and returns only the hidden states' gradient: the head is frozen.

MLX evaluates independent branches of a graph in an order of its own, which would
let every chunk's (or slice's) arrays exist at once; `mx.depends` chains each chunk
and slice to the one before, so they exist one after another.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import mlx.nn as nn

from tscu_tui.engine.models import native
from tscu_tui.engine.models.cpu_kernels import cross_entropy_backward, cross_entropy_forward
from tscu_tui.engine.models.runtime import mx

#: the head's float32 copy is made in slices of at most this many bytes
HEAD_SLICE_BYTES = 256 * 1024**2
#: a micro-batch's logits above this many bytes are computed a chunk of tokens at a time
#: (checkpointing.set_loss_chunking)
CHUNK_LOGITS_BYTES = 256 * 1024**2


def _spans(total: int, step: int) -> list[tuple[int, int]]:
    return [(start, min(start + step, total)) for start in range(0, total, step)]


@lru_cache(maxsize=16)
def _loss_fn(group_size: int, bits: int, mode: str, with_biases: bool, chunk: int,
             slice_rows: int) -> Callable[..., mx.array]:
    def weight(w: mx.array, scales: mx.array, biases: mx.array) -> mx.array:
        return native.dequantize(w, scales, biases if with_biases else None, group_size,
                                 bits, mode)

    def sliced(w: mx.array, scales: mx.array, biases: mx.array, after: mx.array
               ) -> list[tuple[int, int, mx.array]]:
        """(first row, end row, that slice's float32 weight), each made after `after`."""
        return [(r0, r1, *mx.depends([w[r0:r1], scales[r0:r1], biases[r0:r1]], [after]))
                for r0, r1 in _spans(w.shape[0], slice_rows)]

    def logits(h: mx.array, w: mx.array, scales: mx.array, biases: mx.array) -> mx.array:
        outs: list[mx.array] = []
        after = h
        for r0, r1 in _spans(w.shape[0], slice_rows):
            ws, ss, bs = mx.depends([w[r0:r1], scales[r0:r1], biases[r0:r1]], [after])
            outs.append(h @ weight(ws, ss, bs).T)
            after = outs[-1]
        return mx.concatenate(outs, axis=-1)

    @mx.custom_function
    def loss(h: mx.array, targets: mx.array, w: mx.array, scales: mx.array,
             biases: mx.array) -> mx.array:
        parts: list[mx.array] = []
        for t0, t1 in _spans(h.shape[0], chunk):
            hc = h[t0:t1] if not parts else mx.depends(h[t0:t1], [parts[-1]])
            z = logits(hc, w, scales, biases)
            parts.append(cross_entropy_forward(z, targets[t0:t1]))
        return mx.concatenate(parts)

    @loss.vjp
    def loss_vjp(primals: list[mx.array], cotangent: mx.array, output: mx.array
                 ) -> tuple[mx.array, ...]:
        h, targets, w, scales, biases = primals
        grads: list[mx.array] = []
        after = cotangent
        for t0, t1 in _spans(h.shape[0], chunk):
            hc = mx.depends(h[t0:t1], [after])
            z = logits(hc, w, scales, biases)
            d = cross_entropy_backward(z, targets[t0:t1], output[t0:t1], cotangent[t0:t1])
            dh: mx.array | None = None
            for r0, r1, ws, ss, bs in sliced(w, scales, biases, d):
                if dh is not None:
                    ws, ss, bs = mx.depends([ws, ss, bs], [dh])
                part = d[:, r0:r1] @ weight(ws, ss, bs)
                dh = part if dh is None else dh + part
            assert dh is not None
            grads.append(dh)
            after = dh
        return (mx.concatenate(grads), mx.zeros_like(targets), mx.zeros_like(w),
                mx.zeros_like(scales), mx.zeros_like(biases))

    return loss


def supports(layer: nn.Module) -> bool:
    """A 4-bit output projection on the CPU fast path (cpu_fastpath's dequantizing twins)."""
    from tscu_tui.engine.models.cpu_fastpath import DequantizedEmbedding, DequantizedLinear

    return isinstance(layer, DequantizedLinear | DequantizedEmbedding) and "bias" not in layer


def linear_cross_entropy(layer: Any, hidden: mx.array, targets: mx.array,
                         chunk: int) -> mx.array:
    """Per-token cross-entropy (nats) of `layer`'s logits for `hidden` (tokens x dim)."""
    biases = layer.get("biases")
    w, scales = layer["weight"], layer["scales"]
    columns = scales.shape[1] * layer.group_size
    slice_rows = max(1, HEAD_SLICE_BYTES // (columns * 4))
    fn = _loss_fn(layer.group_size, layer.bits, layer.mode, biases is not None, chunk,
                  slice_rows)
    return fn(hidden, targets, w, scales, scales if biases is None else biases)
