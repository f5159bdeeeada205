"""The interface every frequency actuator implements, and the bookkeeping they share.

A frequency actuator turns one machine-wide knob that lowers the clock (or a power
ceiling that makes the hardware lower it): NVIDIA locked SM clocks, Linux cpufreq
`scaling_max_freq`, intel_pstate `max_perf_pct`, the RAPL long-term power limit, the
EPP hint, Apple's Low Power Mode. The governor drives it through a normalised
*level* in [0, 1]: 0 is the knob's floor (`value_min`), 1 its ceiling (`value_max`,
the uncapped setting), mapped linearly onto the knob's unit and snapped to the
values the hardware accepts (`steps`). `speed_ratio(level)` is the clock as a share
of the full clock where the knob is a clock, None where it is not (a power limit
or a hint: the throughput has to be measured).

Safety, the same for every knob: the original setting is written to the journal on
disk *before* the first change (so the next `tscu` start restores it after a
SIGKILL), the process guard restores it at exit, on SIGINT/SIGTERM/SIGHUP and on a
crash, and `restore()` is idempotent. An actuator never prompts for a password and
never raises for a refusal: it answers with an `ActuatorChange` that says why.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

from tscu_tui.engine.telemetry.actuators import guard, journal

Controls = Literal["frequency", "power", "hint"]


class ActuatorUnavailable(RuntimeError):
    """This knob cannot be used here; the message says exactly what was found."""


@dataclass(frozen=True)
class ActuatorChange:
    """The outcome of one change or restore, in words a user can act on."""

    applied: bool
    message: str
    value: float | None = None  # the setting now, in the actuator's unit


@dataclass(frozen=True)
class Availability:
    """What `tscu telemetry` lists: can this knob be read and written here, and why not."""

    name: str
    available: bool
    detail: str  # what it would change, or exactly why it cannot


class FrequencyActuator(ABC):
    """A machine-wide clock (or power-ceiling) knob behind a normalised level."""

    name: ClassVar[str] = "actuator"
    unit: ClassVar[str] = ""
    controls: ClassVar[Controls] = "frequency"

    def __init__(self) -> None:
        self._lock = threading.RLock()  # the guard's signal handler may restore mid-call
        self._changed = False

    # -------------------------------------------------------------- what subclasses give
    @property
    @abstractmethod
    def key(self) -> str:
        """The journal's name for the knob (one machine-wide setting)."""

    @property
    @abstractmethod
    def value_min(self) -> float:
        """The lowest setting tscu will use (the frequency floor), in `unit`."""

    @property
    @abstractmethod
    def value_max(self) -> float:
        """The uncapped setting, in `unit`."""

    @property
    def steps(self) -> tuple[float, ...]:
        """The settings the hardware accepts, ascending; empty where any value is."""
        return ()

    @abstractmethod
    def read_value(self) -> float:
        """The setting now, read from the hardware."""

    @abstractmethod
    def _original(self) -> object:
        """The setting to put back, as the journal records it (JSON)."""

    @abstractmethod
    def _write(self, value: float) -> None:
        """Apply `value` (already clamped and snapped). May raise OSError/RuntimeError."""

    @abstractmethod
    def _put_back(self, original: object) -> None:
        """Restore what `_original()` returned. May raise."""

    @abstractmethod
    def describe(self) -> str:
        """What the knob is, for logs and `tscu telemetry`."""

    def _shown(self, original: object) -> str:
        """The original, as a message shows it."""
        return str(original)

    def _restore_hint(self, original: object) -> str:
        """The command a user runs to restore by hand when tscu cannot."""
        return f"set it back to {original} by hand"

    # -------------------------------------------------------------- the interface
    @property
    def changed(self) -> bool:
        return self._changed

    def speed_ratio(self, level: float) -> float | None:
        """Clock at `level` as a share of the full clock; None for power/hint knobs."""
        if self.controls != "frequency" or self.value_max <= 0:
            return None
        return self.value_at(level) / self.value_max

    def value_at(self, level: float) -> float:
        """The setting a level maps to: linear in the unit, snapped to `steps`."""
        level = min(max(level, 0.0), 1.0)
        value = self.value_min + level * (self.value_max - self.value_min)
        steps = [s for s in self.steps if self.value_min <= s <= self.value_max]
        return min(steps, key=lambda s: (abs(s - value), -s)) if steps else value

    def level_of(self, value: float) -> float:
        span = self.value_max - self.value_min
        return 1.0 if span <= 0 else min(max((value - self.value_min) / span, 0.0), 1.0)

    def level(self) -> float:
        """The current setting as a level (read from the hardware)."""
        return self.level_of(self.read_value())

    def set_level(self, level: float) -> ActuatorChange:
        return self.set_value(self.value_at(level))

    def set_value(self, value: float) -> ActuatorChange:
        """Apply `value` (clamped to [value_min, value_max]); the first change records
        the original on disk and arms the process guard before anything is written."""
        value = min(max(value, self.value_min), self.value_max)
        with self._lock:
            if not self._changed:
                try:
                    original = journal.record(self.key, self.journal_kind(),
                                              self._original(), self.describe())
                except (OSError, RuntimeError, journal.JournalBusy) as err:
                    return ActuatorChange(False, f"{self.describe()} not changed: {err}")
                guard.register(self.key, self.restore)
                self._changed = True
                self._saved = original
            try:
                self._write(value)
            except (OSError, RuntimeError) as err:
                self.restore()  # a half-made change is not left behind
                return ActuatorChange(False, f"{self.describe()} not changed: {err}")
        return ActuatorChange(True, f"{self.describe()} set to {value:g} {self.unit}".rstrip(),
                              value)

    def restore(self) -> ActuatorChange | None:
        """Put the original back; None when nothing was changed (or it already is)."""
        with self._lock:
            if not self._changed:
                return None
            original = self._saved
            try:
                self._put_back(original)
            except Exception as err:  # the journal keeps it for the next start
                return ActuatorChange(False, f"could not restore {self.describe()} to "
                                             f"{self._shown(original)} ({err}): "
                                             f"{self._restore_hint(original)}")
            self._changed = False
            guard.unregister(self.key)
            journal.forget(self.key)
        return ActuatorChange(True, f"{self.describe()} restored to {self._shown(original)}")

    @classmethod
    def journal_kind(cls) -> str:
        """How `recover` finds the code that restores this kind of record."""
        return cls.name
