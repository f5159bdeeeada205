"""The config screen: every field by section, edited from the keyboard, saved with comments.

Sections on the left, the section's fields on the right (`*` marks a value that
differs from the saved file). Enter edits the highlighted field in place (a bool
toggles, a field with a fixed set of values opens a list to pick from), every
keystroke is checked with the loader's own rules and wording, escape cancels, and
an invalid value cannot be committed. A committed edit becomes the app's working
config at once; ctrl+s writes it to the config file keeping its comments. Below:
the field's help, cross-field problems and the run's estimated peak memory against
free memory.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from tscu_tui.engine.config import Config, load_config, save_config, sections
from tscu_tui.engine.config.edit import parse_text, value_text
from tscu_tui.engine.config.load import (
    cross_checks,
    default_of,
    describe_allowed,
    field_problem,
    field_type,
    section_fields,
)
from tscu_tui.engine.config.presets import Preset, list_presets
from tscu_tui.engine.errors import ConfigError
from tscu_tui.engine.models.memory import estimate_memory
from tscu_tui.keys import bind
from tscu_tui.messages import ConfigChanged
from tscu_tui.screens.base import TscuScreen
from tscu_tui.screens.choice_picker import ChoicePicker
from tscu_tui.screens.preset_picker import PresetPicker
from tscu_tui.widgets.field_table import FieldTable, full


def saved_config(config_path: object, fallback: Config) -> Config:
    """The config file's values (what `*` compares with); `fallback` when unreadable."""
    try:
        return load_config(config_path)  # type: ignore[arg-type]
    except ConfigError:
        return deepcopy(fallback)


