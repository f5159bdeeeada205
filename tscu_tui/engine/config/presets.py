"""Config presets shipped with tscu: TOML files in assets/presets, loaded like tscu.toml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tscu_tui.engine.config.assets import PRESETS_DIR


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    description: str  # the file's first comment line


def _description(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            text = line.lstrip("# ").strip()
            return text.removeprefix(f"tscu {path.stem} preset: ")
    return ""


def list_presets(directory: Path = PRESETS_DIR) -> list[Preset]:
    """The presets in `directory`, production first, then by name."""
    paths = sorted(directory.glob("*.toml"), key=lambda p: (p.stem != "production", p.stem))
    return [Preset(p.stem, p, _description(p)) for p in paths]
