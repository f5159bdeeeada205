"""Frequency first, duty cycling below the frequency floor (TSCU.md section 2).

The governor's PI output `u` is a power-ratio demand: the share of full-speed
power the next measurements should draw (without a clock knob it is the duty
cycle's compute share, as it always was). With a clock knob the policy predicts
each level's power with a model of the plant (`telemetry.plant`: P_s + k f^3,
as a ratio of the full clock's power) and picks the highest level whose
predicted power is at most u; only when even the floor draws more than u does it
duty-cycle, at compute share u / ratio(floor). A power-limit knob's level is its
power directly (ratio = limit / uncapped); a hint knob (EPP) has no model, so its
level is taken as the ratio.

The model need not be exact: the PI integrates the measured error, so a wrong
prediction only moves u until the measured power meets the budget. It only has to
rank the levels, which any monotonic model does.
"""

from __future__ import annotations

from dataclasses import dataclass

from tscu_tui.engine.telemetry.actuators.base import ActuatorChange, FrequencyActuator
from tscu_tui.engine.telemetry.plant import DEFAULT_MODEL, FrequencyModel

#: levels searched for a knob without hardware steps (a continuous one)
GRID = 40


@dataclass(frozen=True)
class FrequencyDecision:
    level: float  # the knob's level, 0 (floor) .. 1 (uncapped)
    speed: float | None  # clock share at that level (None for a power/hint knob)
    duty: float  # compute share the duty cycle realises on top


class FrequencyPolicy:
    """Maps the governor's demand onto one clock knob and the duty cycle below it."""

    def __init__(self, actuator: FrequencyActuator,
                 model: FrequencyModel = DEFAULT_MODEL) -> None:
        self.actuator = actuator
        self.model = model
        self.applied: float = 1.0  # the level last set (1: untouched)
        self.levels = self._levels()

    def _levels(self) -> list[float]:
        a = self.actuator
        steps = [a.level_of(s) for s in a.steps if a.value_min <= s <= a.value_max]
        levels = sorted(set(steps) | {0.0, 1.0}) if steps else [i / GRID for i in
                                                                range(GRID + 1)]
        return levels

    def snap(self, level: float) -> float:
        """The level the knob really takes for `level` (its hardware steps)."""
        a = self.actuator
        return a.level_of(a.value_at(level))

    def level_for_speed(self, speed: float) -> float:
        """The level nearest clock share `speed` (a clock knob), snapped."""
        a = self.actuator
        return self.snap(a.level_of(speed * a.value_max))

    def ratio(self, level: float) -> float:
        """Predicted power at `level` as a share of the uncapped knob's."""
        a = self.actuator
        speed = a.speed_ratio(level)
        if speed is not None:
            return self.model.power_ratio(speed)
        if a.controls == "power" and a.value_max > 0:
            return a.value_at(level) / a.value_max
        return max(level, 1e-3)

    def decide(self, demand: float, ceiling: float = 1.0) -> FrequencyDecision:
        """The highest level (at most `ceiling`) predicted to draw <= `demand` x full
        power; duty only below the floor."""
        demand = min(max(demand, 0.0), 1.0)
        allowed = [lv for lv in self.levels if lv <= ceiling + 1e-9] or [self.levels[0]]
        fits = [lv for lv in allowed if self.ratio(lv) <= demand + 1e-9]
        level = max(fits) if fits else min(allowed)
        duty = 1.0 if fits else min(max(demand / self.ratio(level), 0.0), 1.0)
        return FrequencyDecision(level, self.actuator.speed_ratio(level), duty)

    def apply(self, level: float) -> ActuatorChange | None:
        """Set the knob when the level changes; None when it already is there."""
        if abs(level - self.applied) < 1e-9:
            return None
        change = self.actuator.set_level(level)
        if change.applied:
            self.applied = level
        return change

    def label(self) -> str:
        """What a screen shows: the knob and its setting now."""
        a = self.actuator
        speed = a.speed_ratio(self.applied)
        setting = (f"{speed:.2f} f_max" if speed is not None
                   else f"{a.value_at(self.applied):g} {a.unit}".rstrip())
        return f"{a.name} {setting}"
