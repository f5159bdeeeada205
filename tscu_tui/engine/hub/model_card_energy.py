"""The model card's lines on the clock knob: which one, where it ended, and under
`tscu.objective = "energy"` the measured J/token curve and the setting kept.

Read from the analysis JSON's `frequency_control` (written by `train.outputs`);
nothing when the run drove no knob.
"""

from __future__ import annotations

from typing import Any


def _speed(point: dict[str, Any]) -> str:
    speed = point.get("speed")
    return f"{speed:.2f} f_max" if speed is not None else f"level {point.get('level', 0):.2f}"


def energy_lines(analysis: dict[str, Any]) -> list[str]:
    """Markdown lines for the card's energy section (empty without a clock knob)."""
    freq = analysis.get("frequency_control")
    if not freq:
        return []
    simulated = " (the simulated plant's clock: a model, nothing real was changed)" if freq.get(
        "simulated") else ""
    lines = [f"- **Clock (frequency first)**: `{freq.get('actuator')}`{simulated}, "
             f"ended at {_speed(freq)}; restored when the run ended"]
    profile = freq.get("energy_profile")
    if not profile:
        return lines
    curve = profile.get("curve") or []
    chosen = profile.get("chosen")
    if not curve or not chosen:
        return [*lines, "- **Energy objective**: the profile did not finish; the budget "
                        "alone set the clock"]
    base = curve[0]
    d_j = chosen["joules_per_token"] / base["joules_per_token"] - 1
    d_r = chosen["tokens_per_s"] / base["tokens_per_s"] - 1
    lines.append(f"- **Energy objective**: kept {_speed(chosen)}, "
                 f"{chosen['joules_per_token']:.4g} J/token ({d_j:+.1%} against "
                 f"{_speed(base)}) at {d_r:+.1%} tokens/s, within max slowdown "
                 f"{profile.get('max_slowdown', 0):.0%} of the fastest setting the budget "
                 f"allows; measured in the run ({profile.get('warmup_steps')} warm-up + "
                 f"{profile.get('measure_steps')} measured steps per setting):")
    lines += ["", "| clock | J/token | tokens/s | W |", "|---|---|---|---|"]
    lines += [f"| {_speed(p)} | {p['joules_per_token']:.4g} | {p['tokens_per_s']:.4g} | "
              f"{p['power_w']:.3g} |" for p in curve]
    return lines
