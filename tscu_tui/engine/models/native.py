"""tscu's native CPU kernels (csrc/tscu_native.cpp), when they are built and fit.

MLX's CPU backend runs elementwise work on one thread with a slow exp; a LoRA step on
a real model spends about half its time there (bench/step_profile.py). The native
module does the three exp-heavy parts as MLX primitives, each one vectorised pass over
its rows split across threads: the causal softmax (masked columns skipped; block-
diagonal over packed documents with `segment_softmax`), the cross-entropy and its
gradient, SwiGLU and its gradients, RMS norm and its gradient; and the 4-bit weights'
dequantization, which MLX also does on one thread. Here each forward/backward pair
becomes an `mx.custom_function`, so the graph stays lazy and `mx.compile`d like the
rest of the step.

The module is optional: `make setup` builds it (scripts/build_native.py) and
everything falls back to the pure-MLX kernels of cpu_kernels.py when it is
missing, was built against another MLX version or for a CPU with instruction-set
extensions this one lacks (checked before the import, which would die of
SIGILL), fails its self-check, or `TSCU_NATIVE=0`. `status()` says which and
why. The kernels use as many threads as BLAS (`set_threads`, called by the
trainer with the BLAS thread policy's count).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from tscu_tui.engine.models.cpu_info import cpu_flags, cpu_name
from tscu_tui.engine.models.runtime import mx

STAMP = Path(__file__).with_name("_native_build.json")


@dataclass(frozen=True)
class NativeStatus:
    module: ModuleType | None
    reason: str

    @property
    def available(self) -> bool:
        return self.module is not None


def _disabled() -> bool:
    return os.environ.get("TSCU_NATIVE", "1").strip().lower() in ("0", "false", "off")


#: what this code calls; a module built from older sources may lack some
FUNCTIONS = ("softmax", "softmax_grad", "segment_softmax", "segment_softmax_grad",
             "cross_entropy", "cross_entropy_grad", "swiglu", "swiglu_grad", "rms_norm",
             "rms_norm_grad", "dequantize", "quantized_matmul", "set_threads", "threads")


def _self_check(module: Any) -> str | None:
    """None when the module computes what it should on a tiny case, else why not."""
    missing = [name for name in FUNCTIONS if not hasattr(module, name)]
    if missing:
        return (f"built from older sources (no {', '.join(missing)}; rebuild: python "
                "scripts/build_native.py)")
    try:
        x = mx.array([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]])
        want = mx.softmax(x, axis=-1)
        got = module.softmax(x, 0)
        loss = module.cross_entropy(x, mx.array([2, 0]))
        ok = (mx.allclose(got, want, atol=1e-6).item()
              and mx.allclose(loss, mx.logsumexp(x, axis=-1) - mx.array([2.0, 3.0]),
                              atol=1e-5).item())
    except Exception as exc:  # an ABI mismatch shows as a TypeError here
        return f"self-check raised {type(exc).__name__}: {exc}"
    return None if ok else "self-check gave wrong values"


def _stamp_problem(stamp: dict[str, Any]) -> str | None:
    """Why the module described by `stamp` must not be loaded here, or None."""
    built_for = stamp.get("mlx")
    if built_for != mx.__version__:
        return (f"built for MLX {built_for}, this is {mx.__version__} (rebuild: python "
                "scripts/build_native.py)")
    needed = stamp.get("cpu_features")
    if not isinstance(needed, list):
        return "built without a record of its CPU's features (rebuild: python " \
               "scripts/build_native.py)"
    have = cpu_flags()
    if have is None:
        return "cannot read this CPU's features (/proc/cpuinfo) to check the build"
    missing = sorted(set(needed) - have)
    if missing:
        return (f"built for a CPU with {', '.join(missing)} ({stamp.get('cpu', 'another CPU')},"
                f" {stamp.get('arch', '')}), which {cpu_name()} lacks (rebuild here: python "
                "scripts/build_native.py)")
    return None


@lru_cache(maxsize=1)
def status() -> NativeStatus:
    if _disabled():
        return NativeStatus(None, "TSCU_NATIVE=0")
    if mx.default_device().type != mx.cpu:
        return NativeStatus(None, "MLX runs on the GPU (the native kernels are CPU-only)")
    try:
        stamp = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return NativeStatus(None, "not built (python scripts/build_native.py)")
    problem = _stamp_problem(stamp) if isinstance(stamp, dict) else "unreadable build stamp"
    if problem is not None:
        return NativeStatus(None, problem)
    try:
        module = importlib.import_module("tscu_tui.engine.models._native")
    except ImportError as exc:
        return NativeStatus(None, f"cannot import: {exc}")
    problem = _self_check(module)
    if problem is not None:
        return NativeStatus(None, problem)
    module.set_threads(_initial_threads())
    return NativeStatus(module, f"native CPU kernels ({module.threads()} threads)")


def _initial_threads() -> int:
    """As many as BLAS starts with (TSCU_BLAS_THREADS, OPENBLAS_NUM_THREADS, the cores);
    the trainer's thread policy changes both together."""
    for name in ("TSCU_BLAS_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def available() -> bool:
    return status().available


def describe() -> str:
    """One line for logs and summaries: which kernels a CPU step uses, and why."""
    module = status().module
    if module is not None:
        return f"native CPU kernels ({module.threads()} threads)"
    return f"MLX-op CPU kernels (native: {status().reason})"


def set_threads(count: int) -> None:
    """Let the native kernels use `count` threads (no-op without them)."""
    module = status().module
    if module is not None:
        module.set_threads(max(1, int(count)))


def _module() -> Any:
    module = status().module
    assert module is not None, "native kernels used without checking available()"
    return module


# ---------------------------------------------------------------------------- functions

#: vjp(primals, cotangent, output); for a function of several outputs the cotangent and
#: the output are lists, one entry per output
Vjp = Callable[[list[mx.array], Any, Any], tuple[mx.array, ...]]


def _with_vjp(forward: Callable[..., Any], vjp: Vjp) -> Callable[..., Any]:
    """`forward` as an `mx.custom_function` whose VJP is vjp(primals, cotangent, output)."""
    fn = mx.custom_function(forward)
    fn.vjp(vjp)
    return fn


@lru_cache(maxsize=64)
def _softmax(queries: int) -> Callable[[mx.array], mx.array]:
    native = _module()
    return _with_vjp(lambda scores: native.softmax(scores, queries),
                     lambda primals, cotangent, output: (
                         native.softmax_grad(output, cotangent, queries),))


def causal_softmax(scores: mx.array, queries: int) -> mx.array:
    """Softmax over the last axis of float32 `scores`; with `queries` > 0 each block of
    that many rows is causal (row i of a block sees the first keys - queries + i + 1
    columns, the rest are 0), as if -inf were added above the diagonal."""
    return _softmax(int(queries))(scores)


@lru_cache(maxsize=1)
def _segment_softmax() -> Callable[[mx.array, mx.array], mx.array]:
    native = _module()
    return _with_vjp(native.segment_softmax, lambda primals, cotangent, output: (
        native.segment_softmax_grad(output, cotangent, primals[1]),
        mx.zeros_like(primals[1])))


def segment_softmax(scores: mx.array, starts: mx.array) -> mx.array:
    """Causal softmax over the last axis of float32 `scores` (batch, ..., queries, keys)
    where query q of batch row b also sees no key before starts[b, q], the first token
    of its document: block-diagonal attention over packed documents. The keys outside
    a row's document are never read and come out 0."""
    return _segment_softmax()(scores, starts)


def attention_available() -> bool:
    """Whether the fused attention runs here: the native kernels, and in the process
    OpenBLAS's cblas_sgemm and thread count (the library tscu loads before MLX)."""
    return available() and bool(_module().attention_available())


@lru_cache(maxsize=64)
def _attention(scale: float, causal: bool) -> Callable[..., tuple[mx.array, mx.array]]:
    native = _module()

    def forward(q: mx.array, k: mx.array, v: mx.array, *starts: mx.array
                ) -> tuple[mx.array, mx.array]:
        out, probs = native.attention(q, k, v, scale, causal, *starts)
        return out, probs  # (the probabilities for the backward pass)

    def vjp(primals: list[mx.array], cotangents: list[mx.array], outputs: list[mx.array]
            ) -> tuple[mx.array, ...]:
        q, k, v, *starts = primals
        # the probabilities are kept for this pass only; nothing downstream reads them
        dq, dk, dv = native.attention_grad(q, k, v, outputs[1], cotangents[0], scale, causal,
                                           *starts)
        return (dq, dk, dv, *(mx.zeros_like(s) for s in starts))

    return _with_vjp(forward, vjp)


def attention(queries: mx.array, keys: mx.array, values: mx.array, scale: float,
              causal: bool, starts: mx.array | None = None) -> mx.array:
    """softmax(scale q k^T + mask) v for float32 q (batch, heads, queries, dim) and k, v
    (batch, kv_heads, keys, dim), GQA without repeating k or v. `causal`: query i (the
    last `queries` of the keys) sees keys up to its own; `starts` (batch, queries) adds
    packed documents as segment_softmax does (and implies causal). Blocks of queries
    multiply only the keys they see, forward and backward (see csrc/)."""
    args = (queries, keys, values) if starts is None else (queries, keys, values, starts)
    return _attention(float(scale), bool(causal or starts is not None))(*args)[0]


@lru_cache(maxsize=1)
def _swiglu() -> Callable[[mx.array, mx.array], mx.array]:
    native = _module()
    return _with_vjp(native.swiglu, lambda primals, cotangent, output: tuple(
        native.swiglu_grad(*primals, cotangent)))


def swiglu(gate: mx.array, up: mx.array) -> mx.array:
    """silu(gate) * up for float32 arrays of one shape."""
    return _swiglu()(gate, up)


@lru_cache(maxsize=1)
def _cross_entropy() -> Callable[[mx.array, mx.array], mx.array]:
    native = _module()
    return _with_vjp(native.cross_entropy, lambda primals, cotangent, output: (
        native.cross_entropy_grad(*primals, output, cotangent), mx.zeros_like(primals[1])))


def cross_entropy(logits: mx.array, targets: mx.array) -> mx.array:
    """Per-position cross-entropy in nats of float32 `logits` (..., vocabulary)."""
    return _cross_entropy()(logits, targets)


@lru_cache(maxsize=8)
def _rms_norm(eps: float) -> Callable[[mx.array, mx.array], mx.array]:
    native = _module()

    def vjp(primals: list[mx.array], cotangent: mx.array, output: mx.array
            ) -> tuple[mx.array, mx.array]:
        x, weight = primals
        # the weight's gradient in MLX ops: lazy, so computed only where the norm trains
        normed = x * mx.rsqrt(mx.mean(mx.square(x), axis=-1, keepdims=True) + eps)
        d_weight = (cotangent * normed).reshape(-1, weight.shape[0]).sum(axis=0)
        return native.rms_norm_grad(x, weight, cotangent, eps), d_weight

    return _with_vjp(lambda x, weight: native.rms_norm(x, weight, eps), vjp)


def rms_norm(x: mx.array, weight: mx.array, eps: float) -> mx.array:
    """mx.fast.rms_norm for float32 `x` (..., dim) and `weight` (dim,)."""
    return _rms_norm(float(eps))(x, weight)


def cross_entropy_forward(logits: mx.array, targets: mx.array) -> mx.array:
    """The loss alone, for callers that write their own VJP (fused_loss.py)."""
    return _module().cross_entropy(logits, targets)


def cross_entropy_backward(logits: mx.array, targets: mx.array, loss: mx.array,
                           cotangent: mx.array) -> mx.array:
    """(softmax(logits) - onehot(targets)) * cotangent, from the saved loss."""
    return _module().cross_entropy_grad(logits, targets, loss, cotangent)


def _native_packing(w: mx.array, scales: mx.array, biases: mx.array | None, bits: int,
                    mode: str) -> bool:
    """Whether the native kernels read these packed weights: affine 4- or 8-bit, float32
    scales and biases, a 2-D weight."""
    return (available() and mode == "affine" and bits in (4, 8) and biases is not None
            and w.ndim == 2 and scales.dtype == biases.dtype == mx.float32)


def dequantize(w: mx.array, scales: mx.array, biases: mx.array | None, group_size: int,
               bits: int, mode: str = "affine") -> mx.array:
    """mx.dequantize to float32, on the native kernel where it applies (affine 4- or
    8-bit, float32 scales and biases, a 2-D weight) and MLX's own elsewhere."""
    if _native_packing(w, scales, biases, bits, mode):
        return _module().dequantize(w, scales, biases, group_size, bits)
    return mx.dequantize(w, scales=scales, biases=biases, group_size=group_size, bits=bits,
                         mode=mode)


#: quantized_matmul's kernel takes at most this many rows of x (the C++ kMatvecRows)
MATVEC_ROWS = 8
#: ... and groups of at most this many bits (kMaxWordsPerGroup 32-bit words)
MATVEC_GROUP_BITS = 64 * 32


@lru_cache(maxsize=16)
def _quantized_matmul(group_size: int, bits: int) -> Callable[..., mx.array]:
    def forward(x: mx.array, w: mx.array, scales: mx.array, biases: mx.array) -> mx.array:
        return _module().quantized_matmul(x, w, scales, biases, group_size, bits)

    def vjp(primals: list[mx.array], cotangent: mx.array, output: mx.array
            ) -> tuple[mx.array, ...]:
        x, w, scales, biases = primals
        dx = cotangent @ _module().dequantize(w, scales, biases, group_size, bits)
        return dx, mx.zeros_like(w), mx.zeros_like(scales), mx.zeros_like(biases)

    return _with_vjp(forward, vjp)


def quantized_matmul(x: mx.array, w: mx.array, scales: mx.array, biases: mx.array | None,
                     group_size: int, bits: int, mode: str = "affine") -> mx.array | None:
    """x @ dequantize(w).T read straight from the packed weights when x (..., in) has at
    most MATVEC_ROWS rows and the native kernels take the packing (generation, a token
    at a time); None where they do not, for the caller's own path."""
    rows = x.size // x.shape[-1] if x.ndim and x.shape[-1] else 0
    if (not 0 < rows <= MATVEC_ROWS or x.dtype != mx.float32
            or not _native_packing(w, scales, biases, bits, mode)
            or group_size * bits > MATVEC_GROUP_BITS):
        return None
    assert biases is not None
    y = _quantized_matmul(group_size, bits)(x.reshape(rows, x.shape[-1]), w, scales, biases)
    return y.reshape(*x.shape[:-1], w.shape[0])
