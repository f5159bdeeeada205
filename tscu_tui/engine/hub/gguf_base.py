"""What both GGUF exports share: the run's base GGUF (checked), tensor names, the
q/k row order, and the adapter's matrices as llama.cpp lays them out.

llama.cpp's converter stores llama-family `attn_q`/`attn_k` rows permuted per head
for its RoPE kernel (`LlamaModel.permute` in convert_hf_to_gguf.py); the import
undoes it (`models.gguf.unpermute_rows`), so a delta computed in Hugging Face order
must be permuted again before it meets a GGUF weight. For a LoRA pair only
`lora_b`'s rows (the output rows) move; `lora_a` acts on the input and stays.

Shapes, numpy order (rows first): mlx-lm keeps `lora_a` (in, r) and `lora_b`
(r, out) and computes `y = W x + scale * (x @ lora_a) @ lora_b`. llama.cpp's
adapter loader wants `lora_a` with ggml ne = [in, r] and `lora_b` ne = [r, out],
i.e. numpy (r, in) and (out, r): both transposed, as for PEFT. It scales by
`adapter.lora.alpha / r` (src/llama-adapter.h, `get_scale`), so alpha = scale * r.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tscu_tui.engine.errors import ModelError
from tscu_tui.engine.hub import ExportError
from tscu_tui.engine.hub.run import RunFolder

# The import's llama.cpp -> Hugging Face name tables, read backwards.
from tscu_tui.engine.models.gguf import _BLOCK_NAMES, _TOP_NAMES, ARCHITECTURES

_TO_GGUF_BLOCK = {hf: gguf for gguf, hf in _BLOCK_NAMES.items()}
_TO_GGUF_TOP = {hf: gguf for gguf, hf in _TOP_NAMES.items()}
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[ab])$")


def gguf_tensor_name(hf_name: str) -> str:
    """`model.layers.3.self_attn.q_proj.weight` -> `blk.3.attn_q.weight`."""
    module, _, kind = hf_name.rpartition(".")
    if module in _TO_GGUF_TOP:
        return f"{_TO_GGUF_TOP[module]}.{kind}"
    match = _LAYER.match(module)
    if match is None or match.group(2) not in _TO_GGUF_BLOCK:
        raise ExportError(f"tensor {hf_name} has no GGUF name (llama.cpp's llama, qwen2 and "
                          "qwen3 layouts)")
    return f"blk.{match.group(1)}.{_TO_GGUF_BLOCK[match.group(2)]}.{kind}"


def permute_rows(array: Any, n_head: int) -> Any:
    """llama.cpp's per-head row order for `attn_q`/`attn_k` (`LlamaModel.permute`);
    `models.gguf.unpermute_rows` is its inverse."""
    rows = array.shape[0]
    return (array.reshape(n_head, 2, rows // n_head // 2, *array.shape[1:])
            .swapaxes(1, 2).reshape(array.shape))


def permuted_heads(arch: str, heads: int, kv_heads: int) -> dict[str, int]:
    """GGUF block tensor stem -> head count its rows are permuted by (llama only)."""
    return {"attn_q": heads, "attn_k": kv_heads} if arch == "llama" else {}


def to_gguf_order(gguf_name: str, rows: Any, permuted: dict[str, int]) -> Any:
    """`rows` (a weight, or lora_b in (out, r) form) in the row order the GGUF stores."""
    stem = gguf_name.split(".")[2] if gguf_name.startswith("blk.") else ""
    return permute_rows(rows, permuted[stem]) if stem in permuted else rows


# ---------------------------------------------------------------- the adapter

@dataclass(frozen=True)
class LoraPair:
    """One adapted linear layer: llama.cpp's `lora_a` (r, in) and `lora_b` (out, r),
    `lora_b` still in Hugging Face row order, and the factor mlx-lm scales it by."""

    hf_module: str  # model.layers.N.self_attn.q_proj
    a: Any  # numpy float32 (r, in)
    b: Any  # numpy float32 (out, r)
    scale: float

    @property
    def gguf_weight(self) -> str:
        return gguf_tensor_name(f"{self.hf_module}.weight")

    def delta(self) -> Any:
        """scale * B A: the (out, in) change to the weight, Hugging Face row order."""
        return (self.scale * (self.b @ self.a)).astype("float32")


def lora_pairs(run: RunFolder) -> tuple[list[LoraPair], int, float]:
    """The run's adapter as (pairs, rank, scale); ExportError names what is wrong."""
    import numpy as np

    from tscu_tui.engine.models.runtime import mx

    params = run.adapter_config["lora_parameters"]
    try:
        rank, scale = int(params["rank"]), float(params["scale"])
    except (KeyError, TypeError, ValueError):
        raise ExportError(f"{run.adapter_dir / 'adapter_config.json'}: lora_parameters needs "
                          "a rank and a scale") from None
    try:
        weights = mx.load(str(run.adapter_weights))
    except Exception as exc:
        raise ExportError(f"cannot read {run.adapter_weights}: {exc}") from None
    halves: dict[str, dict[str, Any]] = {}
    for key, value in weights.items():
        match = _LORA_KEY.match(key)
        if match is None:
            raise ExportError(f"{run.adapter_weights}: tensor '{key}' is not a LoRA matrix "
                              "(lora_a/lora_b); only plain LoRA adapters export to GGUF")
        halves.setdefault(match["module"], {})[match["which"]] = \
            np.array(value.astype(mx.float32)).T
    pairs = []
    for module, pair in sorted(halves.items()):
        if set(pair) != {"a", "b"}:
            raise ExportError(f"{run.adapter_weights}: {module} has lora_"
                              f"{''.join(pair)} without its other half")
        pairs.append(LoraPair(module, np.ascontiguousarray(pair["a"]),
                              np.ascontiguousarray(pair["b"]), scale))
    if not pairs:
        raise ExportError(f"{run.adapter_weights} holds no LoRA tensors")
    return pairs, rank, scale


