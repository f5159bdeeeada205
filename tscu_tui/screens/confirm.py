"""A yes/no question before something costly (a run that may not fit in memory)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS = [Binding("escape,n", "answer(False)", "Cancel", id="confirm_no"),
                Binding("y", "answer(True)", "Go ahead", id="confirm_yes")]
    DEFAULT_CSS = """
    ConfirmDialog { align: center middle; }
    ConfirmDialog > Vertical { width: 72; max-width: 95%; height: auto; padding: 1 2;
                               border: thick $warning; background: $panel; }
    ConfirmDialog #confirm-title { text-style: bold; color: $warning; }
    ConfirmDialog #confirm-text { margin: 1 0; }
    ConfirmDialog Horizontal { height: auto; }
    ConfirmDialog Button { width: 1fr; }
    """

    def __init__(self, title: str, text: str, yes: str = "Start anyway (y)",
                 no: str = "Cancel (n)") -> None:
        super().__init__()
        self._title, self._text, self._yes, self._no = title, text, yes, no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._title, id="confirm-title", markup=False)
            yield Static(self._text, id="confirm-text", markup=False)
            with Horizontal():
                yield Button(self._no, id="confirm-no")
                yield Button(self._yes, variant="warning", id="confirm-yes")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()  # the safe answer is the default

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")
