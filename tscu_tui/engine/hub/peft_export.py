"""mlx-lm LoRA adapter -> PEFT adapter for the matching full-precision base.

mlx-lm's `LoRALinear` computes `y = W x + scale * (x @ lora_a) @ lora_b` with
`lora_a` of shape (in, r) and `lora_b` of shape (r, out). PEFT's LoRA layer
computes `y = W x + (lora_alpha / r) * lora_B(lora_A(x))` with `lora_A.weight`
(r, in) and `lora_B.weight` (out, r). So the export transposes both matrices,
renames the keys and sets `lora_alpha = scale * r` (`use_rslora` stays false,
PEFT's default, which scales by alpha / r). Nothing is dequantized or rescaled.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tscu_tui.engine.hub import ExportError
from tscu_tui.engine.hub.run import RunFolder
from tscu_tui.engine.models.gguf_cache import is_gguf_name

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"

#: MLX conversions -> the full-precision checkpoint they were made from, where the
#: rule below would get it wrong or the owner differs.
KNOWN_BASES: dict[str, str] = {
    "Qwen/Qwen3-0.6B-MLX-4bit": "Qwen/Qwen3-0.6B",
    "Qwen/Qwen3-1.7B-MLX-4bit": "Qwen/Qwen3-1.7B",
    "Qwen/Qwen3-4B-MLX-4bit": "Qwen/Qwen3-4B",
    "Qwen/Qwen3-8B-MLX-4bit": "Qwen/Qwen3-8B",
    "Qwen/Qwen3-14B-MLX-4bit": "Qwen/Qwen3-14B",
    "Qwen/Qwen3-32B-MLX-4bit": "Qwen/Qwen3-32B",
    "mlx-community/Qwen3-4B-4bit": "Qwen/Qwen3-4B",
    "mlx-community/Qwen3-4B-Instruct-2507-4bit": "Qwen/Qwen3-4B-Instruct-2507",
    "mlx-community/Llama-3.2-1B-Instruct-4bit": "meta-llama/Llama-3.2-1B-Instruct",
    "mlx-community/Llama-3.2-3B-Instruct-4bit": "meta-llama/Llama-3.2-3B-Instruct",
}

#: mlx-community names -> the organisation that publishes the original, by prefix
_ORIGINAL_OWNERS: dict[str, str] = {
    "Qwen": "Qwen", "Llama": "meta-llama", "Meta-Llama": "meta-llama",
    "Mistral": "mistralai", "gemma": "google", "Phi": "microsoft", "SmolLM": "HuggingFaceTB",
}

# "-MLX-4bit", "-4bit", "-8bit-DWQ", "-MLX-bf16", "-mxfp4", ... at the end of a repo name
_QUANT_SUFFIX = re.compile(r"(?i)(-mlx)?-(\d+-?bits?|bf16|fp16|mxfp4|dwq)([-_].*)?$|-mlx$")

_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[ab])$")
_LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


def full_precision_base(name: str) -> str | None:
    """The Hub id (or local path) whose weights the run's quantized base came from.

    None when it cannot be told; callers then ask for `--base-model`.
    """
    from tscu_tui.engine.models.load import EMBEDDED_MODEL, is_embedded

    if is_embedded(name):
        return EMBEDDED_MODEL
    if is_gguf_name(name):
        return gguf_original(name)
    if name in KNOWN_BASES:
        return KNOWN_BASES[name]
    local = Path(name).expanduser()
    if local.exists():
        return str(local.resolve())
    owner, _, repo = name.rpartition("/")
    stripped = _QUANT_SUFFIX.sub("", repo)
    if owner == "mlx-community":
        owner = next((org for prefix, org in _ORIGINAL_OWNERS.items()
                      if stripped.lower().startswith(prefix.lower())), "")
        if not owner:
            return None
    return f"{owner}/{stripped}" if owner else stripped


def gguf_original(name: str) -> str | None:
    """The Hugging Face model a GGUF was converted from: known for aliases, else what
    the file's metadata names (llama.cpp writes `general.source.huggingface.repository`
    or `general.base_model.0.repo_url`); None when it does not say."""
    from tscu_tui.engine.errors import ModelError
    from tscu_tui.engine.models.gguf_cache import hub_original
    from tscu_tui.engine.models.load import model_source

    known = hub_original(name)
    if known is not None:
        return known
    try:
        general = (model_source(name) or {}).get("general", {})
    except ModelError:  # the file is not on this machine
        return None
    for key in ("source.huggingface.repository", "source.repo_url", "base_model.0.repo_url"):
        value = str(general.get(key, ""))
        value = value.removeprefix("https://huggingface.co/").strip("/")
        if value.count("/") == 1:
            return value
    return None


def peft_key(mlx_key: str) -> str:
    """`model.layers.0.self_attn.q_proj.lora_a` -> PEFT's saved name for the same matrix."""
    match = _LORA_KEY.match(mlx_key)
    if match is None:
        raise ExportError(f"adapter tensor '{mlx_key}' is not a LoRA matrix (lora_a/lora_b); "
                          "only plain LoRA adapters export to PEFT")
    return f"base_model.model.{match['module']}.lora_{match['which'].upper()}.weight"


def peft_tensors(weights: dict[str, Any]) -> dict[str, Any]:
    """Rename and transpose mlx-lm LoRA tensors into PEFT's layout (same values)."""
    from tscu_tui.engine.models.runtime import mx

    return {peft_key(key): mx.contiguous(value.T) for key, value in sorted(weights.items())}


def peft_config(adapter_config: dict[str, Any], weight_keys: list[str],
                base_model: str) -> dict[str, Any]:
    """PEFT's adapter_config.json for an mlx-lm adapter config and its tensor names."""
    params = adapter_config["lora_parameters"]
    rank = int(params["rank"])
    alpha = float(params["scale"]) * rank
    modules = sorted({_LORA_KEY.match(k)["module"] for k in weight_keys if _LORA_KEY.match(k)})
    layers = sorted({int(m.group(1)) for k in modules if (m := _LAYER_INDEX.search(k))})
    targets = sorted(params.get("keys") or {m.rsplit(".", 1)[-1] for m in modules})
    # mlx-lm adapts the *last* num_layers layers; PEFT needs them named when not all are.
    partial = bool(layers) and layers[0] != 0
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "revision": None,
        "r": rank,
        "lora_alpha": int(alpha) if alpha.is_integer() else alpha,
        "lora_dropout": float(params.get("dropout", 0.0)),
        "target_modules": targets,
        "layers_to_transform": layers if partial else None,
        "layers_pattern": "layers" if partial else None,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "modules_to_save": None,
        "inference_mode": True,
    }


def write_peft_adapter(run: RunFolder, folder: Path, base_model: str | None = None) -> str:
    """Write the PEFT pair into `folder` (an empty staging folder); return the base id."""
    import json

    from tscu_tui.engine.models.runtime import mx

    base = base_model or full_precision_base(run.base_model)
    if not base:
        raise ExportError(f"cannot tell the full-precision base of '{run.base_model}'; "
                          "name it with --base-model ORG/NAME")
    try:
        weights = mx.load(str(run.adapter_weights))
    except Exception as exc:
        raise ExportError(f"cannot read {run.adapter_weights}: {exc}") from None
    if not weights:
        raise ExportError(f"{run.adapter_weights} holds no tensors")
    tensors = peft_tensors(weights)
    mx.save_safetensors(str(folder / PEFT_WEIGHTS), tensors, metadata={"format": "pt"})
    config = peft_config(run.adapter_config, list(weights), base)
    (folder / PEFT_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return base
