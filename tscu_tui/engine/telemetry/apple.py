"""Apple Silicon: package power from IOReport counters, die temperatures from the SMC.

Apple package power, one definition for both Apple sources: the energy of
the CPU, GPU and ANE, as IOReport's "Energy Model" group names them ("CPU
Energy", "GPU Energy", "ANE") and as powermetrics prints them ("Combined Power
(CPU + GPU + ANE)", macmon's "all_power"). DRAM is left out: powermetrics on
macOS 13 and later no longer reports it, so including it in one source would
make the two measure different things under one name.

`AppleSource` reads the cumulative counters with zeus-apple-silicon's
`get_cumulative_energy()` (what zeus itself differences) and no privileges.
It never opens or closes measurement windows: ending one window and opening
the next drops the energy between the two calls. The counters publish in
batches (CPU and ANE about every 1-2 s, GPU about every 120 ms), so each
channel is differenced publish to publish (`counters.BatchedCounter`), not
read to read. Temperatures come from the SMC die sensors (`apple_sensors`).

`PowermetricsSource` is the explicit fallback: `sudo -n powermetrics`, never
interactive (sudo -n fails instead of prompting) and never chosen by `auto`.
zeus_apple_silicon is imported inside functions (it exists only on macOS).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import Any

from tscu_tui.engine.telemetry.apple_sensors import AppleTemperatures, DieTemperatures
from tscu_tui.engine.telemetry.base import Clock, Source, SourceUnavailable
from tscu_tui.engine.telemetry.counters import BatchedCounter
from tscu_tui.engine.telemetry.sample import Sample, SampleKind

PACKAGE_FIELDS_MJ = ("cpu_total_mj", "gpu_mj", "ane_mj")  # AppleEnergyMetrics names


def _zeus() -> Any:
    if sys.platform != "darwin":
        raise SourceUnavailable("not macOS")
    try:
        import zeus_apple_silicon  # optional, macOS only
    except ImportError as err:
        raise SourceUnavailable("zeus-apple-silicon is not installed "
                                "(pip install zeus-apple-silicon)") from err
    return zeus_apple_silicon


def _temperatures(reader: AppleTemperatures | None) -> DieTemperatures | None:
    if reader is None:
        return None
    try:
        return reader.read()
    except Exception:  # a sensor hiccup costs this reading's temperature, not the source
        return None


class AppleSource(Source):
    """Package power (CPU + GPU + ANE) and die temperatures, both without sudo."""

    name = "apple"
    kind: SampleKind = "measured"

    def __init__(self, monitor: Any, temperatures: AppleTemperatures | None = None,
                 clock: Clock = time.monotonic) -> None:
        self._monitor = monitor
        self._temperatures = temperatures
        self._clock = clock
        self._channels: dict[str, BatchedCounter] = {}
        self.read()  # baseline: the counters count from here

    @classmethod
    def open(cls, clock: Clock = time.monotonic) -> AppleSource:
        """The real IOReport monitor and SMC/HID sensors of this Mac."""
        zeus = _zeus()
        try:
            monitor = zeus.AppleEnergyMonitor()
        except Exception as err:
            raise SourceUnavailable(f"IOReport energy monitor failed: {err}") from err
        try:
            temperatures: AppleTemperatures | None = AppleTemperatures.open()
        except Exception:  # power without temperature is still worth having
            temperatures = None
        return cls(monitor, temperatures, clock=clock)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            _zeus()
        except SourceUnavailable as err:
            return False, str(err)
        return True, "IOReport energy counters via zeus-apple-silicon"

    def describe(self) -> str:
        temps = self._temperatures.describe() if self._temperatures else "no temperature"
        return f"IOReport CPU+GPU+ANE energy; {temps}"

    def read(self) -> Sample:
        metrics = self._monitor.get_cumulative_energy()
        now = self._clock()
        for field in PACKAGE_FIELDS_MJ:
            value = getattr(metrics, field, None)
            if value is not None:
                self._channels.setdefault(field, BatchedCounter()).update(now, value / 1000.0)
        rates = [counter.rate_w(now) for counter in self._channels.values()]
        power = None if not rates or None in rates else sum(rates)  # type: ignore[arg-type]
        energy = sum(counter.energy_j(now) for counter in self._channels.values())
        temps = _temperatures(self._temperatures)
        return Sample(t_s=now, power_w=power, temp_c=temps.governing_c if temps else None,
                      energy_j=energy if self._channels else None, source=self.name,
                      kind=self.kind, cpu_temp_c=temps.cpu_c if temps else None,
                      gpu_temp_c=temps.gpu_c if temps else None)

    def close(self) -> None:
        if self._temperatures is not None:
            self._temperatures.close()


COMBINED_POWER = re.compile(r"Combined Power \(CPU \+ GPU \+ ANE\):\s*([\d.]+)\s*mW")
PART_POWER = re.compile(r"^(CPU|GPU|ANE) Power:\s*([\d.]+)\s*mW", re.MULTILINE)


def parse_powermetrics_w(text: str) -> float | None:
    """Apple package power (CPU + GPU + ANE) from one powermetrics sample.

    macOS 13+ prints the combined line; macOS 12 prints the parts (and a DRAM
    line, which the package definition leaves out). Each part counts once.
    """
    match = COMBINED_POWER.search(text)
    if match:
        return float(match.group(1)) / 1000.0
    parts: dict[str, float] = {}
    for part, milliwatts in PART_POWER.findall(text):
        parts.setdefault(part, float(milliwatts))
    return sum(parts.values()) / 1000.0 if parts else None


class PowermetricsSource(Source):
    """`sudo -n powermetrics` fallback: only when configured explicitly."""

    name = "powermetrics"
    kind: SampleKind = "measured"

    def __init__(self, sample_ms: int = 200, clock: Clock = time.monotonic,
                 temperatures: AppleTemperatures | None = None) -> None:
        ok, why = self.available()
        if not ok:
            raise SourceUnavailable(why)
        self.sample_ms = sample_ms
        self._clock = clock
        self._temperatures = temperatures

    @classmethod
    def available(cls) -> tuple[bool, str]:
        if sys.platform != "darwin":
            return False, "powermetrics exists only on macOS"
        try:  # -n: fail instead of prompting, a TUI must never block on a password
            probe = subprocess.run(["sudo", "-n", "powermetrics", "--help"],
                                   capture_output=True, timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            return False, f"sudo -n powermetrics failed: {err}"
        if probe.returncode != 0:
            return False, "sudo -n powermetrics needs a passwordless sudo rule"
        return True, "powermetrics via passwordless sudo"

    def read(self) -> Sample:
        out = subprocess.run(["sudo", "-n", "powermetrics", "--samplers", "cpu_power,gpu_power",
                              "-n", "1", "-i", str(self.sample_ms)],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        temps = _temperatures(self._temperatures)
        return Sample(t_s=self._clock(), power_w=parse_powermetrics_w(out),
                      temp_c=temps.governing_c if temps else None, energy_j=None,
                      source=self.name, kind=self.kind,
                      cpu_temp_c=temps.cpu_c if temps else None,
                      gpu_temp_c=temps.gpu_c if temps else None)

    def close(self) -> None:
        if self._temperatures is not None:
            self._temperatures.close()
