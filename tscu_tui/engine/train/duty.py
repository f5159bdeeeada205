"""The engine's real compute share: what the simulated plant draws power for.

The trainer marks when it computes (`busy(True)` / `busy(False)` around steps
and evaluations); the simulated telemetry source asks `fraction()` for the share
of the time since its last reading that was spent computing.
"""

from __future__ import annotations

import threading
import time

from tscu_tui.engine.telemetry.base import Clock


class DutyMeter:
    """The engine's real compute share, for the simulated plant: busy time / elapsed time."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._busy_since: float | None = None
        self._busy_s = 0.0
        self._last = self._clock()

    def busy(self, on: bool) -> None:
        with self._lock:
            now = self._clock()
            if on and self._busy_since is None:
                self._busy_since = now
            elif not on and self._busy_since is not None:
                self._busy_s += now - self._busy_since
                self._busy_since = None

    def fraction(self) -> float:
        """Share of the time since the previous call spent computing (resets the window)."""
        with self._lock:
            now = self._clock()
            busy = self._busy_s
            if self._busy_since is not None:
                busy += now - self._busy_since
                self._busy_since = now
            elapsed, self._last, self._busy_s = now - self._last, now, 0.0
        return min(max(busy / elapsed, 0.0), 1.0) if elapsed > 0 else 1.0
