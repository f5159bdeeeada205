"""Base + adapter merged into one GGUF (F16, Q8_0, or Q4_0 for a 4-bit base).

Each adapted weight is dequantized to float32, gets `scale * B A` added in the
GGUF's row order, and is quantized again to the chosen type with gguf-py's
reference quantizers (llama.cpp's own formulas). Requantizing changes the
weights: the file is close to, not equal to, MLX's base + adapter. Tensors the
adapter does not touch are copied as stored where the base GGUF already holds
them in the chosen type (and always for Q4_0, so the unadapted 4-bit blocks stay
bit for bit); otherwise they are converted too. Norms and biases stay F32.

The base is the GGUF the run trained on (checked by SHA-256; its metadata,
tokenizer and chat template are copied), or an mlx-lm folder of a llama, qwen2
or qwen3 model (its metadata written by gguf_meta.py). Tensors are computed and
written one at a time, so memory holds one weight, not the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tscu_tui.engine.hub import ExportError
from tscu_tui.engine.hub.gguf_base import (
    LoraPair,
    base_gguf,
    gguf_tensor_name,
    lora_pairs,
    permuted_heads,
    supported_architecture,
    to_gguf_order,
)
from tscu_tui.engine.hub.run import RunFolder

MODEL_FILE = "model.gguf"
QUANTS = ("f16", "q8_0", "q4_0")
#: GGUF keys the merged file must not inherit from its base
_NOT_COPIED = ("general.architecture", "general.file_type", "general.quantization_version",
               "general.alignment")
_FOUR_BIT = ("Q4_0", "Q4_1")


@dataclass(frozen=True)
class Source:
    """One tensor of the base, in GGUF naming and row order, not yet read."""

    name: str
    shape: tuple[int, ...]  # numpy order: (rows, cols)
    stored: str | None  # its GGML type in a base GGUF (None: an mlx-lm folder)
    floats: Callable[[], Any]  # float32 values, GGUF row order
    raw: Callable[[], Any] | None = None  # the stored bytes, for copying unchanged


@dataclass(frozen=True)
class MergedExport:
    base: str
    quant: str
    requantized: int  # adapted tensors rounded to `quant`
    copied: int  # tensors copied as stored


def _ggml(name: str) -> Any:
    import gguf

    return gguf.GGMLQuantizationType[name]


def _encode(values: Any, qtype: str) -> tuple[Any, str]:
    """float32 (rows, cols) -> (array to write, its GGML type); F16 for rows that do not
    split into 32-value blocks, as llama.cpp's converter falls back."""
    import gguf
    import numpy as np

    if values.ndim < 2:
        return np.ascontiguousarray(values, dtype=np.float32), "F32"
    if qtype == "F16" or values.shape[-1] % 32:
        return values.astype(np.float16), "F16"
    return gguf.quants.quantize(np.ascontiguousarray(values, dtype=np.float32),
                                _ggml(qtype)), qtype


def _gguf_sources(path: Path) -> tuple[Any, list[Source], str]:
    import gguf

    reader = gguf.GGUFReader(path)
    sources = []
    for tensor in reader.tensors:
        kind = tensor.tensor_type.name

        def floats(t: Any = tensor) -> Any:
            return gguf.quants.dequantize(t.data, t.tensor_type).astype("float32")

        sources.append(Source(tensor.name, tuple(int(d) for d in reversed(tensor.shape)),
                              kind, floats, raw=lambda t=tensor: t.data))
    arch = str(reader.fields["general.architecture"].contents())
    return reader, sources, arch


