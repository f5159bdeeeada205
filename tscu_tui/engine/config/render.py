"""Write configs as TOML: a fully commented render, and comment-keeping saves."""

from __future__ import annotations

import textwrap
from dataclasses import asdict
from pathlib import Path
from typing import Any

import tomlkit

from tscu_tui.engine.config.edit import toml_value
from tscu_tui.engine.config.load import describe_allowed, section_fields
from tscu_tui.engine.config.schema import Config, sections
from tscu_tui.engine.fileio import atomic_write_text

HEADER = """\
# tscu configuration. Every field is documented; `tscu check-config FILE` validates.
# Override any field on the command line: --set section.key=value
# The Hugging Face token is never stored here: set HF_TOKEN or run `hf auth login`.
"""


def to_dict(config: Config) -> dict[str, dict[str, Any]]:
    return asdict(config)


def _comment(text: str) -> list[str]:
    return ["# " + line for line in textwrap.wrap(text, width=88)]


def render_toml(config: Config, header: str = HEADER) -> str:
    """The whole config as TOML, each section and field preceded by its help."""
    lines = [header.rstrip("\n")]
    for name, section in sections(config).items():
        lines += ["", *_comment((type(section).__doc__ or "").strip()), f"[{name}]"]
        for key, f in section_fields(section).items():
            help_text = f"{f.metadata['help']} Allowed: {describe_allowed(section, key)}."
            value = toml_value(getattr(section, key))
            lines += [*_comment(help_text), f"{key} = {value}"]
    return "\n".join(lines) + "\n"


def save_config(path: str | Path, config: Config) -> None:
    """Write `config` to `path`, keeping the existing file's comments and order.

    Only values that differ are rewritten; fields missing from the file are
    appended to their section. A new file gets the fully commented render.
    """
    file = Path(path)
    if not file.exists():
        atomic_write_text(file, render_toml(config))
        return
    document = tomlkit.parse(file.read_text(encoding="utf-8"))
    for name, values in to_dict(config).items():
        if name not in document:
            document[name] = tomlkit.table()
        table = document[name]
        for key, value in values.items():
            current = table.get(key)
            if current is None or _plain(current) != value:
                table[key] = _item(value)
    atomic_write_text(file, tomlkit.dumps(document))


def _item(value: Any) -> Any:
    """A dict as an inline table (tomlkit would make it a [section.key] table)."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update(value)
        return table
    return value


def _plain(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item
