"""A small dialog that picks one of a config field's allowed values from a list."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets.option_list import Option

from tscu_tui.screens.option_dialog import OptionDialog


class ChoicePicker(OptionDialog[str]):
    """Up/down and enter pick a value (the current one is highlighted); escape keeps it."""

    def __init__(self, name: str, choices: Sequence[str], current: str) -> None:
        self.field_name = name
        self.choices = list(choices)
        self.current = current
        super().__init__(
            prefix="choice", title=f"{name}: pick a value", hint="enter pick   escape keep",
            options=[Option(choice + ("  (current)" if choice == current else ""), id=choice)
                     for choice in self.choices],
            highlighted=self.choices.index(current) if current in self.choices else None)

    def result(self, option_id: str) -> str:
        return option_id
