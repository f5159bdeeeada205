"""What every reporter is: an event sink that can be closed, and the one exception that
means it cannot start here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tscu_tui.engine.events import Event

Say = Callable[[str], None]


class ReporterUnavailable(Exception):
    """A reporter cannot start here (package missing, no login for online mode)."""


class Reporter(Protocol):
    name: str

    def __call__(self, event: Event) -> None: ...

    def close(self, failed: bool) -> None: ...
