"""Themes from `themes/*.toml` (one Textual theme per file), registered by the app."""

from __future__ import annotations

import tomllib
from pathlib import Path

from textual.theme import Theme

THEMES_DIR = Path(__file__).resolve().parent.parent / "themes"
_FIELDS = ("primary", "secondary", "accent", "foreground", "background", "surface", "panel",
           "success", "warning", "error")


def load_themes(folder: Path = THEMES_DIR) -> list[Theme]:
    """Every valid theme file in `folder`, sorted by name; a broken file is skipped."""
    themes = []
    for file in sorted(folder.glob("*.toml")):
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
            themes.append(Theme(name=str(data["name"]), dark=bool(data.get("dark", True)),
                                **{k: str(data[k]) for k in _FIELDS if k in data}))
        except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError):
            continue
    return themes
