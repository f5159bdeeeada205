"""Trading compute for memory: per-layer gradient checkpointing and a chunked loss head.

- `use_grad_checkpoint(model)` gives each transformer layer a class whose call is
  wrapped in `mx.checkpoint`: the forward pass keeps only each layer's input, and
  the backward pass recomputes one layer at a time (about a third more compute).
  As mlx-lm's `--grad-checkpoint`, but per instance (mlx-lm patches the class for
  every model in the process) and with dropout that draws the same masks when a
  layer is recomputed (each layer call draws one random key, an input of the
  checkpoint, and its dropout masks derive from that key alone).
- `split_head(model)` separates a llama/qwen2/qwen3 model into its body (hidden
  states) and its output projection, so the loss can run over chunks of tokens
  (`objective.cross_entropy`, fused_loss.py): Qwen3's 151,936-token vocabulary
  makes one 2 x 1,024-token micro-batch's logits 1.2 GB per copy.
- The other way round, where memory is plentiful (the run's estimate at most half of
  what is available), `plan_memory` keeps blocks above 32 MiB in the heap for the
  next step instead of fresh pages from the kernel (allocator.keep_large_blocks):
  faster, for a higher resident peak.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import mlx.nn as nn

from tscu_tui.engine.config import Config
from tscu_tui.engine.models import allocator, fused_loss
from tscu_tui.engine.models.runtime import mx

#: architectures whose Model.__call__ is `head(self.model(inputs))` and nothing else
SPLIT_HEAD_MODULES = ("mlx_lm.models.llama", "mlx_lm.models.qwen2", "mlx_lm.models.qwen3")
_MARK = "_tscu_checkpointed"
_CHUNK = "_tscu_loss_chunk_tokens"
_TWINS: dict[type, type] = {}
#: large blocks are kept for reuse when available memory is at least this many times
#: the run's estimate (the kept heap's fragmentation costs up to ~40% more resident)
ROOM_FOR_LARGE_BLOCKS = 2


#: the random key of the layer being computed: its dropout masks derive from it alone
_LAYER_KEY: ContextVar[list[mx.array] | None] = ContextVar("tscu_layer_key", default=None)


def _keyed_dropout_call(self: nn.Dropout, x: mx.array) -> mx.array:
    """nn.Dropout whose mask comes from the layer's key inside a checkpointed layer, so
    the recomputation draws the very masks of the forward pass."""
    keys = _LAYER_KEY.get()
    if keys is None or self._p_1 == 1 or not self.training:
        return nn.Dropout.__call__(self, x)
    keys[0], sub = mx.random.split(keys[0])
    mask = mx.random.bernoulli(self._p_1, x.shape, key=sub)
    return (mask * x) * (1 / self._p_1)


def _checkpointed_call(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    base_call = type(self).__mro__[1].__call__  # the class this twin was made from
    if not self.training:  # evaluation and sampling: no backward pass to save memory for
        return base_call(self, *args, **kwargs)
    # drawn once, outside what the backward pass recomputes
    key = mx.random.randint(0, 2**31 - 1, (2,)).astype(mx.uint32)

    def inner(params: Any, key: mx.array, *args: Any, **kwargs: Any) -> Any:
        self.update(params)
        token = _LAYER_KEY.set([mx.stop_gradient(key)])
        try:
            return base_call(self, *args, **kwargs)
        finally:
            _LAYER_KEY.reset(token)

    return mx.checkpoint(inner)(self.trainable_parameters(), key, *args, **kwargs)


def _twin(cls: type, call: Callable[..., Any]) -> type:
    if cls not in _TWINS:
        _TWINS[cls] = type(cls.__name__, (cls,), {"__call__": call,
                                                  "__module__": cls.__module__, _MARK: True})
    return _TWINS[cls]


def transformer_layers(model: nn.Module) -> list[nn.Module]:
    layers = getattr(model, "layers", None)
    if layers is None:
        layers = getattr(getattr(model, "model", None), "layers", None)
    return list(layers or [])


def use_grad_checkpoint(model: nn.Module) -> int:
    """Checkpoint every transformer layer of `model` (in place); returns how many."""
    count = 0
    for layer in transformer_layers(model):
        if not getattr(type(layer), _MARK, False):
            layer.__class__ = _twin(type(layer), _checkpointed_call)
        for _, module in layer.named_modules():
            if isinstance(module, nn.Dropout) and not getattr(type(module), _MARK, False):
                module.__class__ = _twin(type(module), _keyed_dropout_call)
        count += 1
    return count


def uses_grad_checkpoint(model: nn.Module) -> bool:
    layers = transformer_layers(model)
    return bool(layers) and all(getattr(type(layer), _MARK, False) for layer in layers)


def split_head(model: nn.Module) -> tuple[Callable[[mx.array], mx.array], nn.Module] | None:
    """(body, output projection layer) with model(x) == project(layer, body(x)), or None
    for other architectures."""
    if type(model).__module__ not in SPLIT_HEAD_MODULES:
        return None
    inner = model.model
    if getattr(model.args, "tie_word_embeddings", False):
        return inner, inner.embed_tokens
    return inner, model.lm_head


def project(layer: nn.Module, hidden: mx.array) -> mx.array:
    """Logits from split_head's layer (a tied embedding projects with as_linear)."""
    return layer.as_linear(hidden) if isinstance(layer, nn.Embedding | nn.QuantizedEmbedding) \
        else layer(hidden)


