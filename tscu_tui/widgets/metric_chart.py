"""A bar chart of a metric's history with reference lines (budget, limits, targets).

Each column is a bucket of consecutive points (their mean), drawn as a bar in
eighth blocks from the bottom of the scale. The scale spans the data and every
reference value, so a budget above the data still shows where it lies; each
reference is a dotted line across the chart, a tint behind the bars it crosses. Cheap to
draw (no plotting library), so eight charts redraw twice a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

EIGHTHS = " ▁▂▃▄▅▆▇█"
REF_GLYPH = "┈"


@dataclass(frozen=True)
class Reference:
    """A horizontal line at `value`; `limit` marks a hard limit (drawn in the error colour)."""

    label: str
    value: float
    limit: bool = False


def buckets(values: Sequence[float], width: int) -> list[float]:
    """`values` reduced to at most `width` columns, each the mean of its slice."""
    if width <= 0 or not values:
        return []
    if len(values) <= width:
        return list(values)
    out = []
    for i in range(width):
        lo, hi = i * len(values) // width, (i + 1) * len(values) // width
        chunk = values[lo:max(hi, lo + 1)]
        out.append(sum(chunk) / len(chunk))
    return out


def scale(values: Sequence[float], references: Sequence[Reference]) -> tuple[float, float]:
    """(low, high) covering the data and the references, never zero-height."""
    points = [*values, *(r.value for r in references)]
    if not points:
        return 0.0, 1.0
    low, high = min(points), max(points)
    if high - low < 1e-12:
        pad = abs(high) * 0.05 or 1.0
        return low - pad, high + pad
    return low - (high - low) * 0.05, high


class MetricChart(Widget):
    """History as bars, references as dotted lines; `update(values, references)`."""

    COMPONENT_CLASSES = {"metric-chart--bar", "metric-chart--reference", "metric-chart--limit"}
    DEFAULT_CSS = """
    MetricChart { height: 1fr; min-height: 1; }
    MetricChart > .metric-chart--bar { color: $accent; }
    MetricChart > .metric-chart--reference { color: $warning; }
    MetricChart > .metric-chart--limit { color: $error; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values: list[float] = []
        self.references: list[Reference] = []

    def update(self, values: Sequence[float], references: Sequence[Reference]) -> None:
        self.values, self.references = list(values), list(references)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.size.height
        if width <= 0 or height <= 0:
            return Strip.blank(width)
        columns = buckets(self.values, width)
        low, high = scale(columns, self.references)
        levels = height * 8  # eighth-block resolution over the whole height
        row_from_bottom = height - 1 - y
        bar = self.get_component_rich_style("metric-chart--bar")
        refs = {}
        for ref in self.references:  # a reference occupies the row its value falls in
            level = (ref.value - low) / (high - low) * levels
            refs[min(int(level // 8), height - 1)] = ref
        ref = refs.get(row_from_bottom)
        ref_style = self.get_component_rich_style(
            "metric-chart--limit" if ref is not None and ref.limit else "metric-chart--reference")
        segments = []
        for x in range(width):
            glyph, style = " ", Style()
            if x < len(columns):
                filled = max(1, round((columns[x] - low) / (high - low) * levels))
                eighths = min(max(filled - row_from_bottom * 8, 0), 8)
                if eighths:
                    glyph, style = EIGHTHS[eighths], bar
            if ref is not None:  # the line runs on behind the bars, as a tint
                glyph, style = ((REF_GLYPH, ref_style) if glyph == " " else
                                (glyph, style + Style(bgcolor=ref_style.color)))
            segments.append(Segment(glyph, style))
        return Strip(segments, width).simplify()
