"""The card's training section: base, data, steps, LoRA, optimisation, SCU and T-SCU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tscu_tui.engine.hub.card_text import card_value
from tscu_tui.engine.hub.run import RunFolder


def gguf_source(run: RunFolder) -> dict[str, Any] | None:
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


def section_training(run: RunFolder, peft_base: str) -> str:
    cfg, summary = run.config, run.summary
    lora_params = run.adapter_config.get("lora_parameters", {})
    scu, tscu, train = cfg.get("scu", {}), cfg.get("tscu", {}), cfg.get("train", {})
    data_line = _data_line(run)
    lines = [
        "## Training\n",
        f"- **Base model (trained on)**: `{run.base_model}`",
        *([_gguf_line(gguf)] if (gguf := gguf_source(run)) else []),
        f"- **Full-precision base (for PEFT)**: `{peft_base or 'unknown'}`",
        f"- **Data**: {data_line}",
        *([_loss_line(run.summary["data"])] if run.summary.get("data") else []),
        f"- **Steps**: {card_value(summary.get('steps'), 'd')} of "
        f"{card_value(summary.get('max_steps'), 'd')}"
        + (f" ({summary['epochs']:.3g} epochs)" if summary.get("epochs") else "")
        + f", {card_value(summary.get('tokens'), ',')} tokens, "
        f"{card_value(summary.get('train_seconds'), '.1f', 's')} training, "
        f"{card_value(summary.get('wall_seconds'), '.1f', 's')} wall",
        f"- **LoRA**: rank {lora_params.get('rank')}, scale {lora_params.get('scale')} "
        f"(alpha {cfg.get('lora', {}).get('alpha', 'n/a')}), dropout "
        f"{lora_params.get('dropout')}, last {run.adapter_config.get('num_layers')} layers, "
        f"modules {', '.join(lora_params.get('keys', []))}",
        f"- **Parameters**: {card_value(summary.get('trainable_parameters'), ',')} trainable of "
        f"{card_value(summary.get('total_parameters'), ',')}",
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
