"""README.md for a run or an export: the Hub's YAML header, then facts from the run.

Every number comes from the run's files (summary, analysis, config); what the
run did not measure is written as such, never estimated. Usage snippets are
chosen for the folder the card sits in (`target`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

from tscu_tui import __version__
from tscu_tui.engine.fileio import atomic_write_text
from tscu_tui.engine.hub.model_card_energy import energy_lines
from tscu_tui.engine.hub.run import RunFolder, open_run
from tscu_tui.engine.runs.files import CURVES_FILE

CARD_FILE = "README.md"
#: folders a card describes: the run itself, each export, and the Hub repo layout
TARGETS = ("run", "mlx", "peft", "fused", "gguf-lora", "gguf", "hub")
#: in a Hub repo the PEFT adapter sits at the root, mlx-lm's pair under this folder
HUB_MLX_FOLDER = "mlx"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LICENSE_LINE = re.compile(r"^license:\s*['\"]?([\w.-]+)", re.MULTILINE)
_NOT_MEASURED = "not measured"


def hardware_facts() -> dict[str, Any]:
    """This machine, as a training run records it."""
    import psutil

    from tscu_tui.engine.models.runtime import mx

    return {"platform": platform.platform(), "machine": platform.machine(),
            "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "mlx_device": str(mx.default_device()), "python": platform.python_version()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


# ---------------------------------------------------------------- formatting
def _fmt(value: Any, spec: str = ".4g", unit: str = "") -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    text = format(value, spec)
    return f"{text} {unit}".rstrip()


def _stats_line(stats: dict[str, float] | None, spec: str = ".4g") -> str:
    if not stats:
        return "not recorded"
    return (f"first {format(stats['first'], spec)}, last {format(stats['last'], spec)}, "
            f"mean {format(stats['mean'], spec)}, min {format(stats['min'], spec)}, "
            f"max {format(stats['max'], spec)}")


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
    license_id, license_note = base_license(trained_on, _gguf_source(run))
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
        _section_training(run, peft_base),
        # The picture sits beside the card in the run folder and on the Hub.
        _section_results(run, curves=target in ("run", "hub")
                         and (run.path / CURVES_FILE).is_file()),
        _section_samples(run),
        _section_energy(run),
        _section_hardware(run, hardware),
        usage or _section_usage(run, target, peft_base, repo_id, dequantized),
        _section_limitations(run, target),
        f"## License\n\n`{license_id}`. {license_note} tscu itself is AGPL-3.0-or-later.\n",
        _section_citation(),
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


def _gguf_source(run: RunFolder) -> dict[str, Any] | None:
    """What a GGUF base was imported from, as the run recorded it."""
    source = run.summary.get("base_model_source")
    return source if isinstance(source, dict) and isinstance(source.get("source"), dict) \
        else None


def _gguf_line(source: dict[str, Any]) -> str:
    file = source["source"]
    types = ", ".join(f"{kind} x{count}" for kind, count in
                      sorted(source.get("tensor_types", {}).items()))
    general = source.get("general", {})
    named = f"{general['name']}, " if general.get("name") else ""
    return (f"- **GGUF source**: `{file.get('file')}` ({named}{source.get('architecture')}; "
            f"sha256 `{str(file.get('sha256', ''))[:16]}...`; tensors {types}), imported "
            "by tscu with its quantized tensors kept as stored")


_CENTRES = {"zero": "zero", "init": "the adapter's initial weights"}


def _section_training(run: RunFolder, peft_base: str) -> str:
    cfg, summary = run.config, run.summary
    lora_params = run.adapter_config.get("lora_parameters", {})
    scu, tscu, train = cfg.get("scu", {}), cfg.get("tscu", {}), cfg.get("train", {})
    data_line = _data_line(run)
    lines = [
        "## Training\n",
        f"- **Base model (trained on)**: `{run.base_model}`",
        *([_gguf_line(gguf)] if (gguf := _gguf_source(run)) else []),
        f"- **Full-precision base (for PEFT)**: `{peft_base or 'unknown'}`",
        f"- **Data**: {data_line}",
        *([_loss_line(run.summary["data"])] if run.summary.get("data") else []),
        f"- **Steps**: {_fmt(summary.get('steps'), 'd')} of {_fmt(summary.get('max_steps'), 'd')}"
        + (f" ({summary['epochs']:.3g} epochs)" if summary.get("epochs") else "")
        + f", {_fmt(summary.get('tokens'), ',')} tokens, "
        f"{_fmt(summary.get('train_seconds'), '.1f', 's')} training, "
        f"{_fmt(summary.get('wall_seconds'), '.1f', 's')} wall",
        f"- **LoRA**: rank {lora_params.get('rank')}, scale {lora_params.get('scale')} "
        f"(alpha {cfg.get('lora', {}).get('alpha', 'n/a')}), dropout "
        f"{lora_params.get('dropout')}, last {run.adapter_config.get('num_layers')} layers, "
        f"modules {', '.join(lora_params.get('keys', []))}",
        f"- **Parameters**: {_fmt(summary.get('trainable_parameters'), ',')} trainable of "
        f"{_fmt(summary.get('total_parameters'), ',')}",
        f"- **Optimisation**: batch {train.get('batch_size')} x accumulation "
        f"{train.get('gradient_accumulation_steps')}, learning rate "
        f"{train.get('learning_rate')} ({train.get('lr_scheduler')}, warm-up "
        f"{train.get('warmup_steps')} steps), seed {train.get('seed')}",
        "",
        "**Method.** The Shannon Control Unit (SCU) treats training as a two-part code: "
        "DataBPT (bits per token of the data) plus ParamBPT (bits the LoRA weights cost under "
        "a Gaussian prior). A controller steers the regularisation weight lambda so that "
        "S = ParamBPT / (DataBPT + ParamBPT) tracks a target. The thermodynamic extension "
        "(T-SCU) adds a power and temperature governor that slows or pauses steps to hold a "
        "power budget, and reports information per joule.",
        "",
        f"- **SCU controller**: mode `{scu.get('mode')}`, target S {scu.get('target_s')}, "
        f"Kp {scu.get('kp')}, Ki {scu.get('ki')}, deadband {scu.get('deadband')}, "
        f"lambda in [{scu.get('lambda_min')}, {scu.get('lambda_max')}] from "
        f"{scu.get('lambda_init')}, prior sigma {scu.get('prior_sigma')} centred on "
        f"{_CENTRES.get(scu.get('prior_center', 'zero'), '?')}, EMA alpha {scu.get('ema_alpha')}",
        f"- **T-SCU governor**: {'enabled' if tscu.get('enabled') else 'disabled'}, power budget "
        f"{tscu.get('power_budget_watts')} W, max temperature "
        f"{tscu.get('max_temperature_celsius')} °C, emergency stop "
        f"{tscu.get('emergency_shutdown_temp')} °C, control factor >= "
        f"{tscu.get('control_factor_min')}, lr coupling {tscu.get('lr_coupling')}",
    ]
    return "\n".join(lines) + "\n"


def _data_line(run: RunFolder) -> str:
    path = run.summary.get("dataset")
    meta: dict[str, Any] = {}
    if path and (Path(path) / "meta.json").is_file():
        try:
            meta = json.loads((Path(path) / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
    source = meta.get("source", {})
    name = source.get("dataset") or run.config.get("data", {}).get("dataset") or "not recorded"
    if Path(name).is_absolute():  # a local file: its name, not this machine's layout
        name = Path(name).name
    kind = f" ({source['kind']})" if source.get("kind") else ""
    block = meta.get("block_size") or run.config.get("data", {}).get("block_size")
    digest = run.summary.get("dataset_hash")
    return (f"`{name}`{kind}, blocks of {block} tokens"
            + (f", content hash `{digest}`" if digest else ""))


def _test_line(test: dict[str, Any] | None) -> str:
    """The test split's numbers (never trained or selected on), or that there are none."""
    if not test or not test.get("tokens"):
        return ("- **Test split**: none; the held-out numbers above are validation BPT, the "
                "split the best step was selected on")
    if test.get("final_bpt") is None:
        return "- **Test split**: not measured (the run did not reach its end)"
    measured = test.get("evaluated_tokens")
    size = f"{test['tokens']:,} tokens" + (f", {measured:,} of them predicted" if measured
                                           else "")
    return (f"- **Test split** ({size}; never trained or selected on): "
            f"{_fmt(test.get('base_bpt'), '.4f')} bits/token before training, "
            f"{_fmt(test.get('final_bpt'), '.4f')} after, "
            f"{_fmt(test.get('best_bpt'), '.4f')} with the best-validation adapter (step "
            f"{_fmt(test.get('best_step'), 'd')})")
