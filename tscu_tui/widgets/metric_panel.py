"""A named metric: its latest value, the range its history spans, and a chart.

The chart draws the history with the panel's reference lines (a power budget,
a temperature limit, a target), so whether the control holds can be seen;
`history()` gives (step, value) pairs for the full-size plot.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from tscu_tui.widgets.metric_chart import MetricChart, Reference

HISTORY = 300  # points kept per chart (the chart buckets them to its width)


class MetricPanel(Vertical, can_focus=True):
    """Title and value on one line, range and references on the next, the chart below."""

    DEFAULT_CSS = """
    MetricPanel { height: 1fr; min-height: 3; padding: 0 1; }
    MetricPanel:focus { background: $boost; }
    MetricPanel > Horizontal { height: 1; }
    MetricPanel .metric-title { width: 1fr; color: $text-muted; }
    MetricPanel:focus .metric-title { color: $accent; text-style: bold; }
    MetricPanel .metric-value { width: 18; text-align: right; text-style: bold; }
    MetricPanel .metric-range { height: 1; color: $text-muted; }
    """

    def __init__(self, title: str, *, id: str, unit: str = "", spec: str = ".3g",
                 history: int = HISTORY) -> None:
        super().__init__(id=id)
        self.label = title
        self.unit = unit
        self.spec = spec
        self.values: deque[float] = deque(maxlen=history)
        self.steps: deque[int] = deque(maxlen=history)
        self.references: list[Reference] = []
        self.readout = "n/a"

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static(self.label, classes="metric-title", markup=False)
            yield Static(self.readout, classes="metric-value", markup=False)
        yield Static("", classes="metric-range", markup=False)
        yield MetricChart()

    def record(self, value: float | None, readout: str, step: int | None = None) -> None:
        """Add a point (None: no reading, nothing plotted) and set the readout text."""
        if value is not None and math.isfinite(value):
            self.values.append(value)
            self.steps.append(step if step is not None else len(self.steps))
        self.readout = readout

    def set_references(self, references: Sequence[Reference]) -> None:
        self.references = list(references)

    def history(self) -> list[tuple[int, float]]:
        return list(zip(self.steps, self.values, strict=True))

    def range_text(self) -> str:
        """'5.0-40.0 W ┈ budget 24': the span of the history and the references."""
        parts = []
        if self.values:
            low, high = min(self.values), max(self.values)
            span = f"{format(low, self.spec)}-{format(high, self.spec)}"
            parts.append(f"{span} {self.unit}".rstrip())
        unit = "" if parts else self.unit  # said once, after the range when there is one
        parts += [f"┈ {ref.label} {ref.value:g} {unit}".rstrip() for ref in self.references]
        return " ".join(parts)

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        _set(self.query_one(".metric-value", Static), self.readout)
        _set(self.query_one(".metric-range", Static), self.range_text())
        self.query_one(MetricChart).update(self.values, self.references)

    def clear(self) -> None:
        self.values.clear()
        self.steps.clear()
        self.readout = "n/a"
        self.redraw()


def _set(widget: Static, text: str) -> None:
    if str(widget.content) != text:
        widget.update(text, layout=False)  # fixed height: no relayout per step
