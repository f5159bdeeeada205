"""Is the telemetry still measuring? A source that fails or falls silent, as the governor sees it.

A reading is current while the source's last good read is at most two sampling
periods old; a source whose read failed, or that has not answered since, is
lost once that has lasted `grace_s` (a few periods), whether its reads raise,
return garbage or never return: a stale temperature would pin c or hide an
emergency, and silence would compute as 0 W. So:

- ok: the governor acts on the readings;
- holding (a read failed, or none came, within the grace): no reading is
  shown (n/a, not the last one), and the governor keeps its last decision;
- lost (past the grace): the run falls to the safe side, `tscu.on_sensor_loss`
  = "slow" (c at its floor until readings return) or "stop" (a checkpoint and
  a stop).

In a distributed run each rank judges its own node; the worst state decides
for all (`worst`), so every rank acts alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

SensorState = Literal["ok", "holding", "lost"]
SENSOR_STATES: tuple[SensorState, ...] = ("ok", "holding", "lost")  # in rising severity

#: sampling periods a reading may be late before the source counts as lost
GRACE_PERIODS = 3
#: ...but never less than this: the trainer looks once per step, not once per period
MIN_GRACE_S = 1.0
#: sampling periods after which the newest reading is no longer current
STALE_PERIODS = 2
MIN_STALE_S = 0.2


def grace_seconds(period_s: float) -> float:
    return max(GRACE_PERIODS * period_s, MIN_GRACE_S)


def stale_seconds(period_s: float) -> float:
    return max(STALE_PERIODS * period_s, MIN_STALE_S)


@dataclass(frozen=True)
class SensorHealth:
    state: SensorState
    problem: str | None  # why not ok: the source's error, or how long it has been silent
    silent_s: float  # seconds since the last good reading

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def sensor_health(problem: str | None, last_good_at: float | None, started_at: float,
                  now: float, period_s: float) -> SensorHealth:
    """The state of a source sampled every `period_s` whose last read failed with
    `problem` (None: it worked) and last answered at `last_good_at` (None: never, since
    `started_at`)."""
    silent = max(now - (last_good_at if last_good_at is not None else started_at), 0.0)
    grace_s = grace_seconds(period_s)
    if problem is None and silent <= stale_seconds(period_s):
        return SensorHealth("ok", None, silent)
    why = problem if problem is not None else f"no reading for {silent:.1f} s"
    return SensorHealth("holding" if silent <= grace_s else "lost", why, silent)


def worst(states: list[SensorState]) -> SensorState:
    return max(states, key=SENSOR_STATES.index, default="ok")


@dataclass(frozen=True)
class SensorChange:
    """What one step's telemetry state asks of the run."""

    back: bool = False  # readings returned: measure afresh (the gap was not this c's)
    stop: str | None = None  # "sensor_lost" with tscu.on_sensor_loss = "stop"
    message: str = ""  # the stop's line


class SensorWatch:
    """The run's telemetry from step to step: says once when it is lost and when it is
    back, counts the seconds without current readings, and turns a loss into the stop
    that `on_sensor_loss = "stop"` asks for."""

    def __init__(self, on_sensor_loss: str, clock: Callable[[], float],
                 warn: Callable[[str], None], info: Callable[[str], None]) -> None:
        self.policy = on_sensor_loss
        self._clock, self._warn, self._info = clock, warn, info
        self.state: SensorState = "ok"
        self._down_since: float | None = None
        self._down_s = 0.0

    @property
    def down_seconds(self) -> float:
        """Seconds without current readings so far."""
        ongoing = self._clock() - self._down_since if self._down_since is not None else 0.0
        return self._down_s + ongoing

    def update(self, state: SensorState, problem: str | None, *, governed: bool,
               c_min: float) -> SensorChange:
        previous, self.state = self.state, state
        now = self._clock()
        if state != "ok":
            if self._down_since is None:
                self._down_since = now
        elif self._down_since is not None:
            down, self._down_since = now - self._down_since, None
            self._down_s += down
            if previous == "lost":
                self._info(f"telemetry is back after {down:.1f} s: the governor measures "
                           "again")
            return SensorChange(back=True)
        if state != "lost" or previous == "lost":
            return SensorChange()
        why = problem or "another node's telemetry failed"
        if self.policy == "stop":
            return SensorChange(stop="sensor_lost", message=(
                f'telemetry lost ({why}): saving and stopping (tscu.on_sensor_loss = "stop")'))
        self._warn(f"telemetry lost ({why}): " + (
            f"the governor holds c at {c_min:g} until readings return (tscu.on_sensor_loss "
            '= "slow")' if governed else "nothing to slow with tscu.enabled = false")
            + "; no emergency stop without a temperature")
        return SensorChange()
