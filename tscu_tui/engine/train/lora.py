"""LoRA on the frozen base with mlx-lm's own layers, saved in mlx-lm's layout.

The adapter folder (`adapter_config.json` + `adapters.safetensors`) is exactly
what `mlx_lm.generate --adapter-path` and `mlx_lm.fuse` read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlx.nn as nn
from mlx.utils import tree_flatten

from tscu_tui.engine.config import LoraConfig
from tscu_tui.engine.errors import ModelError
from tscu_tui.engine.fileio import atomic_write_bytes, atomic_write_json
from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.runs.files import ADAPTER_CONFIG, ADAPTER_WEIGHTS


def _adaptable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear | nn.QuantizedLinear)


def target_keys(model: nn.Module, targets: list[str]) -> list[str]:
    """Paths inside a transformer layer (e.g. `self_attn.q_proj`) named in `targets`."""
    keys = {path for path, module in model.layers[0].named_modules()
            if _adaptable(module) and path.rsplit(".", 1)[-1] in targets}
    return sorted(keys)


def apply_lora(model: nn.Module, lora: LoraConfig) -> dict[str, Any]:
    """Freeze `model` and add LoRA layers; return mlx-lm's adapter config dict."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    keys = target_keys(model, lora.target_modules)
    if not keys:
        names = sorted({p.rsplit(".", 1)[-1] for p, m in model.layers[0].named_modules()
                        if _adaptable(m)})
        raise ModelError(f"lora.target_modules {lora.target_modules} match no layer of this "
                         f"model; it has: {', '.join(names)}")
    n_layers = len(model.layers)
    num_layers = n_layers if lora.num_layers in (-1, 0) else min(lora.num_layers, n_layers)
    parameters = {"rank": lora.r, "scale": lora.alpha / lora.r, "dropout": lora.dropout,
                  "keys": keys}
    model.freeze()
    linear_to_lora_layers(model, num_layers, parameters)
    return {"fine_tune_type": "lora", "num_layers": num_layers,
            "lora_parameters": parameters}


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as their true sizes."""
    from mlx_lm.utils import get_total_parameters

    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    return trainable, int(get_total_parameters(model))


def adapter_weights(model: nn.Module) -> dict[str, mx.array]:
    return dict(tree_flatten(model.trainable_parameters()))


def save_adapters(folder: Path, model: nn.Module, adapter_config: dict[str, Any]) -> None:
    """Write the mlx-lm adapter pair atomically (weights first, then the config)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{ADAPTER_WEIGHTS}.writing.safetensors"
    mx.save_safetensors(str(tmp), adapter_weights(model))
    data = tmp.read_bytes()
    tmp.unlink()
    atomic_write_bytes(folder / ADAPTER_WEIGHTS, data)
    atomic_write_json(folder / ADAPTER_CONFIG, adapter_config)


def load_adapter_weights(model: nn.Module, file: Path) -> None:
    model.load_weights(list(mx.load(str(file)).items()), strict=False)


def read_adapter_config(folder: Path) -> dict[str, Any]:
    return json.loads((folder / ADAPTER_CONFIG).read_text())
