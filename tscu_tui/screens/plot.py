"""One train-screen chart as a full-size plot with axes (textual-plotext)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static
from textual_plotext import PlotextPlot

from tscu_tui.widgets.metric_chart import Reference


class PlotScreen(ModalScreen[None]):
    """A snapshot of a metric's history against step, with its reference lines."""

    BINDINGS = [Binding("escape,q,f", "dismiss", "Close", id="close_plot")]
    DEFAULT_CSS = """
    PlotScreen { align: center middle; }
    PlotScreen > Vertical { width: 95%; height: 90%; border: thick $accent;
                            background: $panel; }
    PlotScreen #plot-legend { height: auto; padding: 0 1; color: $text-muted; }
    PlotScreen PlotextPlot { height: 1fr; }
    """

    def __init__(self, title: str, unit: str, points: Sequence[tuple[int, float]],
                 references: Sequence[Reference]) -> None:
        super().__init__()
        self.plot_title = title
        self.unit = unit
        self.points = list(points)
        self.references = list(references)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._legend(), id="plot-legend", markup=False)
            yield PlotextPlot()
        yield Footer()

    def _legend(self) -> str:
        if not self.points:
            return f"{self.plot_title}: no data yet"
        values = [v for _, v in self.points]
        lines = [f"{self.plot_title}: {len(values)} points, steps {self.points[0][0]}-"
                 f"{self.points[-1][0]}, last {values[-1]:.4g}, range {min(values):.4g}-"
                 f"{max(values):.4g} {self.unit}".rstrip()]
        lines += [f"  {'limit' if r.limit else 'reference'}: {r.label} {r.value:g} {self.unit}"
                  .rstrip() for r in self.references]
        return "\n".join(lines)

    def on_mount(self) -> None:
        plt = self.query_one(PlotextPlot).plt
        plt.title(self.plot_title)
        plt.xlabel("step")
        plt.ylabel(self.unit or "value")
        if self.points:
            steps = [s for s, _ in self.points]
            plt.plot(steps, [v for _, v in self.points], marker="braille")
        for ref in self.references:
            plt.hline(ref.value, "red" if ref.limit else "orange")
