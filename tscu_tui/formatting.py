"""Numbers as the screens and the headless display print them: n/a where there is no
reading (never a made-up number), durations and energies in readable units."""

from __future__ import annotations

import math


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
