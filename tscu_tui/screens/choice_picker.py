"""A small dialog that picks one of a config field's allowed values from a list."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class ChoicePicker(ModalScreen[str | None]):
    """Up/down and enter pick a value (the current one is highlighted); escape keeps it."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", show=False)]
    DEFAULT_CSS = """
    ChoicePicker { align: center middle; }
    ChoicePicker > Vertical { width: 60; max-width: 95%; height: auto; padding: 0 1;
                              border: thick $primary; background: $panel; }
    ChoicePicker #choice-title { text-style: bold; margin-bottom: 1; }
    ChoicePicker #choice-hint { color: $text-muted; }
    ChoicePicker OptionList { height: auto; max-height: 12; }
    """

    def __init__(self, name: str, choices: Sequence[str], current: str) -> None:
        super().__init__()
        self.field_name = name
        self.choices = list(choices)
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"{self.field_name}: pick a value", id="choice-title", markup=False)
            yield OptionList(*[Option(choice + ("  (current)" if choice == self.current
                                                else ""), id=choice)
                               for choice in self.choices], id="choice-list")
            yield Static("enter pick   escape keep", id="choice-hint")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self.current in self.choices:
            options.highlighted = self.choices.index(self.current)
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)
