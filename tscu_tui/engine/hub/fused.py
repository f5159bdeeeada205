"""Base model + adapter fused into one model folder, with mlx-lm's own fuse steps.

The same steps as `mlx_lm.fuse` (load with the adapter, `fuse()` every LoRA
layer, optionally dequantize, `mlx_lm.utils.save`), run in-process so errors
become one line and nothing is printed. Without `dequantize` a quantized base is
re-quantized after fusing, as mlx-lm does, which rounds the adapter's delta.
"""

from __future__ import annotations

from pathlib import Path

from tscu_tui.engine.hub import ExportError
from tscu_tui.engine.hub.run import RunFolder


def write_fused_model(run: RunFolder, folder: Path, *, dequantize: bool = False) -> None:
    """Write the fused model of `run` into `folder` (an empty staging folder)."""
    from mlx.utils import tree_unflatten
    from mlx_lm import load
    from mlx_lm.utils import dequantize_model, save

    from tscu_tui.engine.models.load import resolve_model_path

    base_path = resolve_model_path(run.base_model)
    try:
        model, tokenizer, config = load(str(base_path), adapter_path=str(run.adapter_dir),
                                        return_config=True)
    except Exception as exc:
        raise ExportError(f"cannot load '{run.base_model}' with the adapter in "
                          f"{run.adapter_dir}: {exc}".splitlines()[0]) from None
    fused = [(name, module.fuse(dequantize=dequantize))
             for name, module in model.named_modules() if hasattr(module, "fuse")]
    if not fused:
        raise ExportError(f"the adapter in {run.adapter_dir} added no LoRA layer to "
                          f"'{run.base_model}'")
    model.update_modules(tree_unflatten(fused))
    if dequantize:
        model = dequantize_model(model)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    try:
        save(folder, base_path, model, tokenizer, config, donate_model=False)
    except OSError as exc:
        raise ExportError(f"cannot write the fused model to {folder}: {exc}") from None