def set_loss_chunking(model: nn.Module, tokens_per_micro_batch: int) -> int:
    """Compute the loss a chunk of tokens at a time (objective.cross_entropy) when a
    micro-batch's logits would exceed fused_loss.CHUNK_LOGITS_BYTES, or when the output
    projection's float32 copy would exceed fused_loss.HEAD_SLICE_BYTES (the fused loss
    makes it a slice at a time); returns the chunk size in tokens (0 = the plain loss)."""
    vocab = int(getattr(getattr(model, "args", None), "vocab_size", 0) or 0)
    split = split_head(model) if vocab else None
    chunk = 0
    if split is not None:
        big_logits = tokens_per_micro_batch * vocab * 4 > fused_loss.CHUNK_LOGITS_BYTES
        layer = split[1]
        head_bytes = layer["scales"].shape[1] * layer.group_size * vocab * 4 \
            if fused_loss.supports(layer) else 0
        if big_logits or head_bytes > fused_loss.HEAD_SLICE_BYTES:
            per_chunk = fused_loss.CHUNK_LOGITS_BYTES // (vocab * 4)
            chunk = max(1, min(tokens_per_micro_batch, per_chunk))
    setattr(model, _CHUNK, chunk)
    return chunk


def loss_chunk_tokens(model: nn.Module) -> int:
    return int(getattr(model, _CHUNK, 0))


@dataclass(frozen=True)
class MemoryPlan:
    """How a run trades compute for memory, and why."""

    grad_checkpoint: bool
    loss_chunk_tokens: int
    reason: str
    large_blocks_kept: bool = False  # blocks above 32 MiB reused, not returned to the kernel

    def describe(self) -> str:
        parts = [f"gradient checkpointing {'on' if self.grad_checkpoint else 'off'} "
                 f"({self.reason})"]
        if self.loss_chunk_tokens:
            parts.append(f"loss computed {self.loss_chunk_tokens} tokens at a time")
        if self.large_blocks_kept:
            parts.append("large blocks kept for reuse (memory to spare)")
        return "; ".join(parts)


def plan_memory(model: nn.Module, config: Config, tokens_per_micro_batch: int) -> MemoryPlan:
    """Resolve train.grad_checkpoint ("auto": from the memory estimate) and apply it and
    the loss chunking to `model`, in place."""
    from tscu_tui.engine.models.memory import estimate_memory, gib

    setting = config.train.grad_checkpoint
    without = None
    if setting in ("true", "false"):
        on, reason = setting == "true", f"train.grad_checkpoint = {setting}"
    else:
        without = estimate_memory(config, grad_checkpoint=False)
        if without is None:
            on, reason = False, "auto: model shape unknown, so no estimate"
        else:
            on = not without.fits
            reason = (f"auto: ~{gib(without.total)} without it, {gib(without.available)} "
                      f"free")
    if on:
        use_grad_checkpoint(model)
    chunk = set_loss_chunking(model, tokens_per_micro_batch)
    # "auto" without checkpointing has this very estimate already
    planned = without if setting == "auto" and not on else estimate_memory(
        config, grad_checkpoint=on)
    roomy = (planned is not None
             and planned.total * ROOM_FOR_LARGE_BLOCKS <= planned.available)
    kept = allocator.keep_large_blocks(roomy) and roomy
    return MemoryPlan(grad_checkpoint=on, loss_chunk_tokens=chunk, reason=reason,
                      large_blocks_kept=kept)
