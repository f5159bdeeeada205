"""Field values as text and back, for editing a config one field at a time.

Text is read the way `--set section.key=value` reads it (TOML, else a plain
string), so the config screen accepts and rejects exactly what the command
line does; strings need no quotes and lists are comma-separated.
"""

from __future__ import annotations

import tomllib
from typing import Any

from tscu_tui.engine.config.load import NUMBER_OR_WORD, field_type


def parse_text(section: object, key: str, text: str) -> Any:
    """The value typed as `text` for field `key` of `section` (not yet validated)."""
    kind = field_type(section, key)
    if kind is str:
        return text
    if kind not in (bool, int, float, NUMBER_OR_WORD):  # list[str]
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def value_text(value: Any) -> str:
    """`value` as the text `parse_text` reads back to the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value) if not isinstance(value, float) else repr(value)
