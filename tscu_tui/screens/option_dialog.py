"""A small modal dialog that picks one entry of a list: the base of the pickers."""

from __future__ import annotations

from typing import Generic, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

T = TypeVar("T")


class OptionDialog(ModalScreen[T | None], Generic[T]):
    """A title, a list and a key hint in a bordered box: up/down and enter pick (the
    `highlighted` entry first), escape dismisses with None. Subclasses say what a
    picked option's id gives (`result`)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", show=False)]
    DEFAULT_CSS = """
    OptionDialog { align: center middle; }
    OptionDialog > Vertical { width: 60; max-width: 95%; height: auto; padding: 0 1;
                              border: thick $primary; background: $panel; }
    OptionDialog .dialog-title { text-style: bold; margin-bottom: 1; }
    OptionDialog .dialog-hint { color: $text-muted; }
    OptionDialog OptionList { height: auto; max-height: 12; }
    """

    def __init__(self, *, prefix: str, title: str, options: list[Option], hint: str,
                 highlighted: int | None = None) -> None:
        super().__init__()
        self.prefix, self.title_text, self.hint = prefix, title, hint
        self.options, self.highlighted = options, highlighted

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id=f"{self.prefix}-title", classes="dialog-title",
                         markup=False)
            yield OptionList(*self.options, id=f"{self.prefix}-list")
            yield Static(self.hint, id=f"{self.prefix}-hint", classes="dialog-hint")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self.highlighted is not None:
            options.highlighted = self.highlighted
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.result(event.option.id or ""))

    def result(self, option_id: str) -> T:
        raise NotImplementedError
