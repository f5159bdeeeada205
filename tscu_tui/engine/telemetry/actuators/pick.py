"""Which frequency actuators this machine allows, why not the others, and which one the
governor should drive.

Probing never changes anything: it reads the knob's range and asks whether this
process may write it (`os.access`, `euid`, `sudo -n -l`). The order is the
preference for the device MLX computes on: on a GPU its locked clocks; on a
Linux CPU a real clock cap first (cpufreq, then intel_pstate), then the RAPL
power ceiling, then the EPP hint; on a Mac Low Power Mode. Duty cycling is
always there besides (it needs nothing), and is all a machine without any of
these has.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tscu_tui.engine.telemetry.actuators.apple_lowpower import (
    AppleLowPowerMode,
    Runner,
    run_command,
)
from tscu_tui.engine.telemetry.actuators.base import (
    ActuatorUnavailable,
    Availability,
    FrequencyActuator,
)
from tscu_tui.engine.telemetry.actuators.cpufreq import (
    CPU_ROOT,
    CpufreqMaxFreq,
    EnergyPerformancePreference,
    IntelPstateMaxPerf,
)
from tscu_tui.engine.telemetry.actuators.nvidia_clocks import NvidiaLockedClocks
from tscu_tui.engine.telemetry.actuators.rapl_limit import RaplPowerLimit
from tscu_tui.engine.telemetry.rapl import DEFAULT_ROOT as POWERCAP_ROOT

DUTY_CYCLING = Availability("duty-cycling", True, "idle between steps (always available; "
                            "lowers watts and degrees, never joules per token)")


@dataclass
class Probe:
    """What was found: every knob's availability, and the usable ones in preference order."""

    found: list[Availability] = field(default_factory=list)
    usable: list[FrequencyActuator] = field(default_factory=list)

    @property
    def frequency(self) -> FrequencyActuator | None:
        """The actuator to drive, or None: duty cycling alone."""
        return self.usable[0] if self.usable else None


def probe(gpu_source: object | None = None, *, cpu_root: Path = CPU_ROOT,
          powercap_root: Path = POWERCAP_ROOT, run: Runner = run_command,
          system: str | None = None, machine: str | None = None,
          euid: int | None = None) -> Probe:
    """The knobs for the device MLX computes on: `gpu_source` is its NVML source when
    it computes on an NVIDIA GPU, else None (the CPU, or Apple's unified GPU)."""
    system = system or sys.platform
    result = Probe()
    candidates: list[tuple[str, Callable[[], FrequencyActuator]]] = []
    if gpu_source is not None:
        candidates.append((NvidiaLockedClocks.name,
                           lambda: NvidiaLockedClocks.for_source(gpu_source, euid=euid)))
    if system == "darwin":
        candidates.append((AppleLowPowerMode.name,
                           lambda: AppleLowPowerMode(run, system=system, machine=machine)))
    elif system.startswith("linux") and gpu_source is None:
        candidates += [(CpufreqMaxFreq.name, lambda: CpufreqMaxFreq(cpu_root)),
                       (IntelPstateMaxPerf.name, lambda: IntelPstateMaxPerf(cpu_root)),
                       (RaplPowerLimit.name, lambda: RaplPowerLimit(powercap_root)),
                       (EnergyPerformancePreference.name,
                        lambda: EnergyPerformancePreference(cpu_root))]
    if not candidates:
        result.found.append(Availability("frequency", False, f"no frequency knob tscu knows "
                                         f"on {system} for this device"))
    for name, build in candidates:
        try:
            actuator = build()
        except ActuatorUnavailable as err:
            result.found.append(Availability(name, False, str(err)))
            continue
        except OSError as err:  # a knob that exists but cannot even be read
            result.found.append(Availability(name, False, f"unreadable: {err}"))
            continue
        result.found.append(Availability(name, True, actuator.describe()))
        result.usable.append(actuator)
    result.found.append(DUTY_CYCLING)
    return result
