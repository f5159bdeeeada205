"""Temperature from hwmon via `psutil.sensors_temperatures()`.

Used on its own (power n/a) or as the temperature half of the RAPL and
estimated sources. When no sensor is readable the answer is None -- never a
constant, because a fake 50 C would silently disable the thermal constraint.
"""

from __future__ import annotations

import time

import psutil

from tscu_tui.engine.telemetry.base import Clock, Source
from tscu_tui.engine.telemetry.sample import Sample, SampleKind

# Chip drivers whose readings describe the CPU package, best first: coretemp
# (Intel), k10temp (AMD, label Tctl/Tdie), zenpower, then ACPI and SoC fallbacks.
PREFERRED_CHIPS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "soc_thermal",
                   "acpitz")
PREFERRED_LABELS = ("package id", "tctl", "tdie", "physical id", "cpu")


def read_temperature_c() -> float | None:
    """The hottest package-level temperature psutil can see, or None."""
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:  # psutil has no sensors API on this platform (macOS, Windows)
        return None
    try:
        chips = reader()
    except (OSError, RuntimeError):
        return None
    return pick_temperature(chips)


def pick_temperature(chips: dict[str, list]) -> float | None:
    """Prefer package/Tctl labels on CPU chips; otherwise the hottest plausible reading.

    Split out of `read_temperature_c` so the choice is testable on any machine.
    """
    for chip in PREFERRED_CHIPS:
        entries = [e for e in chips.get(chip, []) if _plausible(e.current)]
        for label in PREFERRED_LABELS:
            matches = [e.current for e in entries if (e.label or "").lower().startswith(label)]
            if matches:
                return float(max(matches))
        if entries:  # a CPU chip without a package label: its hottest core bounds the die
            return float(max(e.current for e in entries))
    readings = [e.current for entries in chips.values() for e in entries if _plausible(e.current)]
    return float(max(readings)) if readings else None


def _plausible(value: object) -> bool:
    # Drivers report 0 or absurd values for absent probes; neither is a temperature.
    return isinstance(value, int | float) and 0.0 < value < 150.0


class HwmonSource(Source):
    """Temperature only; power is n/a."""

    name = "hwmon"
    kind: SampleKind = "measured"

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock

    @classmethod
    def available(cls) -> tuple[bool, str]:
        temp = read_temperature_c()
        if temp is None:
            return False, "no readable temperature sensor (psutil.sensors_temperatures)"
        return True, f"hwmon temperature readable ({temp:.0f} °C)"

    def read(self) -> Sample:
        return Sample(t_s=self._clock(), power_w=None, temp_c=read_temperature_c(),
                      energy_j=None, source=self.name, kind=self.kind)