def _loss_line(data: dict[str, Any]) -> str:
    """Which tokens trained, and through which chat template with which variables."""
    share = data.get("loss_token_share")
    line = (f"- **Loss on**: {data.get('train_on')}"
            + (f", {share * 100:.1f} % of the training tokens" if share is not None else "")
            + ("; documents packed into blocks attend only to themselves"
               if data.get("documents_masked") else ""))
    template = data.get("chat_template")
    if template:
        kwargs = ", ".join(f"{k}={v!r}" for k, v in (template.get("kwargs") or {}).items())
        line += (f"; chat template: {template.get('source')}"
                 + (f" with {kwargs}" if kwargs else ""))
    return line


def _section_samples(run: RunFolder) -> str:
    """The model's greedy answers to the held-out prompts at the last evaluation."""
    rounds = run.analysis.get("samples") or []
    if not rounds:
        return ""
    last = rounds[-1]
    lines = [f"## Samples\n\nGreedy answers at step {last.get('step')} (the last evaluation) "
             "to held-out prompts, as the model saw them:\n"]
    for prompt, answer in zip(last.get("prompts", []), last.get("answers", []), strict=False):
        lines += ["```text", prompt.rstrip("\n")[-600:], "```", "",
                  "```text", answer.strip()[:800] or "(empty)", "```", ""]
    return "\n".join(lines)


