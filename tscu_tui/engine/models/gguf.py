"""Import a GGUF file (llama.cpp, Ollama, LM Studio) as an mlx-lm model folder.

The tensors are kept exactly as stored: MLX reads Q4_0, Q4_1 and Q8_0 blocks
straight into its affine quantized layout (`weight`, `scales`, `biases`, group
size 32), so nothing is requantized; F32/F16/BF16 tensors stay float. What the
import does on top:

- names: llama.cpp's `blk.N.attn_q` -> Hugging Face's `model.layers.N.self_attn.q_proj`;
- llama-family `attn_q`/`attn_k` rows: llama.cpp's converter permutes them per head
  for its RoPE kernel; `unpermute_rows` restores Hugging Face's order, for which
  mlx-lm's standard RoPE is right (rows permute alike on quantized weights, scales
  and biases: quantization groups run along columns);
- config.json from the file's metadata, with per-layer quantization entries (the
  token embedding is often 8-bit while the blocks are 4-bit);
- the tokenizer and chat template through transformers' maintained GGUF converter,
  fed from the `gguf` reader so that no torch is needed (gguf_tokenizer.py).

Bad input (not a GGUF file, truncated, an architecture or tensor type MLX cannot
keep as stored) raises ModelError with one line naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tscu_tui import __version__
from tscu_tui.engine.errors import ModelError, first_line
from tscu_tui.engine.fileio import atomic_directory, atomic_write_json, read_json_object

#: GGUF `general.architecture` -> mlx-lm `model_type`
ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
#: Tensor types MLX keeps as stored (block quantized ones become affine 4/8-bit).
KEPT_TYPES = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0"}
GROUP_SIZE = 32  # every kept GGUF block type quantizes 32 values per block
IMPORT_FILE = "tscu_import.json"
_SUPPORTED_HINT = ("files of Q4_0, Q4_1, Q8_0, F16, BF16 or F32 tensors import as stored; "
                   "for other quantizations convert the original safetensors with "
                   "`mlx_lm.convert --hf-path REPO -q`")

_BLOCK = re.compile(r"^blk\.(\d+)\.(\w+)\.(weight|bias)$")
_BLOCK_NAMES = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm",
              "output": "lm_head"}

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class GgufHeader:
    """What the file says about itself, read without loading its tensors."""

    path: Path
    architecture: str
    metadata: dict[str, Any]  # every key except the tokenizer's long arrays
    tensor_types: dict[str, str]  # tensor name -> GGML type name


def read_header(path: Path) -> GgufHeader:
    """Parse and check a GGUF file's header; ModelError names the file and the reason."""
    if not path.is_file():
        raise ModelError(f"{path}: no such GGUF file")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ModelError(f"{path}: not a GGUF file (it does not start with the GGUF magic)")
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:  # the reader fails on truncated or damaged files
        raise ModelError(f"{path}: truncated or damaged GGUF file ({first_line(exc)})") from None
    size = path.stat().st_size
    end = max((t.data_offset + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise ModelError(f"{path}: truncated GGUF file: its tensors need {end:,} bytes, the "
                         f"file has {size:,} (an incomplete download?)")
    metadata = {key: field.contents() for key, field in reader.fields.items()
                if not key.startswith(("tokenizer.ggml.", "GGUF."))}
    arch = str(metadata.get("general.architecture", ""))
    if arch not in ARCHITECTURES:
        raise ModelError(f"{path}: architecture '{arch or 'unknown'}' is not supported "
                         f"(supported: {', '.join(ARCHITECTURES)})")
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    for name, kind in types.items():
        if kind not in KEPT_TYPES:
            raise ModelError(f"{path}: tensor {name} is {kind}, which MLX cannot keep as "
                             f"stored; {_SUPPORTED_HINT}")
    return GgufHeader(path=path, architecture=arch, metadata=metadata, tensor_types=types)


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- tensors

def hf_name(gguf_name: str) -> str | None:
    """llama.cpp's tensor name -> Hugging Face's (None: a tensor mlx-lm recomputes)."""
    if gguf_name == "rope_freqs.weight":
        return None
    match = _BLOCK.match(gguf_name)
    if match is not None and match.group(2) in _BLOCK_NAMES:
        layer, part, kind = match.groups()
        return f"model.layers.{layer}.{_BLOCK_NAMES[part]}.{kind}"
    stem, _, kind = gguf_name.rpartition(".")
    if stem in _TOP_NAMES and kind in ("weight", "bias"):
        return f"{_TOP_NAMES[stem]}.{kind}"
    raise ModelError(f"tensor {gguf_name} has no place in the model")


def unpermute_rows(array: Any, n_head: int) -> Any:
    """Undo llama.cpp's per-head row permutation of `attn_q`/`attn_k` (HF order back).

    llama.cpp stores `w.reshape(n_head, 2, rows // n_head // 2, ...).swapaxes(1, 2)`;
    this is its inverse. Works on weights, scales, biases and bias vectors alike."""
    rows = array.shape[0]
    return (array.reshape(n_head, rows // n_head // 2, 2, *array.shape[1:])
            .swapaxes(1, 2).reshape(array.shape))


def _bf16_tensors(header: GgufHeader) -> dict[str, Any]:
    """BF16 tensors read bit-exactly (MLX's GGUF reader would narrow them to float16)."""
    names = [n for n, kind in header.tensor_types.items() if kind == "BF16"]
    if not names:
        return {}
    import gguf
    import numpy as np

    from tscu_tui.engine.models.runtime import mx

    reader = gguf.GGUFReader(header.path)
    out = {}
    for tensor in reader.tensors:
        if tensor.name in names:
            bits = np.asarray(tensor.data).view(np.uint16).astype(np.uint32) << 16
            shape = [int(d) for d in reversed(tensor.shape)]
            out[tensor.name] = mx.array(bits.view(np.float32).reshape(shape)).astype(
                mx.bfloat16)
    return out


def convert_tensors(header: GgufHeader, progress: Progress | None = None
                    ) -> tuple[dict[str, Any], Any]:
    """The file's tensors under Hugging Face names, unpermuted where needed, and
    llama 3's `rope_freqs` factors (None when the file has none)."""
    from tscu_tui.engine.models.runtime import mx

    raw = mx.load(str(header.path))
    raw.update(_bf16_tensors(header))
    meta, arch = header.metadata, header.architecture
    heads = int(meta[f"{arch}.attention.head_count"])
    kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads))
    permuted = {"attn_q": heads, "attn_k": kv_heads} if arch == "llama" else {}
    weights: dict[str, Any] = {}
    names = sorted(raw)
    for done, name in enumerate(names, 1):
        stem, _, part = name.rpartition(".")  # part: weight, scales, biases or bias
        base = f"{stem}.weight" if part in ("scales", "biases") else name
        target = hf_name(base)
        if target is not None:
            array = raw[name]
            block_part = stem.rsplit(".", 1)[-1]
            if block_part in permuted:
                array = unpermute_rows(array, permuted[block_part])
            weights[target.rsplit(".", 1)[0] + "." + part] = array
        if progress is not None and (done % 64 == 0 or done == len(names)):
            progress("tensors", done, len(names))
    return weights, raw.get("rope_freqs.weight")


def quantization_config(weights: dict[str, Any]) -> dict[str, Any]:
    """mlx-lm's `quantization`: the most common bits as default, other modules by path
    (bits differ: their own entry; not quantized: False)."""
    bits = {}
    for key, scales in weights.items():
        if key.endswith(".scales"):
            module = key.removesuffix(".scales")
            bits[module] = weights[f"{module}.weight"].shape[-1] // scales.shape[-1]
    if not bits:
        return {}
    default = Counter(bits.values()).most_common(1)[0][0]
    config: dict[str, Any] = {"group_size": GROUP_SIZE, "bits": default, "mode": "affine"}
    for module, b in sorted(bits.items()):
        if b != default:
            config[module] = {"group_size": GROUP_SIZE, "bits": b, "mode": "affine"}
    for key in sorted(weights):
        module = key.removesuffix(".weight")
        if key.endswith(".weight") and module not in bits and weights[key].ndim == 2:
            config[module] = False  # a float matrix (embedding or linear) stays float
    return config


# ---------------------------------------------------------------------------- config

def model_config(header: GgufHeader, weights: dict[str, Any], rope_freqs: Any = None
                 ) -> dict[str, Any]:
    """config.json for mlx-lm (and transformers) from the GGUF metadata."""
    meta, arch = header.metadata, header.architecture

    def get(key: str, default: Any = None) -> Any:
        value = meta.get(f"{arch}.{key}", default)
        if isinstance(value, list):
            raise ModelError(f"{header.path}: {arch}.{key} varies by layer, which mlx-lm's "
                             f"{ARCHITECTURES[arch]} does not support")
        return value

    def required(key: str) -> Any:
        value = get(key)
        if value is None:
            raise ModelError(f"{header.path}: metadata key {arch}.{key} is missing")
        return value

    heads = int(required("attention.head_count"))
    hidden = int(required("embedding_length"))
    vocab = weights["model.embed_tokens.weight"].shape[0]
    config: dict[str, Any] = {
        "model_type": ARCHITECTURES[arch],
        "architectures": [{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                           "qwen3": "Qwen3ForCausalLM"}[arch]],
        "hidden_size": hidden,
        "num_hidden_layers": int(required("block_count")),
        "intermediate_size": int(required("feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "head_dim": int(get("attention.key_length", hidden // heads)),
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "max_position_embeddings": int(get("context_length", 4096)),
        "vocab_size": int(vocab),
        "tie_word_embeddings": "lm_head.weight" not in weights,
        "hidden_act": "silu",
        "rope_traditional": False,
    }
    if arch == "llama":
        config["attention_bias"] = "model.layers.0.self_attn.q_proj.bias" in weights
        config["mlp_bias"] = "model.layers.0.mlp.gate_proj.bias" in weights
    for key, name in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id")):
        value = meta.get(f"tokenizer.ggml.{name}")
        if value is not None:
            config[key] = int(value)
    scaling = rope_scaling(header, rope_freqs)
    if scaling is not None:
        config["rope_scaling"] = scaling
    quantization = quantization_config(weights)
    if quantization:
        config["quantization"] = quantization
        config["quantization_config"] = quantization
    return config


def rope_scaling(header: GgufHeader, rope_freqs: Any = None) -> dict[str, Any] | None:
    """Rope scaling from the metadata (linear) or from llama 3's `rope_freqs` factors."""
    meta, arch = header.metadata, header.architecture
    kind = meta.get(f"{arch}.rope.scaling.type")
    if kind in (None, "none") and rope_freqs is None:
        return None
    if kind == "linear":
        return {"type": "linear", "factor": float(meta[f"{arch}.rope.scaling.factor"])}
    if rope_freqs is not None:
        factors = [float(x) for x in rope_freqs.tolist()]
        dims = int(meta.get(f"{arch}.rope.dimension_count", 2 * len(factors)))
        return llama3_rope_scaling(factors, float(meta.get(f"{arch}.rope.freq_base", 1e4)),
                                   dims)
    raise ModelError(f"{header.path}: rope scaling '{kind}' is not supported (linear and "
                     "llama 3's are)")


def llama3_rope_scaling(factors: list[float], base: float, dims: int) -> dict[str, Any]:
    """Recover llama 3 rope-scaling parameters from llama.cpp's per-frequency factors.

    llama.cpp stores, per frequency, 1 (short wavelengths), `factor` (long ones) or
    `1 / ((1 - s) / factor + s)` with `s = (L / wavelen - lf) / (hf - lf)` between.
    Only `factor`, `L / (hf - lf)` and `lf / (hf - lf)` are determined by the
    factors; choosing `lf = 1` gives a parameter set mlx-lm turns back into exactly
    the same factors."""
    factor = max(factors)
    wavelens = [2 * math.pi * base ** (2 * i / dims) for i in range(len(factors))]
    middle = [(w, f) for w, f in zip(wavelens, factors, strict=True)
              if 1.0 + 1e-6 < f < factor - 1e-6]
    if factor <= 1.0 + 1e-6:
        return {"type": "linear", "factor": 1.0}
    if len(middle) < 2:
        raise ModelError("rope_freqs: too few interpolated frequencies to recover llama 3 "
                         "rope scaling")
    # s = a / wavelen - b, from 1/f = (1 - s)/factor + s  =>  s = (1/f - 1/factor) / (1 - 1/factor)
    points = [(1.0 / w, (1.0 / f - 1.0 / factor) / (1.0 - 1.0 / factor)) for w, f in middle]
    (x0, y0), (x1, y1) = points[0], points[-1]
    a = (y1 - y0) / (x1 - x0)
    b = a * x0 - y0
    low, high = 1.0, 1.0 + 1.0 / b  # lf = 1  =>  hf - lf = 1 / b
    original = a * (high - low)
    return {"type": "llama3", "rope_type": "llama3", "factor": factor,
            "low_freq_factor": low, "high_freq_factor": high,
            "original_max_position_embeddings": round(original)}


# ---------------------------------------------------------------------------- import

def write_tokenizer(header: GgufHeader, folder: Path) -> None:
    """tokenizer.json, tokenizer_config.json and the chat template (the vocabulary and
    merges come from the file's metadata), without torch: see gguf_tokenizer."""
    from tscu_tui.engine.models.gguf_tokenizer import write_tokenizer_files

    write_tokenizer_files(header.path, folder)


def import_gguf(path: Path, output_dir: Path, *, sha256: str | None = None,
                progress: Progress | None = None) -> dict[str, Any]:
    """Write an mlx-lm model folder for GGUF `path` at `output_dir`, atomically.

    Returns what `tscu_import.json` in the folder records. Nothing is left at
    `output_dir` when anything fails."""
    from tscu_tui.engine.models.runtime import mx

    def step(phase: str, done: int = 0, total: int = 0) -> None:
        if progress is not None:
            progress(phase, done, total)

    step("header")
    header = read_header(path)
    try:
        weights, rope_freqs = convert_tensors(header, progress)
        config = model_config(header, weights, rope_freqs)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    except Exception as exc:
        raise ModelError(f"{path}: cannot read its tensors ({first_line(exc)})") from None
    record = {
        "source": {"file": path.name, "path": str(path.resolve()),
                   "sha256": sha256 or file_sha256(path), "bytes": path.stat().st_size},
        "architecture": header.architecture,
        "tensor_types": dict(Counter(header.tensor_types.values())),
        "general": {k.removeprefix("general."): v for k, v in header.metadata.items()
                    if k.startswith("general.") and isinstance(v, str | int | float)},
        "tscu_version": __version__,
    }
    with atomic_directory(output_dir) as tmp:
        step("tokenizer")
        write_tokenizer(header, tmp)
        step("writing")
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        atomic_write_json(tmp / "config.json", config)
        atomic_write_json(tmp / IMPORT_FILE, record)
    step("done")
    return record


def read_import_record(model_dir: Path) -> dict[str, Any] | None:
    """`tscu_import.json` of an imported model folder, or None for any other folder."""
    return read_json_object(model_dir / IMPORT_FILE, ModelError)
