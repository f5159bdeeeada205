"""A fast compute path for 4-bit models on MLX's CPU backend.

On CPU, `mx.quantized_matmul` is 20-70x slower than dequantizing the weight
and calling BLAS, and half-precision matmul is ~40x slower than float32. This
module keeps weights *stored* 4-bit but multiplies dequantized, in float32:

- `DequantizedLinear` / `DequantizedEmbedding` are subclasses of MLX's
  quantized layers that override only the matmul. They stay `isinstance` of
  `nn.QuantizedLinear` / `nn.QuantizedEmbedding`, so mlx-lm's LoRA conversion,
  fusing and saving treat them exactly as before, parameter names included.
  MLX's own classes are never modified.
- The float32 copy lives only as long as the forward matmul: the backward pass
  dequantizes again (`dequantized_matmul`, a custom VJP whose recomputation
  depends on the incoming gradient, so `mx.compile` cannot merge it with the
  forward's). Keeping the copies instead would hold every adapted layer's weights
  in float32 from forward to backward: 14.6 GB for Qwen3-4B, 8x its 4-bit size.
  `TSCU_DEQUANT_RECOMPUTE=0` keeps them, for comparisons.
- A few rows at a time (generation: one token per call) the matmul reads the packed
  weights instead (`native.quantized_matmul`): no float32 copy of the model is written
  for every token (bench/sampling.py: 2.7x on SmolLM2-135M, 7.2x on Qwen3-4B's shapes).
- `prepare_for_cpu()` casts floating parameters (norms, scales, biases) to
  float32, so activations are float32 end to end.

On GPU backends nothing changes: `quantized_matmul` is the fast path there.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import mlx.nn as nn

from tscu_tui.engine.models import native
from tscu_tui.engine.models.cpu_kernels import kernels_enabled, use_cpu_kernels
from tscu_tui.engine.models.runtime import mx


def _dequantized(layer: nn.QuantizedLinear | nn.QuantizedEmbedding) -> mx.array:
    return native.dequantize(layer["weight"], layer["scales"], layer.get("biases"),
                             layer.group_size, layer.bits, layer.mode)


def recompute_enabled() -> bool:
    return os.environ.get("TSCU_DEQUANT_RECOMPUTE", "1").strip().lower() not in (
        "0", "false", "off")


@lru_cache(maxsize=32)
def _matmul_fn(group_size: int, bits: int, mode: str, with_biases: bool) -> Any:
    """x @ dequantize(w).T whose VJP dequantizes again instead of keeping the copy."""

    def weight(w: mx.array, scales: mx.array, biases: mx.array) -> mx.array:
        return native.dequantize(w, scales, biases if with_biases else None, group_size,
                                 bits, mode)

    @mx.custom_function
    def matmul(x: mx.array, w: mx.array, scales: mx.array, biases: mx.array) -> mx.array:
        # depends(): one copy per call, never shared (under mx.compile) with another call
        # on the same weight, such as the same layer recomputed by a checkpoint.
        w, scales, biases = mx.depends([w, scales, biases], [x])
        return x @ weight(w, scales, biases).T

    @matmul.vjp
    def matmul_vjp(primals: list[mx.array], cotangent: mx.array, output: mx.array) -> tuple:
        x, w, scales, biases = primals
        # depends(): the recomputation waits for the gradient, so mx.compile cannot
        # merge it with the forward's dequantize (which would keep the copy alive).
        w, scales, biases = mx.depends([w, scales, biases], [cotangent])
        dx = cotangent @ weight(w, scales, biases)
        # The base is frozen: these zeros are never evaluated.
        return dx, mx.zeros_like(w), mx.zeros_like(scales), mx.zeros_like(biases)

    return matmul


def dequantized_matmul(layer: nn.QuantizedLinear | nn.QuantizedEmbedding,
                       x: mx.array) -> mx.array:
    """x @ W.T with `layer`'s weight dequantized to float32 for the call only; for a few
    rows of x (generation) straight from the packed weights (native.quantized_matmul)."""
    y = native.quantized_matmul(x, layer["weight"], layer["scales"], layer.get("biases"),
                                layer.group_size, layer.bits, layer.mode)
    if y is not None:
        return y
    if not recompute_enabled():
        return x @ _dequantized(layer).T
    biases = layer.get("biases")
    fn = _matmul_fn(layer.group_size, layer.bits, layer.mode, biases is not None)
    scales = layer["scales"]
    return fn(x, layer["weight"], scales, scales if biases is None else biases)


class DequantizedLinear(nn.QuantizedLinear):
    """A QuantizedLinear that multiplies with its dequantized weight (fast on CPU)."""

    def __call__(self, x: mx.array) -> mx.array:
        y = dequantized_matmul(self, x)
        if "bias" in self:
            y = y + self["bias"]
        return y


class DequantizedEmbedding(nn.QuantizedEmbedding):
    """A QuantizedEmbedding whose tied output projection uses the dequantized weight."""

    def as_linear(self, x: mx.array) -> mx.array:
        return dequantized_matmul(self, x)


def _addmm_lora_call(self: nn.Module, x: mx.array) -> mx.array:
    """mlx-lm's LoRALinear with `y + scale * (x A) B` as one BLAS call (`addmm`
    accumulates into y): two elementwise passes over the output fewer per layer."""
    y = self.linear(x)
    xa = self.dropout(x) @ self.lora_a
    return mx.addmm(y, xa.astype(y.dtype), self.lora_b.astype(y.dtype), alpha=self.scale)


_SWAPS: dict[type, type] = {nn.QuantizedLinear: DequantizedLinear,
                            nn.QuantizedEmbedding: DequantizedEmbedding}
_LORA_TWINS: dict[type, type] = {}


def _lora_twin(cls: type) -> type | None:
    """mlx-lm's LoRALinear -> its addmm twin (mlx_lm.tuner is imported only by whoever
    added the adapters: importing it here would pull its progress-bar library in)."""
    if cls.__name__ != "LoRALinear" or cls.__module__ != "mlx_lm.tuner.lora":
        return None
    if cls not in _LORA_TWINS:
        _LORA_TWINS[cls] = type("AddmmLoRALinear", (cls,), {"__call__": _addmm_lora_call,
                                                             "__module__": __name__})
    return _LORA_TWINS[cls]


def use_dequantized_matmul(model: nn.Module) -> int:
    """Give every quantized layer of `model` its dequantizing twin's class (and LoRA
    layers their addmm twin's), in place: same object, same arrays, same settings.
    Returns how many quantized layers were changed."""
    swapped = 0
    for _, module in model.named_modules():
        twin = _SWAPS.get(type(module))
        if twin is not None:
            module.__class__ = twin
            swapped += 1
        elif kernels_enabled() and (lora := _lora_twin(type(module))) is not None:
            module.__class__ = lora  # TSCU_CPU_KERNELS=0 keeps mlx-lm's own, for comparisons
    return swapped


def on_cpu() -> bool:
    return mx.default_device() == mx.cpu


def prepare_for_cpu(model: nn.Module) -> int:
    """Float32 compute, dequantized matmuls and the cheaper exp-heavy kernels
    (cpu_kernels.py) when MLX runs on the CPU; else no-op. Returns how many quantized
    layers were swapped. Call it after LoRA layers are added (their addmm twin)."""
    if not on_cpu():
        return 0
    model.set_dtype(mx.float32)
    use_cpu_kernels(model)
    return use_dequantized_matmul(model)
