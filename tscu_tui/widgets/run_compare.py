"""Two runs side by side: every column of the results table, and B - A."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tscu_tui.engine.runs.reader import RunSummary
from tscu_tui.widgets.run_columns import COLUMNS, difference, run_name


class RunCompareView(Vertical):
    BINDINGS = [Binding("escape", "screen.back", "Back")]  # to the runs list
    DEFAULT_CSS = """
    RunCompareView #compare-title { height: 1; padding: 0 1; color: $accent; }
    RunCompareView DataTable { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="compare-title", markup=False)
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)

    def show(self, a: RunSummary, b: RunSummary) -> None:
        self.query_one("#compare-title", Static).update(
            f"A {run_name(a.path)}  vs  B {run_name(b.path)}")
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        table.add_columns("", "A", "B", "B - A")
        table.add_row("run", run_name(a.path), run_name(b.path), "", key="run")
        for column in COLUMNS:
            table.add_row(column.label, column.text(a), column.text(b),
                          difference(column, a, b), key=column.key)
        table.add_row("governor", _on_off(a.governor_enabled), _on_off(b.governor_enabled),
                      "same" if a.governor_enabled == b.governor_enabled else "differs",
                      key="governor")
        table.add_row("base model", a.base_model or "n/a", b.base_model or "n/a",
                      "same" if a.base_model == b.base_model else "differs", key="model")


def _on_off(value: bool | None) -> str:
    return "n/a" if value is None else ("on" if value else "off")