def _mlx_sources(folder: Path, config: dict[str, Any], permuted: dict[str, int]
                 ) -> tuple[list[Source], dict[str, int]]:
    """Sources of an mlx-lm folder and the bits of each quantized module."""
    from tscu_tui.engine.models.runtime import mx

    weights: dict[str, Any] = {}
    for file in sorted(folder.glob("*.safetensors")):
        weights.update(mx.load(str(file)))
    quant = config.get("quantization") or {}
    bits: dict[str, int] = {}
    sources = []
    for key in sorted(weights):
        module, _, part = key.rpartition(".")
        if part not in ("weight", "bias") or "rotary_emb" in module:
            continue
        name = gguf_tensor_name(key)
        spec = quant.get(module, quant) if quant else None
        quantized = f"{module}.scales" in weights and isinstance(spec, dict)
        if quantized and part == "weight":
            bits[module] = int(spec.get("bits", quant.get("bits", 4)))

        def floats(key: str = key, module: str = module, name: str = name,
                   spec: Any = spec, quantized: bool = quantized) -> Any:
            import numpy as np

            value = weights[key]
            if quantized and key.endswith(".weight"):
                value = mx.dequantize(value, weights[f"{module}.scales"],
                                      weights.get(f"{module}.biases"),
                                      group_size=int(spec.get("group_size", 64)),
                                      bits=int(spec.get("bits", 4)),
                                      mode=str(spec.get("mode", "affine")))
            return to_gguf_order(name, np.array(value.astype(mx.float32)), permuted)

        shape = tuple(weights[key].shape)
        if quantized and part == "weight":
            shape = (shape[0], weights[f"{module}.scales"].shape[-1]
                     * int(spec.get("group_size", 64)))
        sources.append(Source(name, shape, None, floats))
    return sorted(sources, key=_gguf_order), bits


def _gguf_order(source: Source) -> tuple[int, int, str]:
    match = re.match(r"^blk\.(\d+)\.", source.name)
    if match:
        return 1, int(match.group(1)), source.name
    return (0 if source.name.startswith("token_embd") else 2), 0, source.name


