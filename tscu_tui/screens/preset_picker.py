"""A small dialog that picks one of the shipped config presets."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tscu_tui.engine.config.presets import Preset


class PresetPicker(ModalScreen[Preset | None]):
    """Up/down and enter pick a preset; escape picks none."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", show=False)]
    DEFAULT_CSS = """
    PresetPicker { align: center middle; }
    PresetPicker > Vertical { width: 72; max-width: 95%; height: auto; padding: 0 1;
                              border: thick $primary; background: $panel; }
    PresetPicker #preset-title { text-style: bold; margin-bottom: 1; }
    PresetPicker #preset-hint { color: $text-muted; }
    PresetPicker OptionList { height: auto; max-height: 12; }
    """

    def __init__(self, presets: list[Preset]) -> None:
        super().__init__()
        self.presets = {preset.name: preset for preset in presets}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Load a preset (replaces the working config; keys are kept)",
                         id="preset-title")
            yield OptionList(*[Option(f"{p.name}: {p.description}", id=p.name)
                               for p in self.presets.values()], id="preset-list")
            yield Static("enter load   escape cancel", id="preset-hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.presets[event.option.id or ""])
