"""The simulated plant's clock: a frequency knob that changes nothing real.

Used only with `telemetry.source = "simulated"` (tests, the demo, the energy bench):
the simulated plant reads its speed (`speed()`) and draws the power of that clock
(`telemetry.plant`). It writes no journal and arms no guard, since nothing on the
machine changes; everything that shows it calls it simulated.
"""

from __future__ import annotations

from tscu_tui.engine.telemetry.actuators.base import ActuatorChange, FrequencyActuator

#: the clock shares the simulated knob accepts (a real knob has steps too): down to the
#: plant's voltage floor, below which a lower clock saves less power than idling does
#: (static power stays while the clock runs; idle power is lower still)
SIMULATED_STEPS = tuple(round(0.5 + 0.05 * i, 2) for i in range(11))


class SimulatedFrequency(FrequencyActuator):
    name = "simulated"
    unit = "x f_max"
    controls = "frequency"

    def __init__(self, floor: float = 0.5) -> None:
        super().__init__()
        self._floor = floor
        self._value = 1.0

    @property
    def key(self) -> str:
        return "simulated-clock"

    @property
    def value_min(self) -> float:
        return self._floor

    @property
    def value_max(self) -> float:
        return 1.0

    @property
    def steps(self) -> tuple[float, ...]:
        return SIMULATED_STEPS

    def read_value(self) -> float:
        return self._value

    def speed(self) -> float:
        """The clock share the simulated plant runs at now."""
        return self._value

    def describe(self) -> str:
        return "simulated clock (the simulated plant's; nothing real changes)"

    def set_value(self, value: float) -> ActuatorChange:
        value = min(max(value, self.value_min), self.value_max)
        with self._lock:
            self._value = value
            self._changed = value != 1.0
        return ActuatorChange(True, f"simulated clock set to {value:g} {self.unit}", value)

    def restore(self) -> ActuatorChange | None:
        with self._lock:
            if not self._changed:
                return None
            self._value, self._changed = 1.0, False
        return ActuatorChange(True, "simulated clock restored to 1 x f_max")

    # Never reached (set_value and restore above do not journal): the base demands them.
    def _original(self) -> object:
        return 1.0

    def _write(self, value: float) -> None:
        self._value = value

    def _put_back(self, original: object) -> None:
        self._value = 1.0