# ---------------------------------------------------------------- the base GGUF

def recorded_sha256(run: RunFolder) -> str | None:
    """The SHA-256 of the base GGUF as the run recorded it (summary.json)."""
    source = (run.summary.get("base_model_source") or {}).get("source") or {}
    digest = source.get("sha256")
    return str(digest) if digest else None


def base_gguf(run: RunFolder, override: str | None = None) -> Path:
    """The GGUF file the run trained on, checked byte for byte against the SHA-256 the
    run recorded. `override` names it where it has moved."""
    from tscu_tui.engine.models.gguf import file_sha256
    from tscu_tui.engine.models.gguf_cache import gguf_file, is_gguf_name

    name = run.base_model
    if not is_gguf_name(name):
        raise ExportError(f"the run's base '{name}' was not imported from a GGUF file, so "
                          "there is no base GGUF for a LoRA GGUF to apply to; export the "
                          "merged model instead: --format gguf")
    expected = recorded_sha256(run)
    if expected is None:
        raise ExportError(f"{run.path}: the run recorded no SHA-256 of its base GGUF (no "
                          "base_model_source in summary.json; did it finish?), so the "
                          "file cannot be checked to be the one it trained on")
    recorded = (run.summary.get("base_model_source") or {}).get("source", {}).get("path")
    candidates = [override] if override else [name, *([recorded] if recorded else [])]
    path = None
    for candidate in candidates:
        try:
            path = gguf_file(str(candidate))
            break
        except ModelError:
            continue
    if path is None:
        raise ExportError(f"the base GGUF '{override or name}' the run trained on is not "
                          "there (moved or deleted); name its new place with --base-model "
                          "PATH.gguf")
    actual = file_sha256(path)
    if actual != expected:
        raise ExportError(f"{path}: SHA-256 {actual[:16]}... is not the {expected[:16]}... "
                          "the run trained on (the file changed since training); export "
                          "against the original file with --base-model PATH.gguf")
    return path


def supported_architecture(arch: str, where: str) -> str:
    if arch not in ARCHITECTURES:
        raise ExportError(f"{where}: architecture '{arch}' cannot be exported as GGUF "
                          f"(supported: {', '.join(ARCHITECTURES)})")
    return arch
