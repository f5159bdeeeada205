"""The dataset screen's fields and how they map to `[data]` (pure, tested without a terminal)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tscu_tui.engine.config import Config, DataConfig, check_value
from tscu_tui.engine.config.load import field_problem, field_type, section_fields
from tscu_tui.engine.data import PrepareOptions

#: Select value -> label; the first four are built-in names that need no id or path
SOURCE_KINDS = {"pydoc": "Python docs (offline)", "wikitext": "WikiText-103",
                "wikitext-2": "WikiText-2", "c4": "C4 (en, streamed)", "hub": "Hugging Face id",
                "local": "Local file/folder"}
BUILTIN_ALIASES = {"pydoc": "pydoc", "wikitext": "wikitext", "wikitext-103": "wikitext",
                   "wikitext-2": "wikitext-2", "c4": "c4"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

#: input id -> [data] key, in screen order (the source id/path is handled with its kind)
FIELDS = {"dataset-config": "dataset_config", "text-column": "text_column",
          "block-size": "block_size", "max-tokens": "max_tokens",
          "validation-fraction": "validation_fraction", "test-fraction": "test_fraction",
          "output-path": "path"}
LABELS = {"source-kind": "Source", "source-id": "Id or path", "dataset-config": "Config name",
          "text-column": "Text column", "block-size": "Block size", "max-tokens": "Token limit",
          "validation-fraction": "Validation", "test-fraction": "Test",
          "output-path": "Output folder"}
PLACEHOLDERS = {"source-id": "owner/name or a path", "dataset-config": "default",
                "max-tokens": "0 = no limit"}
#: strings the loader accepts empty but a preparation cannot use
REQUIRED = ("dataset", "text_column", "path")


# -- fields <-> config (pure, tested without a terminal) ---------------------------------------

def split_dataset(dataset: str) -> tuple[str, str]:
    """data.dataset -> (source kind, id or path); built-in names have no id."""
    name = dataset.strip()
    builtin = BUILTIN_ALIASES.get(name.lower())
    if builtin is not None:
        return builtin, ""
    if not Path(name).expanduser().exists() and _HUB_ID.match(name):
        return "hub", name
    return "local", name


def join_dataset(kind: str, text: str) -> str:
    return kind if kind in BUILTIN_ALIASES else text.strip()


def parse_field(key: str, text: str) -> tuple[Any, str | None]:
    """Text typed for data.`key` -> (value, None), or (raw, the loader's one-line error)."""
    section = DataConfig()
    kind = field_type(section, key)
    raw = text.strip()
    value: Any = raw
    try:
        if kind is int:
            value = int(raw)
        elif kind is float:
            value = float(raw)
    except ValueError:
        pass  # left a string: check_value rejects it with the field's words
    problem = field_problem("data", section, key, value)
    if problem is not None:
        return value, problem
    value, _ = check_value(section, key, value)  # coerced (int -> float where needed)
    if key in REQUIRED and not value:
        return value, f"data.{key} is empty: it must be {_required_words(key)}"
    return value, None


def _required_words(key: str) -> str:
    return {"dataset": "a Hugging Face id (owner/name) or a local path",
            "text_column": "a column name", "path": "a folder to write"}[key]


def in_fields(message: str) -> str:
    """An engine message (naming config keys) in this screen's words: the field's label,
    then its key, e.g. 'Token limit (data.max_tokens) must be a positive integer'."""
    labels = {f"data.{key}": LABELS[input_id] for input_id, key in FIELDS.items()}
    labels["data.dataset"] = LABELS["source-id"]
    for key, label in labels.items():
        message = re.sub(rf"(?<![\w.]){re.escape(key)}(?!\w)", f"{label} ({key})", message)
    return message.replace("allow overwriting to replace it",
                           "press prepare again to replace it")


def field_help(key: str) -> str:
    return str(section_fields(DataConfig())[key].metadata["help"])


def options_from_config(config: Config, *, overwrite: bool = False) -> PrepareOptions:
    """The preparation the config asks for, as `tscu prepare` reads it (0 = no limit)."""
    data = config.data
    return PrepareOptions(
        dataset=data.dataset, model=config.model.name, output_dir=Path(data.path).expanduser(),
        block_size=data.block_size, max_tokens=data.max_tokens or None,
        validation_fraction=data.validation_fraction, test_fraction=data.test_fraction,
        text_column=data.text_column,
        dataset_config=data.dataset_config or None, txt_split=data.txt_split,
        overwrite=overwrite, train_on=data.train_on, long_records=data.long_records,
        chat_template=data.chat_template, chat_template_kwargs=dict(data.chat_template_kwargs))