class ConfigScreen(TscuScreen):
    CSS_PATH = "config.tcss"
    BINDINGS = [
        bind("save_config", "Save"),
        bind("load_preset", "Preset"),
        bind("revert_field", "Revert field"),
        Binding("escape", "cancel_edit", "Cancel edit", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.working = Config()
        self.saved = Config()
        self.section = "model"
        self.editing: str | None = None  # key of the field in the editor

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            yield OptionList(*[Option(name, id=name) for name in sections(Config())],
                             id="sections")
            with Vertical(id="fields-pane"):
                yield FieldTable(id="fields")
                with Vertical(id="editor"):
                    yield Input(id="editor-input", select_on_focus=False)
                    yield Static(id="editor-message", markup=False)
        yield Static(id="help", markup=False)
        yield Static(id="problems", markup=False)
        yield Static(id="memory", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#editor").display = False
        self.working = deepcopy(self.tscu.config)
        self.saved = saved_config(self.tscu.config_path, self.tscu.config)
        self.query_one("#sections", OptionList).highlighted = 0
        self.refresh_all()

    # -- reading the state -------------------------------------------------------------------

    def section_object(self, name: str | None = None) -> object:
        return getattr(self.working, name or self.section)

    @property
    def table(self) -> FieldTable:
        return self.query_one("#fields", FieldTable)

    def focused_key(self) -> str | None:
        return self.table.cursor_key

    def changed(self, section: str, key: str) -> bool:
        return bool(getattr(getattr(self.working, section), key)
                    != getattr(getattr(self.saved, section), key))

    # -- drawing -----------------------------------------------------------------------------

    def refresh_all(self) -> None:
        self.fill_table()
        self.refresh_sections()
        self.refresh_status()

    def fill_table(self) -> None:
        self.table.show(self.section_object(), getattr(self.saved, self.section))
        self.query_one("#fields-pane").border_title = (
            f"{self.section} ({self.table.row_count} fields)")
        self.show_help()

    def refresh_row(self, key: str) -> None:
        self.table.update_field(key, getattr(self.section_object(), key),
                                getattr(getattr(self.saved, self.section), key))

    def refresh_sections(self) -> None:
        options = self.query_one("#sections", OptionList)
        for name, section in sections(self.working).items():
            dirty = any(self.changed(name, key) for key in section_fields(section))
            options.replace_option_prompt(name, f"{name} *" if dirty else name)

    def show_help(self) -> None:
        key = self.focused_key()
        if key is None:
            return
        section = self.section_object()
        help_text = section_fields(section)[key].metadata["help"]
        saved = getattr(getattr(self.saved, self.section), key)
        in_file = f" Saved: {full(saved)}." if self.changed(self.section, key) else ""
        self.query_one("#help", Static).update(
            f"{self.section}.{key}: {help_text} Allowed: {describe_allowed(section, key)}. "
            f"Default: {full(default_of(section, key))}.{in_file}")

    def refresh_status(self) -> None:
        problems = [p.removeprefix("working config: ")
                    for p in cross_checks(self.working, "working config")]
        widget = self.query_one("#problems", Static)
        widget.update("\n".join(problems))
        widget.display = bool(problems)
        memory = self.query_one("#memory", Static)
        estimate = estimate_memory(self.working)
        if estimate is None:
            memory.update(f"Peak memory: unknown offline for {self.working.model.name} "
                          "(no config.json on this machine)")
            memory.set_class(False, "-too-big")
            return
        memory.update(f"Memory: {estimate.describe()}")
        memory.tooltip = estimate.breakdown()
        memory.set_class(not estimate.fits, "-too-big")

    # -- navigation --------------------------------------------------------------------------

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "sections" and event.option.id != self.section:
            self.cancel_edit()
            self.section = event.option.id or "model"
            self.table.move_cursor(row=0)
            self.fill_table()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "sections":
            self.table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_help()

    # -- editing -----------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        section = self.section_object()
        if field_type(section, key) is bool:
            self.commit(key, not getattr(section, key))
            return
        choices = section_fields(section)[key].metadata.get("choices")
        if choices and not isinstance(getattr(section, key), list):  # picked, never typed
            self.app.push_screen(ChoicePicker(f"{self.section}.{key}", choices,
                                              getattr(section, key)),
                                 lambda value: self._picked(key, value))
            return
        self.editing = key
        editor = self.query_one("#editor-input", Input)
        editor.value = value_text(getattr(section, key))
        self.query_one("#editor").display = True
        editor.focus()
        editor.select_all()
        self.check_editor(editor.value)

    def _picked(self, key: str, value: str | None) -> None:
        if value is not None and value != getattr(self.section_object(), key):
            self.commit(key, value)
        self.table.focus()

    def problem(self, key: str, text: str) -> str | None:
        section = self.section_object()
        return field_problem(self.section, section, key, parse_text(section, key, text))

    def check_editor(self, text: str) -> str | None:
        if self.editing is None:
            return None
        problem = self.problem(self.editing, text)
        message = self.query_one("#editor-message", Static)
        message.update(problem or f"{self.section}.{self.editing}: enter keeps it, "
                                  "escape cancels")
        message.set_class(problem is not None, "-invalid")
        return problem

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "editor-input":
            self.check_editor(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "editor-input" or self.editing is None:
            return
        if self.check_editor(event.value) is not None:
            self.app.bell()
            return
        key = self.editing
        self.cancel_edit()
        self.commit(key, parse_text(self.section_object(), key, event.value))

    def cancel_edit(self, *, focus_table: bool = True) -> None:
        if self.editing is None:
            return
        self.editing = None
        self.query_one("#editor").display = False
        if focus_table:
            self.table.focus()

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        if event.widget.id == "editor-input":  # tabbed or clicked away: drop the edit
            self.cancel_edit(focus_table=False)

    def action_cancel_edit(self) -> None:
        self.cancel_edit()

    def commit(self, key: str, value: Any) -> None:
        """Put a checked value into the working config and share it with the app."""
        setattr(self.section_object(), key, value)
        self.publish()
        self.refresh_row(key)
        self.refresh_sections()
        self.refresh_status()
        self.show_help()

    def publish(self) -> None:
        self.tscu.set_config(deepcopy(self.working))

    def on_config_changed(self, message: ConfigChanged) -> None:
        if self.tscu.config != self.working:  # replaced elsewhere, not our own edit
            self.working = deepcopy(self.tscu.config)
            self.refresh_all()

    # -- actions -----------------------------------------------------------------------------

    def action_revert_field(self) -> None:
        """Put the highlighted field back to its value in the saved file."""
        key = self.editing or self.focused_key()
        if key is None:
            return
        self.cancel_edit()
        self.commit(key, deepcopy(getattr(getattr(self.saved, self.section), key)))

    def action_save_config(self) -> None:
        problems = cross_checks(self.working, str(self.tscu.config_path))
        if problems:
            self.tscu.show_error("Config not saved", problems[0])
            return
        path = self.tscu.config_path
        try:
            save_config(path, self.working)
        except OSError as exc:
            self.tscu.show_error("Config not saved", f"cannot write {path}: {exc.strerror}")
            return
        self.saved = deepcopy(self.working)
        self.publish()
        self.refresh_all()
        self.notify(f"saved to {path}")

    def action_load_preset(self) -> None:
        self.cancel_edit()
        self.app.push_screen(PresetPicker(list_presets()), self.load_preset)

    def load_preset(self, preset: Preset | None) -> None:
        if preset is None:
            return
        try:
            config = load_config(preset.path)
        except ConfigError as exc:
            self.tscu.show_error(f"Preset {preset.name} is invalid", exc.problems[0])
            return
        config.keys = deepcopy(self.working.keys)  # a preset is about training, not keys
        self.working = config
        self.publish()
        self.refresh_all()
        self.notify(f"preset {preset.name} loaded; save to keep it")
