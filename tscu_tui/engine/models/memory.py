"""Peak memory of a LoRA run, estimated from the model's shape before anything loads.

The estimate adds up what a training step keeps alive at its peak:

- the base weights at their stored (quantized) size, scales and biases included;
- on MLX's CPU backend, the float32 dequantized copies of cpu_fastpath.py: each
  lives for one matmul (the backward pass dequantizes again), so at most two of a
  layer's largest matrix or the output projection's exist at once;
- LoRA parameters in float32 with their gradient, the accumulated gradient and
  AdamW's two moments;
- activations saved for the backward pass of the adapted layers (attention
  probabilities included), for batch_size x block_size tokens (the prepared
  dataset's block size when data.path holds one: that is what training reads);
  with gradient checkpointing (checkpointing.py) only each layer's input, plus one
  layer recomputed with its gradients;
- the logits and their softmax/gradient (vocab x tokens x 3 copies, often the
  single largest term), for one chunk of tokens when the loss is chunked;
- a margin for the allocator, the runtime, the tokenizer and the data.

Checked against `mx.get_peak_memory()` of real training steps on the CPU backend:
the embedded model at 8 x 64, 8 x 128 and 16 x 256 tokens within 7 % of the arrays
estimated here, and a 2-layer model with Qwen3-4B's layer widths (hidden 2,560,
MLP 9,728, 32/8 heads, r = 32) at 1 x 512 and 2 x 1,024 within 2 % and 10 %.

The shape comes from the model's config.json (the embedded model, a local
folder or the Hugging Face cache, never the network); when it cannot be read
offline, a built-in table of Qwen3 sizes answers. `available_memory` is a
module-level function so tests (and the config screen's snapshot) can fix it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tscu_tui.engine.config import Config

GIB = 1024**3
MIB = 1024**2
MARGIN_SHARE = 0.10  # allocator slack and fragmentation, as a share of the arrays
RUNTIME_BYTES = 512 * MIB
#: the activations autodiff keeps beyond the count in estimate_for_shape (norm inputs,
#: RoPE's rotated copies, reshapes): measured by bench/memory.py on four models, with
#: the MLX-op kernels and (fewer transient copies) with tscu's native ones
ACTIVATION_SLACK = 1.1
NATIVE_ACTIVATION_SLACK = 1.0
#: Hugging Face cache to look in; None = huggingface_hub's own (tests point it elsewhere)
HF_CACHE_DIR: str | None = None


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a decoder-only transformer's config.json."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool
    bits: int  # 16 = not quantized
    group_size: int = 64

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        quant = config.get("quantization") or config.get("quantization_config") or {}
        return cls(hidden_size=hidden, intermediate_size=int(config["intermediate_size"]),
                   num_layers=int(config["num_hidden_layers"]), num_heads=heads,
                   num_kv_heads=int(config.get("num_key_value_heads") or heads),
                   head_dim=int(config.get("head_dim") or hidden // heads),
                   vocab_size=int(config["vocab_size"]),
                   tied_embeddings=bool(config.get("tie_word_embeddings", False)),
                   bits=int(quant.get("bits", 16)), group_size=int(quant.get("group_size", 64)))

    def projections(self) -> dict[str, tuple[int, int]]:
        """LoRA-able projection name -> (in features, out features)."""
        h, i = self.hidden_size, self.intermediate_size
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def layer_params(self) -> int:
        return sum(n_in * n_out for n_in, n_out in self.projections().values())


#: Qwen3 dense models by size (billions) -> (hidden, intermediate, layers, heads, kv heads,
#: tied embeddings); all use head_dim 128 and a 151,936-token vocabulary.
QWEN3_TABLE: dict[str, tuple[int, int, int, int, int, bool]] = {
    "0.6": (1024, 3072, 28, 16, 8, True),
    "1.7": (2048, 6144, 28, 16, 8, True),
    "4": (2560, 9728, 36, 32, 8, True),
    "8": (4096, 12288, 36, 32, 8, False),
    "14": (5120, 17408, 40, 40, 8, False),
    "32": (5120, 25600, 64, 64, 8, False),
}
_QWEN3_NAME = re.compile(r"qwen3-(\d+(?:\.\d+)?)b", re.IGNORECASE)
_BITS = re.compile(r"(\d+)-?bit", re.IGNORECASE)


def table_shape(name: str) -> ModelShape | None:
    """The built-in shape of a Qwen3 model named like 'Qwen/Qwen3-4B-MLX-4bit'."""
    match = _QWEN3_NAME.search(name)
    if match is None or match.group(1) not in QWEN3_TABLE:
        return None
    hidden, inter, layers, heads, kv, tied = QWEN3_TABLE[match.group(1)]
    bits = _BITS.search(name)
    return ModelShape(hidden_size=hidden, intermediate_size=inter, num_layers=layers,
                      num_heads=heads, num_kv_heads=kv, head_dim=128, vocab_size=151_936,
                      tied_embeddings=tied, bits=int(bits.group(1)) if bits else 16)


def _config_file(name: str, revision: str) -> Path | None:
    """config.json of `name` if it is on this machine (embedded, local folder, HF cache)."""
    from tscu_tui.engine.config.assets import EMBEDDED_MODEL_DIR
    from tscu_tui.engine.errors import ModelError
    from tscu_tui.engine.models.gguf_cache import imported_model_dir, is_gguf_name
    from tscu_tui.engine.models.load import EMBEDDED_MODEL

    if name == EMBEDDED_MODEL:
        return EMBEDDED_MODEL_DIR / "config.json"
    if is_gguf_name(name):  # imported already: its cached folder (never imports here)
        try:
            folder = imported_model_dir(name, import_missing=False)
        except ModelError:
            return None
        return folder / "config.json" if folder is not None else None
    local = Path(name).expanduser()
    if local.is_dir():
        return local / "config.json"
    if not name or local.exists() or name.count("/") > 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json", revision=revision or None,
                                        cache_dir=HF_CACHE_DIR)
    except Exception:  # an invalid repo id or a damaged cache: fall back to the table
        return None
    return Path(cached) if isinstance(cached, str) else None


def model_shape(name: str, revision: str = "") -> tuple[ModelShape, str] | None:
    """(shape, where it came from) for model `name`, offline; None when unknown."""
    path = _config_file(name, revision)
    if path is not None and path.is_file():
        try:
            return ModelShape.from_config(json.loads(path.read_text(encoding="utf-8"))), \
                "from config.json"
        except (OSError, ValueError, KeyError, TypeError):
            pass
    shape = table_shape(name)
    return (shape, "from the built-in table") if shape else None


def available_memory() -> int:
    """Bytes this machine can give a new allocation now (tests replace this function)."""
    import psutil

    return int(psutil.virtual_memory().available)


def native_kernels() -> bool:
    """Whether tscu's native CPU kernels are loaded (native.py): they keep less."""
    try:
        from tscu_tui.engine.models import native

        return native.available()
    except Exception:
        return False


