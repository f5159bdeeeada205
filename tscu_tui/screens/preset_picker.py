"""A small dialog that picks one of the shipped config presets."""

from __future__ import annotations

from textual.widgets.option_list import Option

from tscu_tui.engine.config.presets import Preset
from tscu_tui.screens.option_dialog import OptionDialog


class PresetPicker(OptionDialog[Preset]):
    """Up/down and enter pick a preset; escape picks none."""

    DEFAULT_CSS = """
    PresetPicker > Vertical { width: 72; }
    """

    def __init__(self, presets: list[Preset]) -> None:
        self.presets = {preset.name: preset for preset in presets}
        super().__init__(
            prefix="preset", title="Load a preset (replaces the working config; keys are kept)",
            hint="enter load   escape cancel",
            options=[Option(f"{p.name}: {p.description}", id=p.name)
                     for p in self.presets.values()])

    def result(self, option_id: str) -> Preset:
        return self.presets[option_id]
