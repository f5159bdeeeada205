"""The dataset screen: pick a source, preview it, prepare it with progress and cancel.

Every field edits the app's working config (`[data]`), validated with the config
loader's own rules and words, so the train screen trains on what was prepared
here. Preview and preparation run in thread workers outside the MLX group
(tokenizers only). They catch TscuError themselves and show its one line inline;
anything else reaches the app's error dialog.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Input, Label, ProgressBar, Select, Static
from textual.worker import Worker, WorkerState

from tscu_tui.engine.config import Config
from tscu_tui.engine.data import (
    DatasetMeta,
    PrepareCancelled,
    PreparedDataset,
    PrepareOptions,
)
from tscu_tui.engine.errors import TscuError
from tscu_tui.keys import bind
from tscu_tui.messages import ConfigChanged
from tscu_tui.screens.base import TscuScreen
from tscu_tui.screens.dataset_form import (
    BUILTIN_ALIASES,
    FIELDS,
    LABELS,
    PLACEHOLDERS,
    SOURCE_KINDS,
    field_help,
    in_fields,
    join_dataset,
    options_from_config,
    parse_field,
    split_dataset,
)
from tscu_tui.screens.dataset_messages import Prepared, Previewed, Progressed
from tscu_tui.screens.error import one_line
from tscu_tui.widgets.dataset_panels import (
    MetaPanel,
    PreviewPanel,
    example_text,
    progress_text,
)

IDLE_TOTAL = 100
PREP_GROUP = "dataset-prepare"
PREVIEW_GROUP = "dataset-preview"


class DatasetScreen(TscuScreen):
    CSS_PATH = "dataset.tcss"
    # Priority: a focused Input binds ctrl+e (end of line) and ctrl+x (cut) itself.
    BINDINGS = [
        bind("preview_dataset", "Preview", priority=True),
        bind("prepare_dataset", "Prepare", priority=True),
        bind("cancel_prepare", "Cancel", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.preparing = False
        self.previewing = False
        self.cancel = threading.Event()
        self.field_errors: dict[str, str] = {}  # input id -> loader-style message
        self._replace_confirmed: Path | None = None  # data.path the user agreed to replace
        self._own_config: Config | None = None  # the last config this screen set
        self._split: str | None = None
        self._split_started = 0.0

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="top"):
            with Grid(id="form"):
                yield Label(LABELS["source-kind"])
                yield Select([(label, kind) for kind, label in SOURCE_KINDS.items()],
                             allow_blank=False, compact=True, id="source-kind")
                for input_id in ("source-id", *FIELDS):
                    yield Label(LABELS[input_id])
                    key = FIELDS.get(input_id, "dataset")
                    yield Input(compact=True, id=input_id, tooltip=field_help(key),
                                placeholder=PLACEHOLDERS.get(input_id, ""))
                yield Label("Tokenizer of")
                yield Static("", id="model", markup=False)
            yield MetaPanel(id="meta")
        yield Static("", id="hint", markup=False)
        with Horizontal(id="progress-row"):
            # A known total while idle: an indeterminate bar animates, even in snapshots.
            yield ProgressBar(total=IDLE_TOTAL, show_eta=False, id="progress")
            yield Static("", id="readout", markup=False)
        yield Static("", id="status", markup=False)
        with VerticalScroll(id="preview-box"):
            yield PreviewPanel(id="preview")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#preview-box").border_title = "Preview"
        self._load_fields()
        meta = self._show_meta()
        self._show_ready()
        if not self._show_example(meta):
            self.query_one(PreviewPanel).show_hint("No preview yet.")

    def on_unmount(self) -> None:
        self.cancel.set()  # quitting mid-preparation: the engine removes its staging folder

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show only the keys that can act now."""
        if action == "prepare_dataset":
            return not self.preparing
        if action == "cancel_prepare":
            return self.preparing
        if action == "preview_dataset":
            return not self.previewing
        return True

    # -- fields ----------------------------------------------------------------------------

    def _load_fields(self) -> None:
        """Show the config's [data] values (on mount, or when the config was replaced)."""
        config = self.tscu.config
        select = self.query_one("#source-kind", Select)
        source = self.query_one("#source-id", Input)
        if join_dataset(str(select.value), source.value) != config.data.dataset:
            kind, text = split_dataset(config.data.dataset)
            select.value = kind
            if kind not in BUILTIN_ALIASES:  # a built-in keeps the id typed before, for later
                source.value = text
        source.disabled = str(select.value) in BUILTIN_ALIASES
        for input_id, key in FIELDS.items():
            value = getattr(config.data, key)
            if self._parsed(input_id) != value:
                self.query_one(f"#{input_id}", Input).value = str(value)
        self.query_one("#model", Static).update(config.model.name)

    def _parsed(self, input_id: str) -> Any:
        value, error = parse_field(FIELDS[input_id], self.query_one(f"#{input_id}", Input).value)
        return None if error else value

    @on(Select.Changed, "#source-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        kind = str(event.value)
        source = self.query_one("#source-id", Input)
        source.disabled = kind in BUILTIN_ALIASES
        self._field_edited("source-id")

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if event.input.id is not None:
            self._field_edited(event.input.id)

    @on(Input.Submitted)
    def _next_field(self) -> None:
        self.focus_next()  # enter moves on, as in a paper form

    def _field_edited(self, input_id: str) -> None:
        """Validate one field; a valid value goes straight into the working config."""
        if input_id == "source-id":
            kind = str(self.query_one("#source-kind", Select).value)
            key = "dataset"
            value, error = parse_field(key, join_dataset(
                kind, self.query_one("#source-id", Input).value))
        elif input_id in FIELDS:
            key = FIELDS[input_id]
            value, error = parse_field(key, self.query_one(f"#{input_id}", Input).value)
        else:
            return
        widget = self.query_one(f"#{input_id}", Input)
        widget.set_class(error is not None, "-invalid")
        if error is not None:
            self.field_errors[input_id] = error
        else:
            self.field_errors.pop(input_id, None)
            config = self.tscu.config
            if getattr(config.data, key) != value:
                self._replace_confirmed = None
                self._own_config = replace(config, data=replace(config.data, **{key: value}))
                self.tscu.set_config(self._own_config)
        self._show_hint()
        if not self.field_errors and self.query_one("#status").has_class("-blocked"):
            self._show_ready()  # the field that blocked preparing is fixed

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self._show_hint()

    def _show_hint(self) -> None:
        """The first field error in red, else what the focused field means."""
        hint = self.query_one("#hint", Static)
        if self.field_errors:
            hint.set_classes("-error")
            hint.update(next(iter(self.field_errors.values())))
            return
        focused = self.focused
        key = FIELDS.get(focused.id or "") if focused is not None else None
        if focused is not None and focused.id in ("source-id", "source-kind"):
            key = "dataset"
        hint.set_classes("")
        hint.update(field_help(key) if key else "")

    def on_config_changed(self, message: ConfigChanged) -> None:
        # After our own edit the fields are the truth (one may hold a half-typed, invalid
        # value the config does not have); a config replaced elsewhere is shown as it is.
        if self.tscu.config is not self._own_config:
            self._load_fields()
        self.query_one("#model", Static).update(self.tscu.config.model.name)
        self._show_meta()

    # -- prepared dataset --------------------------------------------------------------------

    def _show_meta(self) -> DatasetMeta | None:
        panel = self.query_one(MetaPanel)
        path = self.tscu.config.data.path
        if not Path(path).expanduser().exists():
            panel.show_missing(path)
            return None
        try:
            meta = PreparedDataset.open(path).meta
        except TscuError as exc:
            panel.show_error(in_fields(one_line(exc)))
            return None
        panel.show_meta(meta)
        return meta

    def _show_example(self, meta: DatasetMeta | None) -> bool:
        """A chat dataset's rendered example in the preview box, trained text highlighted."""
        example = example_text(meta) if meta is not None else None
        if example is None:
            return False
        self.query_one("#preview-box").border_title = "Prepared example: trained text highlighted"
        self.query_one(PreviewPanel).show_example(example)
        return True

    # -- actions ---------------------------------------------------------------------------

    def action_preview_dataset(self) -> None:
        if self.previewing or not self._fields_ok():
            return
        self.previewing = True
        self.refresh_bindings()
        self.query_one(PreviewPanel).show_hint(f"reading the first documents of "
                                               f"{self.tscu.config.data.dataset}...")
        if not self.preparing:  # the status line belongs to a running preparation
            self._set_status("previewing...")
        self._preview(options_from_config(self.tscu.config))

    def action_prepare_dataset(self) -> None:
        if self.preparing or not self._fields_ok():
            return
        out = Path(self.tscu.config.data.path).expanduser()
        if out.exists() and self.tscu.mlx_busy():  # a training may be reading that folder
            self._set_status(f"a training is running: {self.tscu.config.data.path} cannot be "
                             "replaced now; choose another output folder", "-error")
            return
        # Replacing a prepared dataset takes a second press; any other existing folder is
        # passed on with overwrite, and the engine refuses it with its own words.
        if (out / "meta.json").is_file() and self._replace_confirmed != out:
            self._replace_confirmed = out
            self._set_status(f"{self.tscu.config.data.path} already holds a prepared dataset: "
                             f"press {self._key('prepare_dataset')} again to replace it",
                             "-warning")
            return
        options = options_from_config(self.tscu.config, overwrite=out.exists())
        self._replace_confirmed = None
        self.preparing = True
        self.cancel = threading.Event()
        self._split = None
        self.query_one("#progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#readout", Static).update("")
        self._set_status(f"preparing {options.dataset} -> {self.tscu.config.data.path}...")
        self.refresh_bindings()
        self._prepare(options, self.cancel)

    def action_cancel_prepare(self) -> None:
        if self.preparing and not self.cancel.is_set():
            self.cancel.set()
            self._set_status("cancelling...")

    def _fields_ok(self) -> bool:
        if self.field_errors:
            self._set_status("fix the field marked in red first: "
                             + next(iter(self.field_errors.values())), "-error -blocked")
            return False
        return True

    # -- workers (threads, outside the MLX group: tokenizers only) ---------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group=PREVIEW_GROUP,
          name="Dataset preview")
    def _preview(self, options: PrepareOptions) -> None:
        from tscu_tui.engine.data.preview import preview_dataset

        _quiet_datasets()
        try:
            self.post_message(Previewed(preview_dataset(options)))
        except TscuError as exc:
            self.post_message(Previewed(None, in_fields(one_line(exc))))

    @work(thread=True, exclusive=True, exit_on_error=False, group=PREP_GROUP,
          name="Dataset preparation")
    def _prepare(self, options: PrepareOptions, cancel: threading.Event) -> None:
        from tscu_tui.engine.data import prepare_dataset

        _quiet_datasets()
        try:
            meta = prepare_dataset(options, lambda p: self.post_message(Progressed(p)),
                                   cancel)
        except PrepareCancelled as exc:
            self.post_message(Prepared(None, one_line(exc), cancelled=True))
        except TscuError as exc:
            self.post_message(Prepared(None, in_fields(one_line(exc))))
        else:
            self.post_message(Prepared(meta))

    # -- worker results ----------------------------------------------------------------------

    def on_progressed(self, message: Progressed) -> None:
        p = message.progress
        if p.split != self._split:  # the rate is per split: validation starts from zero
            self._split, self._split_started = p.split, time.monotonic()
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=p.total, progress=p.completed or 0)
        elapsed = time.monotonic() - self._split_started
        self.query_one("#readout", Static).update(progress_text(p, elapsed))

    def on_prepared(self, message: Prepared) -> None:
        self.preparing = False
        self.refresh_bindings()
        bar = self.query_one("#progress", ProgressBar)
        if message.meta is not None:
            bar.update(total=1, progress=1)
            self._set_status(f"done: dataset written to {self.tscu.config.data.path}",
                             "-success")
            self.query_one(MetaPanel).show_meta(message.meta)
            self._show_example(message.meta)
        else:
            bar.update(total=IDLE_TOTAL, progress=0)
            self._set_status(message.error, "-warning" if message.cancelled else "-error")
            self._show_meta()

    def on_previewed(self, message: Previewed) -> None:
        self.previewing = False
        self.refresh_bindings()
        panel = self.query_one(PreviewPanel)
        self.query_one("#preview-box").border_title = "Preview"
        if message.preview is not None:
            panel.show_preview(message.preview)
            if not self.preparing:
                self._show_ready()
        else:
            panel.show_hint("No preview.")
            self._set_status(message.error, "-error")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # An unexpected exception reaches the app's dialog (TscuScreen forwards the event
        # there, and Textual calls that handler too); here the screen only forgets the job.
        if event.state not in (WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if event.worker.group == PREP_GROUP:
            self.preparing = False
            self._set_status("preparation failed", "-error")
        elif event.worker.group == PREVIEW_GROUP:
            self.previewing = False
        self.refresh_bindings()

    # -- helpers -----------------------------------------------------------------------------

    def _show_ready(self) -> None:
        self._set_status(f"press {self._key('preview_dataset')} to preview, "
                         f"{self._key('prepare_dataset')} to prepare")

    def _set_status(self, line: str, kind: str = "") -> None:
        status = self.query_one("#status", Static)
        status.set_classes(kind)
        status.update(line)

    def _key(self, binding_id: str) -> str:
        binding = next(b for b in self.BINDINGS if b.id == binding_id)  # type: ignore[union-attr]
        return self.tscu.keymap_for(binding)  # type: ignore[arg-type]



def _quiet_datasets() -> None:
    # Before `datasets` is imported: its tqdm bars would write over the screen.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