def write_merged_gguf(run: RunFolder, folder: Path, quant: str = "q8_0",
                      base_override: str | None = None,
                      progress: Callable[[str], None] | None = None) -> MergedExport:
    """Write MODEL_FILE (and a Modelfile) into `folder`, an empty staging folder."""
    import gguf

    from tscu_tui.engine.hub.gguf_lora import MODELFILE, modelfile
    from tscu_tui.engine.models.gguf_cache import is_gguf_name
    from tscu_tui.engine.models.load import resolve_model_path

    if quant not in QUANTS:
        raise ExportError(f"--quant '{quant}' is not one of {', '.join(QUANTS)}")
    qtype = quant.upper()
    pairs, _, _ = lora_pairs(run)
    by_name = {pair.gguf_weight: pair for pair in pairs}
    if is_gguf_name(run.base_model):
        path = base_gguf(run, base_override)
        reader, sources, arch = _gguf_sources(path)
        supported_architecture(arch, str(path))
        template = reader.fields.get("tokenizer.chat_template")
        meta = {"tokenizer.chat_template": template.contents() if template else ""}
        writer = gguf.GGUFWriter(str(folder / MODEL_FILE), arch)
        _copy_metadata(reader, writer)
        four_bit = all(s.stored in _FOUR_BIT for s in sources if s.name in by_name)
        base_name, permuted = str(path), _gguf_permuted(reader, arch)
    else:
        base_dir = resolve_model_path(base_override or run.base_model)
        config = _read_config(base_dir)
        arch = supported_architecture(str(config.get("model_type")), str(base_dir))
        heads = int(config.get("num_attention_heads", 0))
        permuted = permuted_heads(arch, heads, int(config.get("num_key_value_heads", heads)))
        sources, bits = _mlx_sources(base_dir, config, permuted)
        four_bit = bool(bits) and all(bits.get(p.hf_module) == 4 for p in pairs)
        writer = gguf.GGUFWriter(str(folder / MODEL_FILE), arch)
        meta = _write_mlx_metadata(writer, base_dir, config, sources)
        base_name = str(base_dir)
    if qtype == "Q4_0" and not four_bit:
        raise ExportError(f"--quant q4_0 needs a 4-bit base (Q4_0/Q4_1 or MLX 4-bit) for "
                          f"every adapted weight; '{run.base_model}' is not: use q8_0 or f16")
    missing = sorted(set(by_name) - {s.name for s in sources})
    if missing:
        raise ExportError(f"{base_name}: has no tensor {missing[0]} for the adapter to "
                          "apply to")
    writer.add_file_type({"F16": gguf.LlamaFileType.MOSTLY_F16,
                          "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                          "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[qtype])
    if qtype != "F16":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    plans = [_plan(source, by_name.get(source.name), qtype, permuted) for source in sources]
    for name, shape, kind, nbytes, _ in plans:
        writer.add_tensor_info(name, shape, _float32(), nbytes, raw_dtype=_ggml(kind))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for done, (*_, produce) in enumerate(plans, 1):
        writer.write_tensor_data(produce())
        if progress is not None and (done % 50 == 0 or done == len(plans)):
            progress(f"wrote {done}/{len(plans)} tensors")
    writer.close()
    from_line = f"./{MODEL_FILE}"
    (folder / MODELFILE).write_text(modelfile(from_line, meta, None))
    copied = sum(1 for plan, s in zip(plans, sources, strict=True)
                 if s.name not in by_name and s.stored == plan[2])
    return MergedExport(base=base_name, quant=quant, requantized=len(by_name), copied=copied)


def _float32() -> Any:
    import numpy as np

    return np.dtype(np.float32)


def _plan(source: Source, pair: LoraPair | None, qtype: str, permuted: dict[str, int]
          ) -> tuple[str, tuple[int, ...], str, int, Callable[[], Any]]:
    """(name, shape, GGML type, bytes, producer) for one output tensor."""
    keep = source.raw is not None and pair is None and (
        source.stored == qtype or len(source.shape) < 2 or qtype == "Q4_0")
    if keep:
        kind = str(source.stored)
        return (source.name, source.shape, kind, _nbytes(source.shape, kind),
                lambda: source.raw())  # type: ignore[misc]
    kind = "F32" if len(source.shape) < 2 else \
        ("F16" if qtype == "F16" or source.shape[-1] % 32 else qtype)

    def produce() -> Any:
        values = source.floats()
        if pair is not None:
            values = values + to_gguf_order(source.name, pair.delta(), permuted)
        data, got = _encode(values, qtype)
        assert got == kind, (source.name, got, kind)
        return data

    return source.name, source.shape, kind, _nbytes(source.shape, kind), produce


def _nbytes(shape: tuple[int, ...], kind: str) -> int:
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[_ggml(kind)]
    count = 1
    for dim in shape:
        count *= dim
    return count // block * size


def _gguf_permuted(reader: Any, arch: str) -> dict[str, int]:
    heads = int(reader.fields[f"{arch}.attention.head_count"].contents())
    kv = reader.fields.get(f"{arch}.attention.head_count_kv")
    return permuted_heads(arch, heads, int(kv.contents()) if kv is not None else heads)


def _copy_metadata(reader: Any, writer: Any) -> None:
    """Every key of the base GGUF (tokenizer, chat template, hyperparameters) except the
    ones that describe its own tensors (gguf-py's gguf_new_metadata.py does the same)."""
    import gguf

    for field in reader.fields.values():
        if field.name in _NOT_COPIED or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)


def _read_config(folder: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{folder / 'config.json'}: cannot read it ({exc})") from None


def _write_mlx_metadata(writer: Any, folder: Path, config: dict[str, Any],
                        sources: list[Source]) -> dict[str, Any]:
    """Hyperparameters and tokenizer; llama 3's rope_freqs joins `sources`."""
    from tscu_tui.engine.hub.gguf_meta import write_hparams, write_tokenizer

    writer.add_name(str(config.get("_name_or_path") or folder.name))
    rope_freqs = write_hparams(writer, config, str(folder / "config.json"))
    if rope_freqs is not None:
        sources.append(Source("rope_freqs.weight", rope_freqs.shape, None,
                              lambda: rope_freqs))
    write_tokenizer(writer, folder, int(config["vocab_size"]))
    template = writer.kv_data[0].get("tokenizer.chat_template")
    return {"tokenizer.chat_template": template.value if template is not None else ""}