def runs_on_cpu() -> bool:
    """Whether MLX computes on the CPU here (so cpu_fastpath's float32 copies exist)."""
    try:
        from tscu_tui.engine.models.cpu_fastpath import on_cpu

        return on_cpu()
    except Exception:
        return True


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run keeps alive at its peak, by part, against what is free."""

    weights: int
    dequantized: int
    lora: int
    activations: int
    logits: int
    margin: int
    available: int
    source: str  # "from config.json" | "from the built-in table"
    batch_size: int
    block_size: int  # tokens per block: the prepared dataset's, else data.block_size
    grad_checkpoint: bool = False
    loss_chunk_tokens: int = 0  # 0 = the whole micro-batch's logits at once

    @property
    def arrays(self) -> int:
        """The MLX arrays alone (what `mx.get_peak_memory()` measures)."""
        return self.weights + self.dequantized + self.lora + self.activations + self.logits

    @property
    def total(self) -> int:
        return self.arrays + self.margin

    @property
    def fits(self) -> bool:
        return self.total <= self.available

    def describe(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        checkpointing = "with" if self.grad_checkpoint else "without"
        return (f"peak ~{gib(self.total)} for {self.batch_size} x {self.block_size} tokens "
                f"{checkpointing} gradient checkpointing vs {gib(self.available)} free, "
                f"{verdict} ({self.source})")

    def breakdown(self) -> str:
        parts = [("weights", self.weights), ("fp32 copies", self.dequantized),
                 ("LoRA+AdamW", self.lora), ("activations", self.activations),
                 ("logits", self.logits), ("margin", self.margin)]
        return ", ".join(f"{label} {gib(size)}" for label, size in parts if size)


def gib(size: int) -> str:
    return f"{size / GIB:.1f} GiB" if size >= GIB / 10 else f"{size / MIB:.0f} MiB"


def prepared_block_size(data_path: str) -> int | None:
    """Block size of the dataset prepared at `data_path`, if there is one."""
    try:
        meta = json.loads((Path(data_path) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    size = meta.get("block_size") if isinstance(meta, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 2 else None


def loss_chunk_tokens(shape: ModelShape, tokens: int, cpu: bool = True) -> int:
    """Tokens per loss chunk (checkpointing.set_loss_chunking's rule), 0 = no chunking."""
    from tscu_tui.engine.models.fused_loss import CHUNK_LOGITS_BYTES, HEAD_SLICE_BYTES

    v = shape.vocab_size
    big_head = cpu and shape.bits < 16 and shape.hidden_size * v * 4 > HEAD_SLICE_BYTES
    if tokens * v * 4 <= CHUNK_LOGITS_BYTES and not big_head:
        return 0
    return max(1, min(tokens, CHUNK_LOGITS_BYTES // (v * 4)))


def estimate_for_shape(shape: ModelShape, config: Config, *, cpu: bool, available: int,
                       source: str, block_size: int | None = None,
                       grad_checkpoint: bool | None = None,
                       native: bool | None = None) -> MemoryEstimate:
    """The estimate with train.grad_checkpoint resolved (None) or forced on/off; `native`:
    whether the CPU step runs tscu's native kernels (None: whether they are loaded)."""
    if native is None:
        native = cpu and native_kernels()
    if grad_checkpoint is None:
        setting = config.train.grad_checkpoint
        if setting in ("true", "false"):
            grad_checkpoint = setting == "true"
        else:  # auto: on only when the run would not fit without it
            without = estimate_for_shape(shape, config, cpu=cpu, available=available,
                                         source=source, block_size=block_size,
                                         grad_checkpoint=False, native=native)
            grad_checkpoint = not without.fits
    lora, train = config.lora, config.train
    layers = shape.num_layers
    adapted = layers if lora.num_layers in (-1, 0) else min(lora.num_layers, layers)
    quantized = shape.bits < 16
    float_bytes = 4 if cpu else 2  # prepare_for_cpu casts to float32; GPUs keep 16-bit
    h, v = shape.hidden_size, shape.vocab_size

    matrix_params = layers * shape.layer_params() + v * h * (1 if shape.tied_embeddings else 2)
    per_param = (shape.bits / 8 + 2 * float_bytes / shape.group_size) if quantized \
        else float_bytes
    norms = layers * (2 * h + 2 * shape.head_dim) + h
    weights = int(matrix_params * per_param) + norms * float_bytes

    block = block_size or config.data.block_size
    tokens = train.batch_size * block
    chunk = loss_chunk_tokens(shape, tokens, cpu)

    dequantized = 0
    if quantized and cpu:
        # The float32 copies live for one matmul each (recomputed for the backward
        # pass): at most the largest of a layer's matrices and the output projection's.
        largest = max(n_in * n_out for n_in, n_out in shape.projections().values())
        from tscu_tui.engine.models.fused_loss import HEAD_SLICE_BYTES

        head = 4 * v * h if not chunk else min(4 * v * h, HEAD_SLICE_BYTES)  # in slices
        dequantized = max(4 * 2 * largest, head)

    targets = {name: size for name, size in shape.projections().items()
               if name in lora.target_modules}
    lora_params = adapted * sum(lora.r * (n_in + n_out) for n_in, n_out in targets.values())
    lora_bytes = lora_params * 4 * 5  # weight, gradient, accumulated gradient, 2 moments

    q, kv = shape.num_heads * shape.head_dim, shape.num_kv_heads * shape.head_dim
    # A frozen matmul's backward needs only its weight; LoRA's needs x @ A (and the
    # dropped-out input when dropout makes one).
    lora_saved = sum(lora.r + (n_in if lora.dropout > 0 else 0)
                     for n_in, _ in targets.values())
    per_token = (5 * h + 4 * q + 4 * kv + 4 * shape.intermediate_size + lora_saved) \
        * (NATIVE_ACTIVATION_SLACK if native else ACTIVATION_SLACK)
    attention = train.batch_size * shape.num_heads * block ** 2
    per_layer = int((tokens * per_token + attention) * float_bytes)
    if grad_checkpoint:
        # Each layer's input, plus one layer recomputed and its gradients.
        activations = layers * tokens * h * float_bytes + 2 * per_layer
    else:
        activations = (adapted + 1) * per_layer  # saved ones plus the layer being computed
    # logits, float32 softmax, their gradient: for the batch, or one chunk at a time (the
    # native cross-entropy never makes the softmax)
    logits = (chunk or tokens) * v * (2 * float_bytes + (0 if native else 4))

    arrays = weights + dequantized + lora_bytes + activations + logits
    margin = int(arrays * MARGIN_SHARE) + RUNTIME_BYTES
    return MemoryEstimate(weights=weights, dequantized=dequantized, lora=lora_bytes,
                          activations=activations, logits=logits, margin=margin,
                          available=available, source=source, batch_size=train.batch_size,
                          block_size=block, grad_checkpoint=grad_checkpoint,
                          loss_chunk_tokens=chunk)


def estimate_memory(config: Config, *, cpu: bool | None = None,
                    available: int | None = None,
                    grad_checkpoint: bool | None = None) -> MemoryEstimate | None:
    """Peak memory of training `config`'s model at its batch and block size.

    None when the model's shape is unknown offline (not cached, not in the table).
    """
    found = model_shape(config.model.name, config.model.revision)
    if found is None:
        return None
    shape, source = found
    return estimate_for_shape(shape, config, cpu=runs_on_cpu() if cpu is None else cpu,
                              available=available_memory() if available is None else available,
                              source=source,
                              block_size=prepared_block_size(config.data.path),
                              grad_checkpoint=grad_checkpoint)


def memory_warning(config: Config) -> str | None:
    """One line to show before starting a run that will not fit in free memory, else None."""
    estimate = estimate_memory(config)
    if estimate is None or estimate.fits:
        return None
    return (f"This run needs about {gib(estimate.total)} at its peak for "
            f"{estimate.batch_size} x {estimate.block_size} tokens ({estimate.source}) but "
            f"only {gib(estimate.available)} is free; "
            + ("" if estimate.grad_checkpoint else "set train.grad_checkpoint = true, or ")
            + "lower train.batch_size, or data.block_size and prepare the data again, or "
            "close other programs.")
