"""`tscu.objective = "energy"`: find the clock with the least joules per token by
measuring it inside the run, then keep it (as Zeus does, NSDI'23).

Each candidate level is held for a warm-up window (discarded: the clock, the power
reading and the caches settle) and then a measured window; the window's joules over
its tokens is J/token, its tokens over its seconds the throughput, its joules over
its seconds the power. The governor is held (no duty cycling) while profiling, so
each window measures the setting alone.

The choice: the fastest setting whose measured power is within the budget sets
the pace; among the settings within `max_slowdown` of it (and within the budget),
the one with the least J/token wins. When no setting is within the budget, the
one drawing least is kept and the governor duty-cycles below it. The curve and the
choice go into the analysis JSON and the model card.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: the levels tried, uncapped first (so the pace is measured before any saving); a clock
#: knob tries these clock shares instead (`PROFILE_SPEEDS`, snapped to its steps)
PROFILE_LEVELS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
PROFILE_SPEEDS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.5)
WARMUP_STEPS = 2
MEASURE_STEPS = 4


@dataclass(frozen=True)
class ProfilePoint:
    level: float
    speed: float | None  # clock share (None for a power/hint knob)
    joules_per_token: float
    tokens_per_s: float
    power_w: float


@dataclass
class EnergyProfile:
    """Profiles one level after another; `level()` says what to hold now."""

    budget_w: float
    max_slowdown: float
    levels: tuple[float, ...] = PROFILE_LEVELS
    warmup_steps: int = WARMUP_STEPS
    measure_steps: int = MEASURE_STEPS
    points: list[ProfilePoint] = field(default_factory=list)
    chosen: ProfilePoint | None = None
    _index: int = 0
    _steps: int = 0  # steps at the current level
    _start: tuple[float, float, int] | None = None  # (seconds, joules, tokens)

    @property
    def done(self) -> bool:
        return self.chosen is not None or self._index >= len(self.levels)

    def level(self) -> float:
        if self.chosen is not None:
            return self.chosen.level
        return self.levels[min(self._index, len(self.levels) - 1)]

    def observe(self, t_s: float, energy_j: float | None, tokens: int,
                speed: float | None) -> bool:
        """After a step at `level()`: the time, the joules and the tokens so far. True when
        this step finished the profile (the choice is made)."""
        if self.done:
            return False
        if energy_j is None:  # nothing measurable: start this level's windows again
            self._steps, self._start = 0, None
            return False
        self._steps += 1
        if self._steps == self.warmup_steps:
            self._start = (t_s, energy_j, tokens)
        elif self._steps >= self.warmup_steps + self.measure_steps and self._start:
            t0, e0, n0 = self._start
            dt, de, dn = t_s - t0, energy_j - e0, tokens - n0
            if dt > 0 and dn > 0:
                self.points.append(ProfilePoint(self.level(), speed, de / dn, dn / dt,
                                                de / dt))
            self._index += 1
            self._steps, self._start = 0, None
            if self._index >= len(self.levels):
                self.chosen = choose(self.points, self.budget_w, self.max_slowdown)
                return True
        return False

    def summary(self) -> dict[str, object]:
        return {"objective": "energy", "max_slowdown": self.max_slowdown,
                "warmup_steps": self.warmup_steps, "measure_steps": self.measure_steps,
                "curve": [asdict(p) for p in self.points],
                "chosen": asdict(self.chosen) if self.chosen is not None else None}


def choose(points: list[ProfilePoint], budget_w: float,
           max_slowdown: float) -> ProfilePoint | None:
    """The least J/token within `max_slowdown` of the fastest setting the budget allows."""
    if not points:
        return None
    allowed = [p for p in points if p.power_w <= budget_w]
    if not allowed:
        return min(points, key=lambda p: p.power_w)
    pace = max(p.tokens_per_s for p in allowed)
    # (a hair of tolerance: a setting exactly at the allowed slowdown counts as within it)
    near = [p for p in allowed if p.tokens_per_s >= (1.0 - max_slowdown) * pace * (1 - 1e-6)]
    return min(near, key=lambda p: p.joules_per_token)
