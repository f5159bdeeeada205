"""The run folder's JSON files (names from the seed, contents ours).

- mlx_tscu_training_metrics.json: every step, eval and checkpoint record
- mlx_tscu_analysis.json: what the run achieved (information, control, energy)
- mlx_training_summary.json: one screen of facts about the run
- mlx_config.json: the resolved config; training_args.json: the loop's arguments
T-SCU fields stay null where the run had no such measurement, never invented.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from tscu_tui import __version__
from tscu_tui.engine.config import Config, to_dict
from tscu_tui.engine.fileio import atomic_write_json
from tscu_tui.engine.runs.files import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    ANALYSIS_FILE,
    ARGS_FILE,
    CONFIG_FILE,
    CURVES_FILE,
    EVENTS_FILE,
    LOG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
)
from tscu_tui.engine.telemetry.efficiency import DEFINITION, MDL_DEFINITION, mdl_meaning

#: what a run writes into its folder: all that `output.overwrite` replaces. Anything
#: else there (an output.dir that is a project folder) is the user's and stays.
RUN_OUTPUTS = (EVENTS_FILE, METRICS_FILE, ANALYSIS_FILE, SUMMARY_FILE, CONFIG_FILE,
               ARGS_FILE, ADAPTER_WEIGHTS, ADAPTER_CONFIG, CURVES_FILE, str(LOG_FILE),
               "checkpoints", "best")


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "first": values[0], "last": values[-1]}


def _present(steps: list[dict[str, Any]], key: str) -> list[float]:
    return [s[key] for s in steps if s.get(key) is not None]


def _nodes(steps: list[dict[str, Any]], durations: list[float]) -> list[dict[str, Any]] | None:
    """Per node (rank) of a distributed run: its share of the watts, degrees and joules
    that the run-level figures sum (power, energy) or take the maximum of (temperature).
    Power is time-weighted over the steps that measured it."""
    recorded = [(d, s) for d, s in zip(durations, steps, strict=True) if s.get("node_power_w")]
    if not recorded:
        return None
    size = len(recorded[-1][1]["node_power_w"])
    nodes = []
    for rank in range(size):
        watts = [(d, s["node_power_w"][rank]) for d, s in recorded
                 if len(s["node_power_w"]) == size and s["node_power_w"][rank] is not None]
        temps = [s["node_temp_c"][rank] for _, s in recorded
                 if len(s.get("node_temp_c") or []) == size
                 and s["node_temp_c"][rank] is not None]
        energy = (recorded[-1][1].get("node_energy_j") or [None] * size)[rank]
        span = sum(d for d, _ in watts)
        nodes.append({
            "rank": rank,
            "avg_power_watts": sum(d * w for d, w in watts) / span if span else None,
            "avg_temperature_celsius": statistics.fmean(temps) if temps else None,
            "max_temperature_celsius": max(temps) if temps else None,
            "energy_joules": energy})
    return nodes


def resolved_target(steps: list[dict[str, Any]], config: Config) -> float | None:
    """S* as the run used it: the config's number, or what "auto" resolved to (None while
    it has not)."""
    if not isinstance(config.scu.target_s, str):
        return config.scu.target_s
    return next((s["s_target"] for s in reversed(steps) if s.get("s_target") is not None),
                None)


def _efficiency(evals: list[dict[str, Any]], config: Config,
                n_tokens: int | None) -> dict[str, Any]:
    """Information per joule at the evaluations that measured it (TSCU.md, Efficiency);
    the MDL view only where the run reported it (penalty on)."""
    last = evals[-1] if evals else {}
    mdl = None
    if last.get("mdl_bits_cumulative") is not None:
        mdl = {"definition": MDL_DEFINITION,
               "bits_cumulative": last["mdl_bits_cumulative"],
               "per_joule_cumulative_bits": last.get("mdl_eta_cumulative_bits_per_j"),
               "per_joule_marginal_bits": [e.get("mdl_eta_marginal_bits_per_j") for e in evals],
               "meaning": mdl_meaning(last["mdl_bits_cumulative"])}
    return {
        "definition": DEFINITION,
        "n_tokens": n_tokens,
        "information_bits_cumulative": last.get("bits_cumulative"),
        "information_per_joule_cumulative_bits": last.get("eta_cumulative_bits_per_j"),
        "information_per_joule_marginal_bits": [e["eta_marginal_bits_per_j"] for e in evals],
        "tokens_per_joule": last.get("tokens_per_j"),
        "joules_per_token": 1.0 / last["tokens_per_j"] if last.get("tokens_per_j") else None,
        "target_bits_per_joule": config.tscu.target_efficiency_bits_per_joule,
        "mdl": mdl,
    }


def build_analysis(history: dict[str, list[dict[str, Any]]], config: Config,
                   avg_power_watts: float | None = None,
                   n_tokens: int | None = None) -> dict[str, Any]:
    """Everything is derived from the step/eval history (which survives resumes), except
    the average power: energy over the whole wall time, evaluations included, which only
    the live telemetry knows. `n_tokens`: the N of information and ParamBPT."""
    steps, evals = history["steps"], history["evals"]
    bpts = [e["heldout_bpt"] for e in evals]
    target = resolved_target(steps, config)
    band = max(config.scu.deadband * 2, (target or 0.0) * 0.25)
    settled = steps[len(steps) // 4:]  # after warm-up
    durations = [s["step_s"] + (s.get("idle_s") or 0.0) for s in steps]
    measured = [(d, s) for d, s in zip(durations, steps, strict=True)
                if s.get("power_w") is not None]
    measured_s = sum(d for d, _ in measured)
    temps = _present(steps, "temp_c")
    energy = _present(steps, "energy_j")
    total_j = energy[-1] if energy else None
    over_s = sum(d for d, s in measured if s.get("over_budget"))
    efficient = [e for e in evals if e.get("eta_cumulative_bits_per_j") is not None]
    last_eff = efficient[-1] if efficient else {}  # the Landauer figure below
    compute_s = sum(s["step_s"] for s in steps)
    return {
        "heldout_bpt_initial": bpts[0] if bpts else None,
        "heldout_bpt_final": bpts[-1] if bpts else None,
        "heldout_bpt_best": min(bpts) if bpts else None,
        "heldout_bpt_reduction": (bpts[0] - bpts[-1]) if len(bpts) > 1 else None,
        "scu": {
            "mode": config.scu.mode,
            "target_s": target,
            "s": _stats([s["s"] for s in steps]),
            "target_s_setting": config.scu.target_s,
            "prior_center": config.scu.prior_center,
            "s_within_band_fraction_after_warmup": (
                sum(abs(s["s_smoothed"] - target) <= band for s in settled) / len(settled)
                if settled and target is not None else None),
            "band": band,
            "lambda": _stats([s["lambda_reg"] for s in steps]),
            "data_bpt": _stats([s["data_bpt"] for s in steps]),
            "param_bpt": _stats([s["param_bpt"] for s in steps]),
        },
        "steps": len(steps),
        "skipped_steps": sum(1 for s in steps if s["skipped"]),
        "tokens": steps[-1]["tokens"] if steps else 0,
        "tokens_per_second_mean": statistics.fmean([s["tokens_per_s"] for s in steps])
        if steps else None,
        "avg_power_watts": avg_power_watts,
        "avg_temperature_celsius": statistics.fmean(temps) if temps else None,
        "max_temperature_celsius": max(temps) if temps else None,
        "avg_landauer_efficiency": last_eff.get("landauer_efficiency"),
        "total_energy_joules": total_j,
        "total_energy_wh": total_j / 3600.0 if total_j is not None else None,
        "power_budget_watts": config.tscu.power_budget_watts,
        "governor_enabled": config.tscu.enabled,
        "time_over_budget_seconds": over_s if measured_s else None,
        "fraction_over_budget": over_s / measured_s if measured_s else None,
        "control_factor": _stats(_present(steps, "control_factor")),
        "idle_seconds_total": sum(_present(steps, "idle_s")) if steps else 0.0,
        "compute_fraction": compute_s / sum(durations) if steps and sum(durations) else None,
        "efficiency": _efficiency(efficient, config, n_tokens),
        "world_size": len(steps[-1]["node_power_w"]) if steps and steps[-1].get(
            "node_power_w") else 1,
        "nodes": _nodes(steps, durations),
        "telemetry_source": next((s["telemetry_source"] for s in reversed(steps)
                                  if s.get("telemetry_source")), None),
        "telemetry_kind": next((s["telemetry_kind"] for s in reversed(steps)
                                if s.get("telemetry_kind")), None),
        # what the model answered to the held-out prompts at each evaluation
        "samples": history.get("samples", []),
    }


def remove_run_outputs(run_dir: Path) -> None:
    """Delete an earlier run's outputs from `run_dir` (RUN_OUTPUTS), nothing else."""
    for name in RUN_OUTPUTS:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    logs = (run_dir / LOG_FILE).parent
    if logs.is_dir() and not any(logs.iterdir()):
        logs.rmdir()


