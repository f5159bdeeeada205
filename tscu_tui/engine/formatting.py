"""Numbers as the screens and the headless display print them: n/a where there is no
reading (never a made-up number), durations and energies in readable units."""

from __future__ import annotations

import math

from tscu_tui.engine.events import EvalEvent
from tscu_tui.engine.telemetry.efficiency import mdl_meaning


def fmt(value: float | None, spec: str, unit: str = "") -> str:
    """`value` formatted, or n/a when there is no reading (never a made-up number)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:{spec}}{unit}"


def s_target(value: float | str | None) -> str:
    """S* as shown: a number, or "auto" while (or as configured) it is not resolved."""
    return "auto" if value is None or isinstance(value, str) else f"{value:g}"


def duration(seconds: float | None) -> str:
    """`1h05m` or `4m07s`; n/a when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def energy(joules: float) -> str:
    return f"{joules / 1000:.1f} kJ" if joules >= 1000 else f"{joules:.0f} J"


def signed_bits(bits: float) -> str:
    """`+3.41 Mbit`, `-820 bit`: information gained, with its sign."""
    size = abs(bits)
    for limit, unit in ((1e9, "Gbit"), (1e6, "Mbit"), (1e3, "kbit")):
        if size >= limit:
            return f"{bits / limit:+.3g} {unit}"
    return f"{bits:+.3g} bit"


def information(event: EvalEvent) -> str:
    """What an evaluation says about information per joule: the bits learned about the
    data since the first evaluation and per joule, and, with the penalty on, the MDL
    view with its sign in words. Empty where nothing was measured."""
    if event.eta_cumulative_bits_per_j is None:
        return ""
    if event.bits_cumulative is None:  # a run recorded before the bits were
        return f"{event.eta_cumulative_bits_per_j:.3g} bits/J"
    text = (f"learned {signed_bits(event.bits_cumulative)}, "
            f"{event.eta_cumulative_bits_per_j:.3g} bits/J "
            f"(last interval {fmt(event.eta_marginal_bits_per_j, '.3g')})")
    if event.mdl_eta_cumulative_bits_per_j is not None:
        text += (f"; MDL view {event.mdl_eta_cumulative_bits_per_j:.3g} bits/J: "
                 f"{mdl_meaning(event.mdl_bits_cumulative)}")
    return text
