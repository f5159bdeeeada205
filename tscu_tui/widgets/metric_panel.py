"""A named metric: its latest value as text, its history as a sparkline."""

from __future__ import annotations

import math
from collections import deque

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

HISTORY = 300  # points kept per chart (the sparkline buckets them to its width)


class MetricPanel(Vertical):
    """Title and readout on one line, a sparkline of the history below."""

    DEFAULT_CSS = """
    MetricPanel { height: 1fr; min-height: 2; padding: 0 1; }
    MetricPanel > Horizontal { height: 1; }
    MetricPanel .metric-title { width: 1fr; color: $text-muted; }
    MetricPanel .metric-value { width: 20; text-align: right; text-style: bold; }
    MetricPanel Sparkline { height: 1fr; min-height: 1; }
    """

    def __init__(self, title: str, *, id: str, history: int = HISTORY) -> None:
        super().__init__(id=id)
        self._title = title
        self.values: deque[float] = deque(maxlen=history)
        self.readout = "n/a"

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static(self._title, classes="metric-title", markup=False)
            yield Static(self.readout, classes="metric-value", markup=False)
        yield Sparkline([], summary_function=max)

    def record(self, value: float | None, readout: str) -> None:
        """Add a point (None: no reading, nothing plotted) and set the readout text."""
        if value is not None and math.isfinite(value):
            self.values.append(value)
        self.readout = readout

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        value = self.query_one(".metric-value", Static)
        if str(value.content) != self.readout:
            value.update(self.readout, layout=False)  # fixed width: no relayout per step
        sparkline = self.query_one(Sparkline)
        if len(sparkline.data or ()) != len(self.values) or self.values and (
                sparkline.data[-1] != self.values[-1]):
            sparkline.data = list(self.values)

    def clear(self) -> None:
        self.values.clear()
        self.readout = "n/a"
        self.redraw()
