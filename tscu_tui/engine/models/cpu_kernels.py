"""Cheaper formulations of a step's exp-heavy parts for MLX's CPU backend.

MLX's Linux CPU build computes `exp` (and `sigmoid`, `softmax`, `logsumexp`,
which use it) at 14-19 ns per element on one core, while `power` runs at about
6.5 ns (both measured on a 2-core AVX-512 machine; `bench/step_profile.py`).
A LoRA step spends most of its non-matmul time in three exp-heavy places, so on
the CPU backend they are written with `exp(x) = 2 ** (x * log2 e)`, as
`mx.custom_function`s with analytic VJPs (cheaper than differentiating the
formula, and free of the inf/inf a quotient's autodiff gives at overflow):

- `swiglu(gate, up)`: the MLP activation `silu(gate) * up`;
- `scaled_dot_product_attention`: matmuls around a softmax with the causal mask
  added as a constant, or per packed document (document_mask.py) (GQA without
  repeating keys or values); where the native kernels and OpenBLAS are loaded, one
  fused kernel (native.attention) that multiplies only the key blocks each block of
  queries sees, forward and backward (`TSCU_FUSED_ATTENTION=0` keeps the matmuls);
- `cross_entropy(logits, targets)`: per-token loss; its VJP is `softmax - onehot`.

Where tscu's native kernels are built (native.py) these three, and the RMS norms
(`KernelRMSNorm`), run on them instead; the MLX-op versions here are the fallback.

Everything stays lazy MLX: the step is still one graph and still `mx.compile`d,
which fuses the arithmetic around `power` into single kernels. mlx-lm's model
code is not copied or changed: `use_cpu_kernels` gives a model's module classes
a `__call__` whose global names `swiglu` and `scaled_dot_product_attention` point
here (mlx-lm's llama, qwen2, qwen3 and most other architectures call these two
names). `TSCU_CPU_KERNELS=0` turns this off, for comparisons.
"""

from __future__ import annotations

import math
import os
import types
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import mlx.nn as nn

from tscu_tui.engine.models import native
from tscu_tui.engine.models.document_mask import DocumentMask
from tscu_tui.engine.models.runtime import mx

LOG2E = 1.0 / math.log(2.0)
#: global names replaced inside mlx-lm's model modules
KERNEL_NAMES = ("swiglu", "scaled_dot_product_attention")
_MARK = "_tscu_cpu_kernels"


def kernels_enabled() -> bool:
    return os.environ.get("TSCU_CPU_KERNELS", "1").strip().lower() not in ("0", "false", "off")


def exp(x: mx.array) -> mx.array:
    """e ** x as 2 ** (x log2 e): the same function, about 3x faster on MLX's CPU build
    (relative error ~5e-6 at |x| = 88, 3e-7 for |x| < 4)."""
    return mx.power(2.0, x * LOG2E)


# ---------------------------------------------------------------------------- swiglu

def _sigmoid(x: mx.array) -> mx.array:
    return 1.0 / (1.0 + exp(-x))  # exp(-x) = inf for x < -88 gives exactly 0


def swiglu(gate: mx.array, up: mx.array) -> mx.array:
    """silu(gate) * up (native when built; see native.py)."""
    if native.available() and gate.dtype == up.dtype == mx.float32 and gate.shape == up.shape:
        return native.swiglu(gate, up)
    return mlx_swiglu(gate, up)


@mx.custom_function
def mlx_swiglu(gate: mx.array, up: mx.array) -> mx.array:
    """silu(gate) * up in MLX ops."""
    return gate * _sigmoid(gate) * up


@mlx_swiglu.vjp
def _swiglu_vjp(primals: list[mx.array], cotangent: mx.array, output: mx.array
                ) -> tuple[mx.array, mx.array]:
    gate, up = primals
    sig = _sigmoid(gate)
    # d silu / d gate = sig * (1 + gate * (1 - sig))
    d_gate = sig * (1.0 + gate * (1.0 - sig)) * up * cotangent
    return d_gate, gate * sig * cotangent


# ---------------------------------------------------------------------------- attention

