"""README.md for a run or an export: the Hub's YAML header, then facts from the run.

Every number comes from the run's files (summary, analysis, config); what the
run did not measure is written as such, never estimated. Usage snippets are
chosen for the folder the card sits in (`target`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tscu_tui import __version__
from tscu_tui.engine.fileio import atomic_write_text
from tscu_tui.engine.hub.card_results import (
    hardware_facts,
    section_energy,
    section_hardware,
    section_results,
    section_samples,
)
from tscu_tui.engine.hub.card_training import gguf_source, section_training
from tscu_tui.engine.hub.card_usage import (
    HUB_MLX_FOLDER,
    section_citation,
    section_limitations,
    section_usage,
)
from tscu_tui.engine.hub.run import RunFolder, open_run
from tscu_tui.engine.runs.files import CURVES_FILE

CARD_FILE = "README.md"
#: folders a card describes: the run itself, each export, and the Hub repo layout
TARGETS = ("run", "mlx", "peft", "fused", "gguf-lora", "gguf", "hub")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LICENSE_LINE = re.compile(r"^license:\s*['\"]?([\w.-]+)", re.MULTILINE)
_NOT_MEASURED = "not measured"


def is_hub_id(name: str | None) -> bool:
    return bool(name) and bool(_HUB_ID.match(name or "")) and not Path(name or "").exists()


def base_license(base: str, gguf_source: dict[str, Any] | None = None) -> tuple[str, str]:
    """(Hub license id, one sentence saying where it comes from)."""
    from tscu_tui.engine.models.load import EMBEDDED_MODEL, is_embedded

    if base == EMBEDDED_MODEL or is_embedded(base):
        return "agpl-3.0", ("The embedded tiny model ships inside tscu and is distributed "
                            "under tscu's license, AGPL-3.0-or-later.")
    gguf_license = (gguf_source or {}).get("general", {}).get("license")
    if gguf_license:
        return str(gguf_license), (f"License of the base model as its GGUF file "
                                   f"`{gguf_source['source']['file']}` states.")  # type: ignore[index]
    found = _license_from_readme(base)
    if found:
        return found, f"License of the base model `{base}` as its model card states."
    if "qwen3" in base.lower():
        return "apache-2.0", f"Qwen3 models, `{base}` included, are released under Apache 2.0."
    return "other", (f"The license of the base model `{base}` could not be determined "
                     "offline; check it before using or sharing this adapter.")


def _license_from_readme(base: str) -> str | None:
    readme: Path | None = None
    local = Path(base).expanduser()
    if local.is_dir():
        readme = local / "README.md"
    elif is_hub_id(base):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(base, "README.md")
            readme = Path(cached) if isinstance(cached, str) else None
        except Exception:
            readme = None
    if readme is None or not readme.is_file():
        return None
    text = readme.read_text(errors="replace")
    if not text.startswith("---"):
        return None
    match = _LICENSE_LINE.search(text.split("---", 2)[1])
    return match.group(1) if match else None


def _yaml(value: Any) -> str:
    if isinstance(value, list):
        return "\n" + "\n".join(f"- {json.dumps(item)}" for item in value)
    return f" {json.dumps(value)}"


# ---------------------------------------------------------------- the card
def render_card(run: RunFolder, *, target: str = "run", base_model: str | None = None,
                repo_id: str | None = None, dequantized: bool = False,
                hardware: dict[str, Any] | None = None, usage: str | None = None) -> str:
    """The model card for `run` as it should read inside a `target` folder; `usage`
    replaces the usage section (the GGUF exports write their own commands)."""
    from tscu_tui.engine.hub.peft_export import full_precision_base

    trained_on = run.base_model
    peft_base = base_model or full_precision_base(trained_on) or ""
    header_base = peft_base if target in ("peft", "hub") else trained_on
    license_id, license_note = base_license(trained_on, gguf_source(run))
    tags = ["lora", "mlx", "tscu", "scu", "t-scu", "text-generation"]
    if target in ("peft", "hub"):
        tags.insert(0, "peft")
    meta: dict[str, Any] = {}
    if is_hub_id(header_base):
        meta["base_model"] = header_base
    meta.update({"library_name": "peft" if target in ("peft", "hub") else "mlx",
                 "license": license_id, "pipeline_tag": "text-generation", "tags": tags})
    header = "---\n" + "".join(f"{k}:{_yaml(v)}\n" for k, v in meta.items()) + "---\n"
    title = repo_id or f"T-SCU LoRA adapter for {trained_on}"
    sections = [
        f"# {title}\n",
        _intro(run, target, dequantized),
        section_training(run, peft_base),
        # The picture sits beside the card in the run folder and on the Hub.
        section_results(run, curves=target in ("run", "hub")
                         and (run.path / CURVES_FILE).is_file()),
        section_samples(run),
        section_energy(run),
        section_hardware(run, hardware),
        usage or section_usage(run, target, peft_base, repo_id, dequantized),
        section_limitations(run, target),
        f"## License\n\n`{license_id}`. {license_note} tscu itself is AGPL-3.0-or-later.\n",
        section_citation(),
    ]
    return header + "\n" + "\n".join(s for s in sections if s)


def _intro(run: RunFolder, target: str, dequantized: bool) -> str:
    what = {
        "run": "the run folder of a LoRA fine-tune (mlx-lm adapter pair at its root)",
        "mlx": "a LoRA adapter in mlx-lm's layout (`adapters.safetensors`, "
               "`adapter_config.json`)",
        "peft": "a LoRA adapter in PEFT's layout (`adapter_model.safetensors`, "
                "`adapter_config.json`) for the full-precision base",
        "fused": "the base model with the LoRA adapter fused in"
                 + (", dequantized" if dequantized else ", re-quantized like its base"),
        "gguf-lora": "a LoRA adapter as a llama.cpp LoRA GGUF (`adapter.gguf`) for the "
                     "base GGUF it was trained on, with an Ollama `Modelfile`",
        "gguf": "the base model with the LoRA adapter merged in, as one GGUF file "
                "(`model.gguf`), with an Ollama `Modelfile`",
        "hub": "a LoRA adapter: PEFT layout at the root, mlx-lm's layout in "
               f"`{HUB_MLX_FOLDER}/`, and the run's metrics",
    }[target]
    status = run.summary.get("status", "unknown")
    return (f"This is {what}, trained with tscu {run.summary.get('tscu_version', __version__)} "
            f"on `{run.base_model}` (run status: {status}).\n")


def write_run_card(run_dir: str | Path, *, hardware: dict[str, Any] | None = None,
                   repo_id: str | None = None) -> Path:
    """Render the run's card into RUN_DIR/README.md (atomic); return its path."""
    run = open_run(run_dir)
    path = run.path / CARD_FILE
    atomic_write_text(path, render_card(run, target="run", repo_id=repo_id,
                                        hardware=hardware or hardware_facts()))
    return path
