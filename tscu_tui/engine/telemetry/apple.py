"""Apple Silicon energy: IOReport counters via `zeus-apple-silicon`.

No privileges needed. `zeus_apple_silicon` is imported inside functions (it
only exists on macOS). Each read closes the running measurement window and
opens the next, so energy is the sum of CPU, GPU, ANE and DRAM counters since
the source started. The library reads no temperature, so it is None.

`PowermetricsSource` is the explicit fallback: `sudo -n powermetrics`, never
interactive (sudo -n fails instead of prompting) and never chosen by `auto`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import Any

from tscu_tui.engine.telemetry.base import Clock, Source, SourceUnavailable
from tscu_tui.engine.telemetry.sample import Sample, SampleKind

ENERGY_FIELDS_MJ = ("cpu_total_mj", "gpu_mj", "ane_mj", "dram_mj")
WINDOW = "tscu"


def _zeus() -> Any:
    if sys.platform != "darwin":
        raise SourceUnavailable("not macOS")
    try:
        import zeus_apple_silicon  # optional, macOS only
    except ImportError as err:
        raise SourceUnavailable("zeus-apple-silicon is not installed "
                                "(pip install zeus-apple-silicon)") from err
    return zeus_apple_silicon


def window_energy_j(metrics: object) -> float:
    """Sum the counters a chip reports; a field is None where the chip lacks it."""
    total_mj = 0.0
    for field in ENERGY_FIELDS_MJ:
        value = getattr(metrics, field, None)
        if value is not None:
            total_mj += float(value)
    return total_mj / 1000.0


class AppleSource(Source):
    name = "apple"
    kind: SampleKind = "measured"

    def __init__(self, clock: Clock = time.monotonic) -> None:
        zeus = _zeus()
        self._clock = clock
        try:
            self._monitor = zeus.AppleEnergyMonitor()
            self._monitor.begin_window(WINDOW)
        except Exception as err:
            raise SourceUnavailable(f"IOReport energy monitor failed: {err}") from err
        self._energy_j = 0.0
        self._last_t = clock()

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            _zeus()
        except SourceUnavailable as err:
            return False, str(err)
        return True, "IOReport energy counters via zeus-apple-silicon"

    def read(self) -> Sample:
        metrics = self._monitor.end_window(WINDOW)
        self._monitor.begin_window(WINDOW)
        now = self._clock()
        delta_j = window_energy_j(metrics)
        dt = now - self._last_t
        self._energy_j += delta_j
        self._last_t = now
        return Sample(t_s=now, power_w=delta_j / dt if dt > 0 else None, temp_c=None,
                      energy_j=self._energy_j, source=self.name, kind=self.kind)


COMBINED_POWER = re.compile(r"Combined Power \(CPU \+ GPU \+ ANE\):\s*([\d.]+)\s*mW")


def parse_powermetrics_w(text: str) -> float | None:
    match = COMBINED_POWER.search(text)
    return float(match.group(1)) / 1000.0 if match else None


class PowermetricsSource(Source):
    """`sudo -n powermetrics` fallback: only when configured explicitly."""

    name = "powermetrics"
    kind: SampleKind = "measured"

    def __init__(self, sample_ms: int = 200, clock: Clock = time.monotonic) -> None:
        ok, why = self.available()
        if not ok:
            raise SourceUnavailable(why)
        self.sample_ms = sample_ms
        self._clock = clock

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
        return Sample(t_s=self._clock(), power_w=parse_powermetrics_w(out), temp_c=None,
                      energy_j=None, source=self.name, kind=self.kind)