@mx.custom_function
def softmax(scores: mx.array) -> mx.array:
    """Softmax over the last axis (rows of -inf-masked scores included)."""
    e = exp(scores - mx.stop_gradient(scores.max(axis=-1, keepdims=True)))
    return e / e.sum(axis=-1, keepdims=True)


@softmax.vjp
def _softmax_vjp(primals: list[mx.array], cotangent: mx.array, output: mx.array
                 ) -> tuple[mx.array]:
    d = output * cotangent
    return (d - output * d.sum(axis=-1, keepdims=True),)


@lru_cache(maxsize=16)
def causal_mask(queries: int, keys: int) -> mx.array:
    """Additive mask: query i (the last `queries` of `keys` positions) sees keys <= i."""
    rows = mx.arange(keys - queries, keys)[:, None]
    return mx.where(mx.arange(keys)[None, :] > rows, -math.inf, 0.0).astype(mx.float32)


def fused_attention_enabled() -> bool:
    """`TSCU_FUSED_ATTENTION=0` keeps the attention as matmuls around the native softmax
    (for comparisons)."""
    return os.environ.get("TSCU_FUSED_ATTENTION", "1").strip().lower() not in ("0", "false",
                                                                             "off")


def scaled_dot_product_attention(queries: mx.array, keys: mx.array, values: mx.array,
                                 cache: Any, scale: float, mask: Any,
                                 sinks: mx.array | None = None) -> mx.array:
    """mlx-lm's attention with the cheaper softmax, causal or per packed document (a
    `DocumentMask` cache, document_mask.py); anything unusual (attention sinks, a
    quantized KV cache, other array masks, half precision) goes to mlx-lm's own function."""
    from mlx_lm.models import base

    causal = isinstance(mask, str) and mask == "causal"
    documents = isinstance(cache, DocumentMask) and mask is cache.mask
    if (sinks is not None or hasattr(cache, "bits")
            or not (mask is None or causal or documents) or queries.dtype != mx.float32):
        return base.scaled_dot_product_attention(queries, keys, values, cache=cache,
                                                 scale=scale, mask=mask, sinks=sinks)
    b, heads, length, dim = queries.shape
    kv_heads, span = keys.shape[1], keys.shape[2]
    if length > 1 and native.attention_available() and fused_attention_enabled():
        # (a single query, generation's, stays on the two matmuls: nothing to skip)
        return native.attention(queries, keys, values, scale, causal,
                                cache.starts if documents else None)
    group = heads // kv_heads  # query heads per key/value head (GQA)
    q = (queries * scale).reshape(b, kv_heads, group * length, dim)
    scores = (q @ keys.swapaxes(-1, -2)).reshape(b, kv_heads, group, length, span)
    causal_rows = length if causal and length > 1 else 0
    if documents:
        probs = (native.segment_softmax(scores, cache.starts) if native.available()
                 else softmax(scores + cache.additive()))
    elif native.available():
        probs = native.causal_softmax(scores, causal_rows)
    else:
        if causal_rows:
            scores = scores + causal_mask(length, span)
        probs = softmax(scores)
    probs = probs.reshape(b, kv_heads, group * length, span)
    return (probs @ values).reshape(b, heads, length, dim)


# ---------------------------------------------------------------------------- cross-entropy

def cross_entropy(logits: mx.array, targets: mx.array) -> mx.array:
    """Per-position cross-entropy in nats (native when built; see native.py)."""
    if native.available() and logits.dtype == mx.float32:
        return native.cross_entropy(logits, targets)
    return mlx_cross_entropy(logits, targets)


def cross_entropy_forward(logits: mx.array, targets: mx.array) -> mx.array:
    """The loss alone (native when built), for callers that write their own VJP
    (fused_loss.py) with `cross_entropy_backward`."""
    if native.available() and logits.dtype == mx.float32:
        return native.cross_entropy_forward(logits, targets)
    return _mlx_loss(logits, targets)


