"""How a run's recorded numbers read in the results table and the comparison.

One list of columns so the table, the sort and the side-by-side comparison
agree on names, units and formats. Missing readings show as n/a.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tscu_tui.engine.formatting import duration, fmt
from tscu_tui.engine.runs.reader import RunSummary

NAME_WIDTH = 30


def run_name(path: Path) -> str:
    """The path relative to the working directory when it is short, else its tail."""
    try:
        text = str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        text = str(path)
    if len(text) <= NAME_WIDTH:
        return text
    return f".../{path.parent.name}/{path.name}"[-NAME_WIDTH:]


def bits_per_j(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def telemetry(run: RunSummary) -> str:
    if run.telemetry_source is None:
        return "none"
    if run.telemetry_kind in (None, run.telemetry_source):
        return run.telemetry_source
    return f"{run.telemetry_source} ({run.telemetry_kind})"


def steps(run: RunSummary) -> str:
    if run.steps is None:
        return "n/a"
    return f"{run.steps}/{run.max_steps}" if run.max_steps else str(run.steps)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    text: Callable[[RunSummary], str]
    value: Callable[[RunSummary], float | str | None]  # what it sorts and differences by
    diff: str = ""  # format of the difference B - A ('' = not a number)


def _number(attr: str, spec: str, unit: str = "") -> tuple[Callable[[RunSummary], str],
                                                          Callable[[RunSummary], float | None]]:
    def value(run: RunSummary) -> float | None:
        return getattr(run, attr)

    return (lambda run: fmt(value(run), spec, unit)), value


COLUMNS: list[Column] = [
    Column("status", "status", lambda r: r.status, lambda r: r.status),
    Column("steps", "steps", steps, lambda r: r.steps, "+d"),
    Column("final", "final BPT", *_number("heldout_bpt_final", ".3f"), "+.3f"),
    Column("best", "best BPT", *_number("heldout_bpt_best", ".3f"), "+.3f"),
    Column("energy", "energy J", *_number("energy_j", ",.0f"), "+,.0f"),
    Column("watts", "avg W", *_number("avg_power_w", ".1f"), "+.1f"),
    Column("efficiency", "bits/J", lambda r: bits_per_j(r.efficiency_bits_per_j),
           lambda r: r.efficiency_bits_per_j, "+,.0f"),
    Column("duration", "time", lambda r: duration(r.duration_s), lambda r: r.duration_s, "+.0f"),
    Column("start", "start BPT", *_number("heldout_bpt_initial", ".3f"), "+.3f"),
    Column("peak", "peak °C", *_number("peak_temp_c", ".1f"), "+.1f"),
    Column("tokens", "tok/s", *_number("tokens_per_s", ",.0f"), "+,.0f"),
    Column("telemetry", "telemetry", telemetry, telemetry),
]


def difference(column: Column, a: RunSummary, b: RunSummary) -> str:
    """B - A in the column's units, with the relative change when A is not zero."""
    va, vb = column.value(a), column.value(b)
    if not column.diff:
        return "same" if va == vb else "differs"
    if not isinstance(va, int | float) or not isinstance(vb, int | float):
        return "n/a"
    delta = vb - va
    text = f"{delta:{column.diff}}" + (" s" if column.key == "duration" else "")
    if va and column.key not in ("steps",):
        text += f" ({delta / abs(va):+.0%})"
    return text


def sort_key(column: Column, reverse: bool) -> Callable[[RunSummary], tuple[int, float | str]]:
    """Missing values last in either direction."""
    def key(run: RunSummary) -> tuple[int, float | str]:
        value = column.value(run)
        if value is None:
            return (0 if reverse else 1, 0.0)
        return (1 if reverse else 0, value)
    return key


SortBy = tuple[str, bool] | None  # (column key, descending), None: by folder


def next_sort(sorted_by: SortBy) -> SortBy:
    """The next column ascending; after the last, back to the order by folder."""
    keys = [column.key for column in COLUMNS]
    at = keys.index(sorted_by[0]) + 1 if sorted_by else 0
    return (keys[at], False) if at < len(keys) else None


def reversed_sort(sorted_by: SortBy) -> SortBy:
    key, descending = sorted_by or (COLUMNS[0].key, False)
    return key, not descending


def sort_words(sorted_by: SortBy, next_key: str, reverse_key: str) -> str:
    keys = f"({next_key}: next column, {reverse_key}: reverse)"
    if sorted_by is None:
        return f"sorted by folder {keys}"
    key, descending = sorted_by
    label = next(column.label for column in COLUMNS if column.key == key)
    return f"sorted by {label}, {'descending' if descending else 'ascending'} {keys}"
