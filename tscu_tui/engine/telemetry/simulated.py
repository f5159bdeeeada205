"""A simulated thermal RC plant for tests and the demo.

`power = idle_w + duty * (busy_w(f) - idle_w)` and `C dT/dt = P - (T - T_ambient)/R`,
where busy_w(f) = busy_w x the frequency model's power ratio at clock share f
(`telemetry.plant`: P_s + k f^3; f = 1, busy_w, unless a simulated clock knob,
`actuators.simulated`, has lowered it).
The plant owns no clock: `advance(dt_s, busy_fraction)` moves it forward, so
tests run 10^4 steps of simulated time in milliseconds. Within one step the
power is constant and the temperature follows the exact exponential solution,
which stays stable for any dt (explicit Euler would not).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from tscu_tui.engine.telemetry.base import Clock, Source
from tscu_tui.engine.telemetry.plant import DEFAULT_MODEL, FrequencyModel
from tscu_tui.engine.telemetry.sample import Sample, SampleKind


@dataclass(frozen=True)
class PlantParams:
    idle_w: float = 5.0
    busy_w: float = 40.0
    thermal_resistance_k_per_w: float = 1.2  # steady rise per watt
    heat_capacity_j_per_k: float = 30.0  # time constant R*C = 36 s
    ambient_c: float = 25.0
    frequency: FrequencyModel = DEFAULT_MODEL  # busy power's shape against the clock

    @property
    def time_constant_s(self) -> float:
        return self.thermal_resistance_k_per_w * self.heat_capacity_j_per_k


class ThermalPlant:
    """The plant's state: simulated time, temperature, cumulative energy."""

    def __init__(self, params: PlantParams | None = None, temp_c: float | None = None) -> None:
        self.params = params or PlantParams()
        self.t_s = 0.0
        self.temp_c = self.params.ambient_c if temp_c is None else temp_c
        self.energy_j = 0.0
        self.power_w = self.params.idle_w

    def power_at(self, busy_fraction: float, speed: float = 1.0) -> float:
        p = self.params
        duty = min(max(busy_fraction, 0.0), 1.0)
        busy = p.busy_w if speed >= 1.0 else p.busy_w * p.frequency.power_ratio(speed)
        return p.idle_w + duty * (busy - p.idle_w)

    def advance(self, dt_s: float, busy_fraction: float, speed: float = 1.0) -> Sample:
        """Run `dt_s` seconds with the given compute share and clock share; return the
        sample at the end."""
        if dt_s > 0:
            p = self.params
            self.power_w = self.power_at(busy_fraction, speed)
            steady_c = p.ambient_c + self.power_w * p.thermal_resistance_k_per_w
            decay = math.exp(-dt_s / p.time_constant_s)
            self.temp_c = steady_c + (self.temp_c - steady_c) * decay
            self.energy_j += self.power_w * dt_s
            self.t_s += dt_s
        return self.sample()

    def sample(self) -> Sample:
        return Sample(t_s=self.t_s, power_w=self.power_w, temp_c=self.temp_c,
                      energy_j=self.energy_j, source=SimulatedSource.name, kind="simulated")


class SimulatedSource(Source):
    """The plant as a Source: each read advances it by the clock's elapsed time.

    `duty` is the engine's real compute share (a callable the trainer updates);
    without one the plant runs flat out. `speed`, set when a simulated clock knob
    drives the plant, is its clock share (1 without one).
    """

    name = "simulated"
    kind: SampleKind = "simulated"

    def __init__(self, plant: ThermalPlant | None = None,
                 duty: Callable[[], float] | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.plant = plant or ThermalPlant()
        self._duty = duty
        self._clock = clock
        self._last_t = clock()
        self.speed: Callable[[], float] | None = None

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, "simulated thermal RC plant"

    def read(self) -> Sample:
        now = self._clock()
        busy = self._duty() if self._duty is not None else 1.0
        speed = self.speed() if self.speed is not None else 1.0
        self.plant.advance(now - self._last_t, busy, speed)
        self._last_t = now
        return self.plant.sample()