def cross_entropy_backward(logits: mx.array, targets: mx.array, loss: mx.array,
                           cotangent: mx.array) -> mx.array:
    """d loss / d logits = (softmax(logits) - onehot(targets)) * cotangent, the softmax
    recomputed from the saved loss (native when built)."""
    if native.available() and logits.dtype == mx.float32:
        return native.cross_entropy_backward(logits, targets, loss, cotangent)
    return _mlx_gradient(logits, targets, loss, cotangent)


def _mlx_loss(logits: mx.array, targets: mx.array) -> mx.array:
    """logsumexp(logits) - logits[target], in MLX ops."""
    top = mx.stop_gradient(logits.max(axis=-1, keepdims=True))
    lse = mx.log(exp(logits - top).sum(axis=-1)) + top[..., 0]
    return lse - mx.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]


def _mlx_gradient(logits: mx.array, targets: mx.array, loss: mx.array,
                  cotangent: mx.array) -> mx.array:
    index = targets[..., None]
    picked = mx.take_along_axis(logits, index, axis=-1)
    probs = exp(logits - (loss[..., None] + picked))  # softmax, from the saved loss
    probs = mx.put_along_axis(probs, index, mx.take_along_axis(probs, index, -1) - 1.0, -1)
    return probs * cotangent[..., None]


@mx.custom_function
def mlx_cross_entropy(logits: mx.array, targets: mx.array) -> mx.array:
    """Per-position cross-entropy in nats: logsumexp(logits) - logits[target]."""
    return _mlx_loss(logits, targets)


@mlx_cross_entropy.vjp
def _cross_entropy_vjp(primals: list[mx.array], cotangent: mx.array, output: mx.array
                       ) -> tuple[mx.array, mx.array]:
    logits, targets = primals
    return _mlx_gradient(logits, targets, output, cotangent), mx.zeros_like(targets)


# ---------------------------------------------------------------------------- patching

def _rebound(call: Callable[..., Any], names: dict[str, Any]) -> Callable[..., Any]:
    """`call` with some of its module's global names pointing elsewhere (mlx-lm's own
    code, defaults and closure: nothing of it is copied or rewritten)."""
    scope = dict(call.__globals__)
    scope.update(names)
    new = types.FunctionType(call.__code__, scope, call.__name__, call.__defaults__,
                             call.__closure__)
    new.__kwdefaults__ = call.__kwdefaults__
    new.__doc__ = call.__doc__
    return new


class KernelRMSNorm(nn.RMSNorm):
    """nn.RMSNorm on the native kernel where it applies (float32), MLX's elsewhere."""

    def __call__(self, x: mx.array) -> mx.array:
        if native.available() and x.dtype == self.weight.dtype == mx.float32:
            return native.rms_norm(x, self.weight, self.eps)
        return super().__call__(x)


_KERNELS: dict[str, Any] = {"swiglu": swiglu,
                            "scaled_dot_product_attention": scaled_dot_product_attention}
_CLASSES: dict[type, type] = {}


def use_cpu_kernels(model: nn.Module) -> int:
    """Route `model`'s MLP activation and attention through the kernels above (and its
    RMS norms through `KernelRMSNorm`); return how many attention and MLP modules now
    use them (0 for an architecture that calls neither name, or with
    TSCU_CPU_KERNELS=0)."""
    if not kernels_enabled():
        return 0
    count = norms = 0
    for _, module in model.named_modules():
        cls = type(module)
        if cls is nn.RMSNorm:
            module.__class__ = KernelRMSNorm
            norms += 1
            continue
        code = getattr(cls.__call__, "__code__", None)
        used = [n for n in KERNEL_NAMES if n in getattr(code, "co_names", ())]
        if not used or getattr(cls, _MARK, False):
            continue
        if cls not in _CLASSES:
            _CLASSES[cls] = type(cls.__name__, (cls,), {
                "__call__": _rebound(cls.__call__, {n: _KERNELS[n] for n in used}),
                "__module__": cls.__module__, _MARK: True})
        module.__class__ = _CLASSES[cls]
        count += 1
    if count or norms:
        setattr(model, _MARK, True)
    return count


def uses_cpu_kernels(model: nn.Module) -> bool:
    return bool(getattr(model, _MARK, False))
