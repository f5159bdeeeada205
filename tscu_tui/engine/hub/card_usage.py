"""The card's usage, limitations and citation: how to load what sits in the folder."""

from __future__ import annotations

import datetime as dt

from tscu_tui import __version__
from tscu_tui.engine.hub.card_text import card_value
from tscu_tui.engine.hub.run import RunFolder

#: in a Hub repo the PEFT adapter sits at the root, mlx-lm's pair under this folder
HUB_MLX_FOLDER = "mlx"


def _mlx_base_ref(base: str) -> str:
    from tscu_tui.engine.models.gguf_cache import is_gguf_name
    from tscu_tui.engine.models.load import is_embedded

    if is_embedded(base):
        return ('"$(python -c \'from tscu_tui.engine.config.assets import EMBEDDED_MODEL_DIR; '
                'print(EMBEDDED_MODEL_DIR)\')"')
    if is_gguf_name(base):  # `tscu import` prints the mlx-lm folder it made (or cached)
        return f'"$(tscu import {base})"'
    return base


def section_usage(run: RunFolder, target: str, peft_base: str, repo_id: str | None,
                   dequantized: bool) -> str:
    from tscu_tui.engine.models.load import is_embedded

    here = repo_id or "path/to/this/folder"
    base = _mlx_base_ref(run.base_model)
    parts = ["## Usage\n"]
    if target == "fused":
        parts.append("With mlx-lm (the fused model needs no adapter):\n\n```bash\n"
                     f'mlx_lm.generate --model {here} --prompt "The future of AI is"\n```\n')
        if dequantized:
            parts.append("The dequantized weights use the original parameter names; "
                         "`transformers` may load the folder directly.\n")
        return "\n".join(parts)
    if target in ("run", "mlx", "hub"):
        # mlx-lm reads adapters from a local folder only: fetch them from the Hub first
        adapter, fetch = here, ""
        if target == "hub":
            adapter = f"adapter/{HUB_MLX_FOLDER}"
            fetch = (f"hf download {repo_id or 'USER/NAME'} --include \"{HUB_MLX_FOLDER}/*\" "
                     "--local-dir adapter\n")
        elif repo_id:
            adapter, fetch = "adapter", f"hf download {repo_id} --local-dir adapter\n"
        parts.append("With mlx-lm (Apple Silicon, or MLX on Linux):\n\n```bash\n" + fetch +
                     f"mlx_lm.generate --model {base} --adapter-path {adapter} "
                     '--prompt "The future of AI is"\n'
                     f"mlx_lm.fuse --model {base} --adapter-path {adapter} "
                     "--save-path fused_model\n```\n")
    if target in ("peft", "hub"):
        tf_base = peft_base or "ORG/FULL-PRECISION-BASE"
        if is_embedded(run.base_model):
            parts.append("The embedded tiny model exists only as 4-bit MLX weights: make a "
                         "full-precision copy first with `mlx_lm.convert --hf-path <embedded "
                         "model folder> --mlx-path tiny-qwen3-f32 --dequantize` and load "
                         "that folder below.\n")
            tf_base = "tiny-qwen3-f32"
        parts.append(
            "With transformers + PEFT, on the full-precision base:\n\n```python\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            "from peft import PeftModel\n\n"
            f'base_model = AutoModelForCausalLM.from_pretrained("{tf_base}", '
            'device_map="auto")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{tf_base}")\n'
            f'model = PeftModel.from_pretrained(base_model, "{here}")\n\n'
            'inputs = tokenizer("The future of AI is", return_tensors="pt")'
            ".to(model.device)\n"
            "outputs = model.generate(**inputs, max_new_tokens=64)\n"
            "print(tokenizer.decode(outputs[0], skip_special_tokens=True))\n```\n")
    else:
        parts.append("For transformers + PEFT, export the PEFT layout first: "
                     "`tscu export RUN_DIR --format peft`.\n")
    return "\n".join(parts)


def section_limitations(run: RunFolder, target: str) -> str:
    from tscu_tui.engine.models.load import is_embedded

    lines = ["## Limitations\n",
             f"- Trained for {card_value(run.summary.get('steps'), 'd')} steps on "
             f"{card_value(run.summary.get('tokens'), ',')} tokens of one dataset; held-out "
             "bits/token are measured on that dataset's validation split only.",
             "- The adapter was trained against the quantized base. Applied to the "
             "full-precision base (PEFT) its outputs differ slightly from MLX's."]
    if is_embedded(run.base_model):
        lines.append("- The embedded tiny model is a 4.2M-parameter demonstration model; "
                     "its text is not useful beyond demonstrating the pipeline.")
    kind = run.analysis.get("telemetry_kind")
    if run.analysis.get("telemetry_source") in (None, "none") or kind in (None, "none"):
        lines.append("- No energy or temperature figures: the run had no telemetry.")
    elif kind != "measured":
        lines.append(f"- Energy figures come from `{kind}` telemetry.")
    return "\n".join(lines) + "\n"


def section_citation() -> str:
    year = dt.date.today().year
    return ("## Citation\n\n```bibtex\n@software{tscu,\n"
            "  title = {tscu: LoRA fine-tuning on MLX under a Thermodynamic Shannon "
            "Control Unit},\n"
            f"  version = {{{__version__}}},\n  year = {{{year}}}\n}}\n```\n")
