"""Estimated power: system CPU utilisation times a linear TDP model.

`power = idle + util * (tdp - idle)`. It is a model, not a measurement, and
every sample says so (kind "estimated"). The temperature, when a reader is
given, is a real hwmon reading; otherwise None.
"""

from __future__ import annotations

import time

import psutil

from tscu_tui.engine.telemetry.base import Clock, Source, TemperatureReader
from tscu_tui.engine.telemetry.sample import Sample, SampleKind

WATTS_PER_CORE_GUESS = 7.5  # laptop-to-desktop middle ground per physical core
TDP_GUESS_RANGE_W = (15.0, 250.0)
IDLE_FRACTION = 0.15  # package idle draw as a share of TDP on modern CPUs


def guess_tdp_watts(physical_cores: int | None = None) -> float:
    cores = physical_cores if physical_cores is not None else psutil.cpu_count(logical=False)
    low, high = TDP_GUESS_RANGE_W
    return min(max(WATTS_PER_CORE_GUESS * (cores or 1), low), high)


def model_power_w(util: float, tdp_w: float, idle_w: float) -> float:
    util = min(max(util, 0.0), 1.0)
    return idle_w + util * (tdp_w - idle_w)


class EstimatedSource(Source):
    """psutil CPU utilisation x TDP model; `tdp_watts = 0` guesses from the core count."""

    name = "estimated"
    kind: SampleKind = "estimated"

    def __init__(self, tdp_watts: float = 0.0, idle_watts: float | None = None,
                 clock: Clock = time.monotonic,
                 temperature: TemperatureReader | None = None) -> None:
        self.tdp_w = tdp_watts if tdp_watts > 0 else guess_tdp_watts()
        self.idle_w = idle_watts if idle_watts is not None else IDLE_FRACTION * self.tdp_w
        self._clock = clock
        self._temperature = temperature
        psutil.cpu_percent(interval=None)  # primes the counter: the first call returns 0.0

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, "CPU utilisation x TDP model (an estimate, not a measurement)"

    def read(self) -> Sample:
        util = psutil.cpu_percent(interval=None) / 100.0
        temp = self._temperature() if self._temperature is not None else None
        return Sample(t_s=self._clock(), power_w=model_power_w(util, self.tdp_w, self.idle_w),
                      temp_c=temp, energy_j=None, source=self.name, kind=self.kind)
