"""Field values as text and back, for editing a config one field at a time.

Text is read the way `--set section.key=value` reads it (TOML, else a plain
string), so the config screen accepts and rejects exactly what the command
line does; strings need no quotes and lists are comma-separated.
"""

from __future__ import annotations

import tomllib
from typing import Any

from tscu_tui.engine.config.load import NUMBER_OR_WORD, TABLE, field_type


def parse_text(section: object, key: str, text: str) -> Any:
    """The value typed as `text` for field `key` of `section` (not yet validated)."""
    kind = field_type(section, key)
    if kind is str:
        return text
    if kind == TABLE:  # an inline table, braces optional: enable_thinking = false
        body = text.strip()
        body = body if body.startswith("{") else "{" + body + "}"
        try:
            return tomllib.loads(f"v = {body}")["v"]
        except tomllib.TOMLDecodeError:
            return text.strip()
    if kind not in (bool, int, float, NUMBER_OR_WORD):  # list[str]
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def toml_value(value: Any) -> str:
    """`value` as TOML source (a dict as an inline table)."""
    import tomlkit

    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update(value)
        return table.as_string()
    return tomlkit.item(value).as_string()


def value_text(value: Any) -> str:
    """`value` as the text `parse_text` reads back to the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return toml_value(value)
    return str(value) if not isinstance(value, float) else repr(value)
