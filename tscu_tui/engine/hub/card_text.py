"""Numbers as a model card writes them: "not recorded" where the run has none."""

from __future__ import annotations

from typing import Any


def card_value(value: Any, spec: str = ".4g", unit: str = "") -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    text = format(value, spec)
    return f"{text} {unit}".rstrip()


def stats_line(stats: dict[str, float] | None, spec: str = ".4g") -> str:
    if not stats:
        return "not recorded"
    return (f"first {format(stats['first'], spec)}, last {format(stats['last'], spec)}, "
            f"mean {format(stats['mean'], spec)}, min {format(stats['min'], spec)}, "
            f"max {format(stats['max'], spec)}")


def percent(fraction: float | None) -> str | None:
    return None if fraction is None else f"{fraction * 100:.0f} %"
