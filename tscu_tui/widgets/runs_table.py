"""The results screen's list of runs: one row a run, a mark column, sortable columns."""

from __future__ import annotations

from pathlib import Path

from textual.binding import Binding
from textual.widgets import DataTable

from tscu_tui.engine.runs.reader import RunSummary
from tscu_tui.widgets.run_columns import COLUMNS, run_name, sort_key


class RunsTable(DataTable[str]):
    """The runs list; enter opens the run under the cursor (shown in the footer)."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    def add_run_columns(self) -> None:
        self.add_column("", key="mark")
        self.add_column("run", key="run")
        for column in COLUMNS:
            self.add_column(column.label, key=column.key)

    def fill(self, runs: list[RunSummary], sorted_by: tuple[str, bool] | None,
             marked: list[Path]) -> None:
        """Redraw the rows (sorted by `sorted_by`, column key and descending), keeping the
        cursor on the run it was on; marked runs show A and B."""
        current = self.run_under_cursor(runs)
        self.clear()
        rows = list(runs)
        if sorted_by is not None:
            key, reverse = sorted_by
            column = next(c for c in COLUMNS if c.key == key)
            rows.sort(key=sort_key(column, reverse), reverse=reverse)
        for run in rows:
            mark = "AB"[marked.index(run.path)] if run.path in marked else ""
            self.add_row(mark, run_name(run.path), *(column.text(run) for column in COLUMNS),
                         key=str(run.path))
        if current is not None and current.path in {run.path for run in rows}:
            self.move_cursor(row=self.get_row_index(str(current.path)))

    def run_under_cursor(self, runs: list[RunSummary]) -> RunSummary | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return next((run for run in runs if str(run.path) == key), None)
