"""Key bindings by id: the default keys live in the config schema (`[keys]`).

Every action the app offers is a `Binding` with an `id=` equal to its
`[keys]` field, so a user remaps it in `tscu.toml` and the help screen, the
footer and the command palette all show the remapped key.
"""

from __future__ import annotations

from dataclasses import asdict

from textual.binding import Binding

from tscu_tui.engine.config import KeysConfig
from tscu_tui.engine.config.load import section_fields

DEFAULT_KEYS = KeysConfig()


def key_help(binding_id: str) -> str:
    return str(section_fields(DEFAULT_KEYS)[binding_id].metadata["help"])


def bind(binding_id: str, description: str, *, action: str | None = None, show: bool = True,
         priority: bool = False) -> Binding:
    """A Binding whose key is the `[keys]` default and whose id is the field name."""
    return Binding(getattr(DEFAULT_KEYS, binding_id), action or binding_id, description,
                   show=show, priority=priority, id=binding_id, tooltip=key_help(binding_id))


def keymap(keys: KeysConfig) -> dict[str, str]:
    """Binding id -> keys, for `App.set_keymap` (empty values keep the default)."""
    return {name: value for name, value in asdict(keys).items() if value}
