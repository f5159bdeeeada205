"""`export_run`: one call for every export format, written atomically.

Each format is built in a hidden staging folder beside the target and renamed
into place only when complete, so a failed export never leaves a folder that
looks valid.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from tscu_tui.engine.fileio import atomic_directory
from tscu_tui.engine.hub import ExportError
from tscu_tui.engine.hub.run import RunFolder, open_run
from tscu_tui.engine.runs.files import ADAPTER_CONFIG, ADAPTER_WEIGHTS

FORMATS = ("mlx", "peft", "fused", "gguf-lora", "gguf")
#: written into every export; only a folder holding it may be replaced by a new export
EXPORT_MARKER = ".tscu-export.json"

Progress = Callable[[str], None]


def default_export_dir(run_dir: Path, fmt: str) -> Path:
    return Path(run_dir) / "export" / fmt


def export_run(run_dir: str | Path, fmt: str, *, output: str | Path | None = None,
               base_model: str | None = None, dequantize: bool = False,
               adapter: str = "final", quant: str | None = None,
               progress: Progress | None = None) -> Path:
    """Export the run's adapter as `fmt` (mlx, peft, fused, gguf-lora or gguf) with a
    model card; return the folder. Raises ExportError (one line) on bad input.

    For the GGUF formats `base_model` names the base GGUF (or mlx-lm folder) where it
    has moved since training; `quant` (gguf only) is f16, q8_0 (default) or q4_0."""
    from tscu_tui.engine.hub.model_card import render_card
    from tscu_tui.engine.hub.peft_export import write_peft_adapter

    if fmt not in FORMATS:
        raise ExportError(f"format '{fmt}' is not one of {', '.join(FORMATS)}")
    if dequantize and fmt != "fused":
        raise ExportError("--dequantize applies only to --format fused")
    if quant is not None and fmt != "gguf":
        raise ExportError("--quant applies only to --format gguf")
    run = open_run(run_dir, adapter)
    target = Path(output).expanduser() if output else default_export_dir(run.path, fmt)
    if output:  # RUN_DIR/export/FORMAT is ours to replace
        _check_replaceable(target)
    say = progress or (lambda message: None)
    say(f"exporting {fmt} from {run.adapter_dir}")
    try:
        with atomic_directory(target, replace=True) as staging:
            base, usage = None, None
            if fmt in ("gguf-lora", "gguf"):
                usage = _write_gguf(run, staging, fmt, base_model, quant or "q8_0", say)
                base_model = None  # a GGUF path, not the Hub id the card's header wants
            elif fmt == "mlx":
                _copy_mlx_pair(run, staging)
            elif fmt == "peft":
                base = write_peft_adapter(run, staging, base_model)
            else:
                say("loading the base model and fusing the adapter")
                from tscu_tui.engine.hub.fused import write_fused_model

                write_fused_model(run, staging, dequantize=dequantize)
            card = render_card(run, target=fmt, base_model=base or base_model,
                               dequantized=dequantize, usage=usage)
            (staging / "README.md").write_text(card)
            (staging / EXPORT_MARKER).write_text(json.dumps(
                {"format": fmt, "run_dir": str(run.path), "adapter": adapter}) + "\n")
    except OSError as exc:
        raise ExportError(f"cannot write the export to {target}: {exc}") from None
    say(f"wrote {target}")
    return target


def _write_gguf(run: RunFolder, staging: Path, fmt: str, base: str | None, quant: str,
                say: Progress) -> str:
    """The GGUF file(s) and Modelfile; returns the card's usage section."""
    from tscu_tui.engine.hub import gguf_lora

    if fmt == "gguf-lora":
        say("checking the base GGUF (SHA-256) and writing the LoRA GGUF")
        lora = gguf_lora.write_gguf_lora(run, staging, base)
        say(f"{lora.tensors} tensors, alpha {lora.alpha:g} (rank {lora.rank}) for "
            f"{lora.base}")
        return gguf_lora.usage(str(lora.base.resolve()), gguf_lora.ADAPTER_FILE)
    from tscu_tui.engine.hub.gguf_merged import MODEL_FILE, write_merged_gguf

    say(f"merging the adapter into the base and writing {quant.upper()} GGUF")
    merged = write_merged_gguf(run, staging, quant, base, progress=say)
    note = (f"\n### Precision\n\nThe {merged.requantized} adapted weights were "
            f"dequantized, merged and requantized to {quant.upper()}: requantizing changes "
            "the weights, so this model's outputs are close to, not equal to, the base + "
            "adapter tscu trained (`--format gguf-lora` keeps the adapter exact). "
            f"{merged.copied} tensors were copied from the base as stored.\n")
    if quant == "q4_0":  # measured on SmolLM2-135M: README, Export and upload
        note += ("\nA 4-bit grid is coarser than a LoRA's usual change to a weight: "
                 "requantizing to Q4_0 can round most of the adapter away. Prefer q8_0, or "
                 "the LoRA GGUF on the original base.\n")
    return gguf_lora.usage(merged.base, None, MODEL_FILE) + note


def _check_replaceable(target: Path) -> None:
    """Never swap out a folder that is not an earlier export (a run, a home folder...)."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())) \
            and not (target / EXPORT_MARKER).is_file():
        raise ExportError(f"{target} exists and is not an earlier tscu export; choose another "
                          "--output-dir or remove it")


def _copy_mlx_pair(run: RunFolder, folder: Path) -> None:
    for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
        shutil.copy2(run.adapter_dir / name, folder / name)
