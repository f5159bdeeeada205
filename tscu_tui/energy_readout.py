"""The clock knob and joules per token beside the watts, for the train screen and the
headless console: "clock simulated 0.70 f_max (simulated) · 0.0169 J/token · 24.0 W".

J/token is over the recent steps (the run's joules and tokens `WINDOW` steps ago to
now), so a lowered clock shows in it within a few steps; n/a until energy is measured.
"""

from __future__ import annotations

from collections import deque

from tscu_tui.engine.events import StepEvent
from tscu_tui.engine.formatting import fmt

WINDOW = 20


class EnergyReadout:
    def __init__(self) -> None:
        self._seen: deque[tuple[int, float]] = deque(maxlen=WINDOW + 1)
        self.text: str | None = None

    def record(self, e: StepEvent) -> str | None:
        """The line after step `e`; None while there is nothing to show (no governor
        knob and no energy measured)."""
        if e.energy_j is not None:
            if self._seen and e.tokens < self._seen[-1][0]:
                self._seen.clear()  # a new run
            self._seen.append((e.tokens, e.energy_j))
        j_per_token = None
        if len(self._seen) >= 2:
            (n0, e0), (n1, e1) = self._seen[0], self._seen[-1]
            j_per_token = (e1 - e0) / (n1 - n0) if n1 > n0 else None
        if e.frequency is None and j_per_token is None:
            return self.text
        parts = [f"clock {e.frequency}" if e.frequency else "clock: duty cycling only",
                 f"{fmt(j_per_token, '.4g')} J/token", fmt(e.power_w, ".1f", " W")]
        self.text = " · ".join(parts)
        return self.text
