"""A fast compute path for 4-bit models on MLX's CPU backend.

On CPU, `mx.quantized_matmul` is 20-70x slower than dequantizing the weight
and calling BLAS, and half-precision matmul is ~40x slower than float32. This
module keeps weights *stored* 4-bit but multiplies dequantized, in float32:

- `DequantizedLinear` / `DequantizedEmbedding` are subclasses of MLX's
  quantized layers that override only the matmul. They stay `isinstance` of
  `nn.QuantizedLinear` / `nn.QuantizedEmbedding`, so mlx-lm's LoRA conversion,
  fusing and saving treat them exactly as before, parameter names included.
  MLX's own classes are never modified.
- `prepare_for_cpu()` casts floating parameters (norms, scales, biases) to
  float32, so activations are float32 end to end.

On GPU backends nothing changes: `quantized_matmul` is the fast path there.
"""

from __future__ import annotations

from typing import TypeVar

import mlx.nn as nn

from tscu_tui.engine.models.runtime import mx

_M = TypeVar("_M", bound=nn.Module)


def _dequantized(layer: nn.QuantizedLinear | nn.QuantizedEmbedding) -> mx.array:
    return mx.dequantize(layer["weight"], scales=layer["scales"], biases=layer.get("biases"),
                         group_size=layer.group_size, bits=layer.bits, mode=layer.mode)


class DequantizedLinear(nn.QuantizedLinear):
    """A QuantizedLinear that multiplies with its dequantized weight (fast on CPU)."""

    def __call__(self, x: mx.array) -> mx.array:
        y = x @ _dequantized(self).T
        if "bias" in self:
            y = y + self["bias"]
        return y


class DequantizedEmbedding(nn.QuantizedEmbedding):
    """A QuantizedEmbedding whose tied output projection uses the dequantized weight."""

    def as_linear(self, x: mx.array) -> mx.array:
        return x @ _dequantized(self).T


_SWAPS: dict[type, type] = {nn.QuantizedLinear: DequantizedLinear,
                            nn.QuantizedEmbedding: DequantizedEmbedding}


def _rebuilt(module: nn.Module, cls: type[_M]) -> _M:
    """The same module (same arrays, same settings) as an instance of `cls`."""
    new = cls.__new__(cls)
    dict.update(new, module)  # parameters live in the Module dict
    new.__dict__.update(module.__dict__)  # group_size, bits, mode, frozen flags
    return new


def use_dequantized_matmul(model: nn.Module) -> int:
    """Swap every quantized layer of `model` for its dequantizing twin; return how many."""
    swaps = [(name, _rebuilt(m, _SWAPS[type(m)])) for name, m in model.named_modules()
             if type(m) in _SWAPS]
    if swaps:
        from mlx.utils import tree_unflatten

        model.update_modules(tree_unflatten(swaps))
    return len(swaps)


def on_cpu() -> bool:
    return mx.default_device() == mx.cpu


def prepare_for_cpu(model: nn.Module) -> int:
    """Float32 compute and dequantized matmuls when MLX runs on the CPU; else no-op."""
    if not on_cpu():
        return 0
    model.set_dtype(mx.float32)
    return use_dequantized_matmul(model)
