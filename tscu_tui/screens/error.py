"""A dialog with the one-line cause of a failure (never a traceback)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tscu_tui.engine.errors import TscuError, first_line


def one_line(error: BaseException) -> str:
    """The cause in one line: our errors speak for themselves, others name their type."""
    if isinstance(error, TscuError) or not str(error).strip():
        return first_line(error)
    return f"{type(error).__name__}: {first_line(error)}"


class ErrorDialog(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter", "dismiss", "Close", id="close_dialog")]
    DEFAULT_CSS = """
    ErrorDialog { align: center middle; }
    ErrorDialog > Vertical { width: 70; max-width: 95%; height: auto; padding: 1 2;
                             border: thick $error; background: $panel; }
    ErrorDialog #error-title { text-style: bold; color: $error; }
    ErrorDialog #error-cause { margin: 1 0; }
    ErrorDialog Button { width: 100%; }
    """

    def __init__(self, title: str, cause: str) -> None:
        super().__init__()
        self._title = title
        self._cause = cause

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._title, id="error-title")
            yield Static(self._cause, id="error-cause", markup=False)
            yield Button("Close", variant="error", id="error-close")

    def on_button_pressed(self) -> None:
        self.dismiss()
