"""The card's measured sections: results, the test split, samples, energy, hardware."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from tscu_tui.engine.hub.card_text import card_value, percent, stats_line
from tscu_tui.engine.hub.model_card_energy import energy_lines
from tscu_tui.engine.hub.run import RunFolder
from tscu_tui.engine.runs.files import CURVES_FILE


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
            f"{card_value(test.get('base_bpt'), '.4f')} bits/token before training, "
            f"{card_value(test.get('final_bpt'), '.4f')} after, "
            f"{card_value(test.get('best_bpt'), '.4f')} with the best-validation adapter (step "
            f"{card_value(test.get('best_step'), 'd')})")
def section_samples(run: RunFolder) -> str:
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


def section_results(run: RunFolder, curves: bool = False) -> str:
    a = run.analysis
    scu = a.get("scu", {})
    lines = [
        "## Results\n",
        "| held-out bits/token | value |", "|---|---|",
        f"| before training | {card_value(a.get('heldout_bpt_initial'), '.4f')} |",
        f"| after training | {card_value(a.get('heldout_bpt_final'), '.4f')} |",
        f"| best | {card_value(a.get('heldout_bpt_best'), '.4f')} |",
        f"| reduction | {card_value(a.get('heldout_bpt_reduction'), '.4f')} |",
        "",
        _test_line(a.get("test")),
        "",
        f"- **S** (target {card_value(scu.get('target_s'))}): {stats_line(scu.get('s'))}; "
        f"within +/-{card_value(scu.get('band'))} after warm-up: "
        f"{card_value(percent(scu.get('s_within_band_fraction_after_warmup')))}",
        f"- **lambda**: {stats_line(scu.get('lambda'))}",
        f"- **DataBPT** (training batches): {stats_line(scu.get('data_bpt'))}",
        f"- **ParamBPT**: {stats_line(scu.get('param_bpt'))}",
        f"- **Throughput**: {card_value(a.get('tokens_per_second_mean'), '.1f', 'tokens/s')} mean, "
        f"{card_value(a.get('skipped_steps'), 'd')} skipped steps",
    ]
    if curves:
        lines += ["", f"![Held-out BPT, loss, watts, °C, c, S and lambda against step]"
                      f"({CURVES_FILE})"]
    return "\n".join(lines) + "\n"


def section_energy(run: RunFolder) -> str:
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
        f"- **Energy**: {card_value(a.get('total_energy_joules'), '.1f', 'J')} "
        f"({card_value(a.get('total_energy_wh'), '.4f', 'Wh')})",
        f"- **Average power**: {card_value(a.get('avg_power_watts'), '.2f', 'W')} "
        f"(budget {card_value(a.get('power_budget_watts'), '.1f', 'W')}, over budget "
        f"{card_value(percent(a.get('fraction_over_budget')))} of the measured time)",
        f"- **Temperature**: average {card_value(a.get('avg_temperature_celsius'), '.1f', 'C')}, "
        f"max {card_value(a.get('max_temperature_celsius'), '.1f', 'C')}",
        f"- **Information per joule**: "
        f"{card_value(eff.get('information_per_joule_cumulative_bits'), '.4g')} bits/J: "
        f"{card_value(eff.get('information_bits_cumulative'), ',.0f', 'bits')} learned about "
        f"the data, N x the drop in held-out bits per token (N = "
        f"{card_value(eff.get('n_tokens'), ',')} training tokens; target "
        f"{card_value(eff.get('target_bits_per_joule'))} bits/J between evaluations), "
        f"{card_value(eff.get('tokens_per_joule'), '.4g', 'tokens/J')}, Landauer efficiency "
        f"{card_value(a.get('avg_landauer_efficiency'), '.3g')}",
        *_mdl_line(eff.get("mdl")),
        f"- **Governor**: control factor {stats_line(a.get('control_factor'), '.3g')}; "
        f"idle {card_value(a.get('idle_seconds_total'), '.1f', 's')}",
        *energy_lines(a),
    ]
    return "\n".join(lines) + "\n"


def _mdl_line(mdl: dict[str, Any] | None) -> list[str]:
    """The MDL view, where the run reported it (penalty on), with its sign in words."""
    if not mdl:
        return []
    meaning = f": {mdl['meaning']}" if mdl.get("meaning") else ""
    return [f"- **MDL view** (held-out data bits minus the change in the adapter's parameter "
            f"bits): {card_value(mdl.get('bits_cumulative'), ',.0f', 'bits')}, "
            f"{card_value(mdl.get('per_joule_cumulative_bits'), '.4g', 'bits/J')}{meaning}"]


def section_hardware(run: RunFolder, hardware: dict[str, Any] | None) -> str:
    facts = run.summary.get("hardware") or hardware or hardware_facts()
    origin = "recorded by the run" if run.summary.get("hardware") else \
        "of the machine that wrote this card (the run recorded none)"
    if not facts:
        return "## Hardware\n\nNot recorded.\n"
    lines = [f"## Hardware\n\nAs {origin}:\n",
             f"- **Platform**: {facts.get('platform')} ({facts.get('machine')})",
             f"- **CPU**: {facts.get('cpu')}, {facts.get('cpu_count')} logical cores",
             f"- **Memory**: {card_value(facts.get('memory_gib'), '.1f', 'GiB')}",
             f"- **MLX device**: {run.summary.get('device') or facts.get('mlx_device')}"]
    if run.summary.get("blas"):
        lines.append(f"- **BLAS**: {run.summary['blas']}")
    if (ranks := run.summary.get("world_size") or 1) > 1:
        lines.append(f"- **Data parallel**: {ranks} ranks over mx.distributed "
                     f"({run.summary.get('backend')}); the hardware above is rank 0's")
    return "\n".join(lines) + "\n"
