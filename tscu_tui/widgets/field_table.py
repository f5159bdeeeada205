"""One config section as a table: changed marker, field name, value."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

from tscu_tui.engine.config.edit import value_text
from tscu_tui.engine.config.load import section_fields

MAX_VALUE_WIDTH = 40  # longer values are cut here; the editor shows them whole


def full(value: Any) -> str:
    return value_text(value) if value != "" else '""'


def shown(value: Any) -> str:
    text = full(value)
    return text if len(text) <= MAX_VALUE_WIDTH else text[:MAX_VALUE_WIDTH - 1] + "…"


class FieldTable(DataTable[str]):
    """Rows keyed by field name; `*` marks a value that differs from the saved one."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")

    def show(self, section: object, saved: object) -> None:
        """Fill with every field of `section`, keeping the cursor row."""
        row = self.cursor_row
        self.clear(columns=True)  # columns as wide as this section needs
        self.add_column(" ", key="mark", width=1)
        self.add_column("field", key="key")
        self.add_column("value", key="value")
        for key in section_fields(section):
            value = getattr(section, key)
            self.add_row(mark(value, getattr(saved, key)), key, shown(value), key=key)
        self.move_cursor(row=min(max(row, 0), self.row_count - 1))

    def update_field(self, key: str, value: Any, saved: Any) -> None:
        self.update_cell(key, "mark", mark(value, saved))
        self.update_cell(key, "value", shown(value), update_width=True)

    @property
    def cursor_key(self) -> str | None:
        if self.row_count == 0:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)


def mark(value: Any, saved: Any) -> str:
    return "*" if value != saved else " "
