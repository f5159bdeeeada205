"""Ask for the Hub repo to upload a run to (the token comes from the environment)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class UploadDialog(ModalScreen[str | None]):
    """Enter uploads to the typed repo id, escape cancels. Dismisses with the repo id."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel_upload")]
    DEFAULT_CSS = """
    UploadDialog { align: center middle; }
    UploadDialog > Vertical { width: 70; max-width: 95%; height: auto; padding: 1 2;
                              border: thick $accent; background: $panel; }
    UploadDialog #upload-title { text-style: bold; color: $accent; }
    UploadDialog #upload-hint { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, run: str, repo_id: str, private: bool) -> None:
        super().__init__()
        self._run = run
        self._repo_id = repo_id
        self._private = private

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Upload {self._run} to the Hugging Face Hub",
                         id="upload-title", markup=False)
            yield Input(self._repo_id, placeholder="USER/NAME", id="upload-repo")
            yield Static(f"{'private' if self._private else 'public'} repo (hub.private); "
                         "the token comes from HF_TOKEN or `hf auth login`. "
                         "enter uploads, escape cancels.", id="upload-hint", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        repo_id = event.value.strip()
        if not repo_id:
            self.notify("Type a repo id USER/NAME first.", severity="warning")
            return
        self.dismiss(repo_id)

    def action_cancel(self) -> None:
        self.dismiss(None)