def _section_results(run: RunFolder, curves: bool = False) -> str:
    a = run.analysis
    scu = a.get("scu", {})
    lines = [
        "## Results\n",
        "| held-out bits/token | value |", "|---|---|",
        f"| before training | {_fmt(a.get('heldout_bpt_initial'), '.4f')} |",
        f"| after training | {_fmt(a.get('heldout_bpt_final'), '.4f')} |",
        f"| best | {_fmt(a.get('heldout_bpt_best'), '.4f')} |",
        f"| reduction | {_fmt(a.get('heldout_bpt_reduction'), '.4f')} |",
        "",
        _test_line(a.get("test")),
        "",
        f"- **S** (target {_fmt(scu.get('target_s'))}): {_stats_line(scu.get('s'))}; "
        f"within +/-{_fmt(scu.get('band'))} after warm-up: "
        f"{_fmt(_percent(scu.get('s_within_band_fraction_after_warmup')))}",
        f"- **lambda**: {_stats_line(scu.get('lambda'))}",
        f"- **DataBPT** (training batches): {_stats_line(scu.get('data_bpt'))}",
        f"- **ParamBPT**: {_stats_line(scu.get('param_bpt'))}",
        f"- **Throughput**: {_fmt(a.get('tokens_per_second_mean'), '.1f', 'tokens/s')} mean, "
        f"{_fmt(a.get('skipped_steps'), 'd')} skipped steps",
    ]
    if curves:
        lines += ["", f"![Held-out BPT, loss, watts, °C, c, S and lambda against step]"
                      f"({CURVES_FILE})"]
    return "\n".join(lines) + "\n"


def _percent(fraction: float | None) -> str | None:
    return None if fraction is None else f"{fraction * 100:.0f} %"


def _section_energy(run: RunFolder) -> str:
    a = run.analysis
    source, kind = a.get("telemetry_source"), a.get("telemetry_kind")
    head = "## Energy and temperature\n"
    if source in (None, "none") or kind in (None, "none"):
        return (f"{head}\nTelemetry source: `{source or 'none'}`. Power, energy, temperature and "
                "information-per-joule were **not measured** in this run, so none are "
                "reported.\n")
    note = {"simulated": " (simulated readings, not a hardware measurement)",
            "estimated": " (estimated from a model of the hardware, not metered)"}.get(kind, "")
    eff = a.get("efficiency", {})
    lines = [
        head,
        f"- **Telemetry**: source `{source}`, kind `{kind}`{note}",
        f"- **Energy**: {_fmt(a.get('total_energy_joules'), '.1f', 'J')} "
        f"({_fmt(a.get('total_energy_wh'), '.4f', 'Wh')})",
        f"- **Average power**: {_fmt(a.get('avg_power_watts'), '.2f', 'W')} "
        f"(budget {_fmt(a.get('power_budget_watts'), '.1f', 'W')}, over budget "
        f"{_fmt(_percent(a.get('fraction_over_budget')))} of the measured time)",
        f"- **Temperature**: average {_fmt(a.get('avg_temperature_celsius'), '.1f', 'C')}, "
        f"max {_fmt(a.get('max_temperature_celsius'), '.1f', 'C')}",
        f"- **Information per joule**: "
        f"{_fmt(eff.get('information_per_joule_cumulative_bits'), '.4g')} bits/J: "
        f"{_fmt(eff.get('information_bits_cumulative'), ',.0f', 'bits')} learned about "
        f"the data, N x the drop in held-out bits per token (N = "
        f"{_fmt(eff.get('n_tokens'), ',')} training tokens; target "
        f"{_fmt(eff.get('target_bits_per_joule'))} bits/J between evaluations), "
        f"{_fmt(eff.get('tokens_per_joule'), '.4g', 'tokens/J')}, Landauer efficiency "
        f"{_fmt(a.get('avg_landauer_efficiency'), '.3g')}",
        *_mdl_line(eff.get("mdl")),
        f"- **Governor**: control factor {_stats_line(a.get('control_factor'), '.3g')}; "
        f"idle {_fmt(a.get('idle_seconds_total'), '.1f', 's')}",
        *energy_lines(a),
    ]
    return "\n".join(lines) + "\n"