def write_outputs(run_dir: Path, config: Config, history: dict[str, list[dict[str, Any]]],
                  summary: dict[str, Any], training_args: dict[str, Any]) -> None:
    atomic_write_json(run_dir / METRICS_FILE, history)
    analysis = build_analysis(history, config, summary.get("avg_power_watts"),
                              summary.get("information_tokens_n"))
    analysis["memory"] = {key: summary.get(key) for key in (
        "peak_memory_bytes", "peak_rss_bytes", "grad_checkpoint", "loss_chunk_tokens")}
    # Validation selected the best step; the test split (never selected on) is what
    # reports quote.
    analysis["test"] = summary.get("test")
    analysis["heldout_bpt_best_step"] = summary.get("best_step")
    analysis["scu"]["mode_setting"] = summary.get("scu_mode_setting", config.scu.mode)
    # the clock knob (frequency first) and, under objective "energy", its measured curve
    analysis["frequency_control"] = summary.get("frequency_control")
    atomic_write_json(run_dir / ANALYSIS_FILE, analysis)
    atomic_write_json(run_dir / SUMMARY_FILE, {"tscu_version": __version__, **summary})
    atomic_write_json(run_dir / CONFIG_FILE, to_dict(config))
    atomic_write_json(run_dir / ARGS_FILE, training_args)