def _mdl_line(mdl: dict[str, Any] | None) -> list[str]:
    """The MDL view, where the run reported it (penalty on), with its sign in words."""
    if not mdl:
        return []
    meaning = f": {mdl['meaning']}" if mdl.get("meaning") else ""
    return [f"- **MDL view** (held-out data bits minus the change in the adapter's parameter "
            f"bits): {_fmt(mdl.get('bits_cumulative'), ',.0f', 'bits')}, "
            f"{_fmt(mdl.get('per_joule_cumulative_bits'), '.4g', 'bits/J')}{meaning}"]


def _section_hardware(run: RunFolder, hardware: dict[str, Any] | None) -> str:
    facts = run.summary.get("hardware") or hardware or hardware_facts()
    origin = "recorded by the run" if run.summary.get("hardware") else \
        "of the machine that wrote this card (the run recorded none)"
    if not facts:
        return "## Hardware\n\nNot recorded.\n"
    lines = [f"## Hardware\n\nAs {origin}:\n",
             f"- **Platform**: {facts.get('platform')} ({facts.get('machine')})",
             f"- **CPU**: {facts.get('cpu')}, {facts.get('cpu_count')} logical cores",
             f"- **Memory**: {_fmt(facts.get('memory_gib'), '.1f', 'GiB')}",
             f"- **MLX device**: {run.summary.get('device') or facts.get('mlx_device')}"]
    if run.summary.get("blas"):
        lines.append(f"- **BLAS**: {run.summary['blas']}")
    if (ranks := run.summary.get("world_size") or 1) > 1:
        lines.append(f"- **Data parallel**: {ranks} ranks over mx.distributed "
                     f"({run.summary.get('backend')}); the hardware above is rank 0's")
    return "\n".join(lines) + "\n"


def _mlx_base_ref(base: str) -> str:
    from tscu_tui.engine.models.gguf_cache import is_gguf_name
    from tscu_tui.engine.models.load import is_embedded

    if is_embedded(base):
        return ('"$(python -c \'from tscu_tui.engine.config.assets import EMBEDDED_MODEL_DIR; '
                'print(EMBEDDED_MODEL_DIR)\')"')
    if is_gguf_name(base):  # `tscu import` prints the mlx-lm folder it made (or cached)
        return f'"$(tscu import {base})"'
    return base


def _section_usage(run: RunFolder, target: str, peft_base: str, repo_id: str | None,
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


def _section_limitations(run: RunFolder, target: str) -> str:
    from tscu_tui.engine.models.load import is_embedded

    lines = ["## Limitations\n",
             f"- Trained for {_fmt(run.summary.get('steps'), 'd')} steps on "
             f"{_fmt(run.summary.get('tokens'), ',')} tokens of one dataset; held-out "
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


def _section_citation() -> str:
    year = dt.date.today().year
    return ("## Citation\n\n```bibtex\n@software{tscu,\n"
            "  title = {tscu: LoRA fine-tuning on MLX under a Thermodynamic Shannon "
            "Control Unit},\n"
            f"  version = {{{__version__}}},\n  year = {{{year}}}\n}}\n```\n")


def write_run_card(run_dir: str | Path, *, hardware: dict[str, Any] | None = None,
                   repo_id: str | None = None) -> Path:
    """Render the run's card into RUN_DIR/README.md (atomic); return its path."""
    run = open_run(run_dir)
    path = run.path / CARD_FILE
    atomic_write_text(path, render_card(run, target="run", repo_id=repo_id,
                                        hardware=hardware or hardware_facts()))
    return path
