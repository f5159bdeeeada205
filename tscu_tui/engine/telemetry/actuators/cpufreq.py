"""Linux CPU clock knobs under /sys/devices/system/cpu (root, or a group given write).

- `cpufreq`: every policy's `scaling_max_freq` (kHz), the cap on the clock the
  frequency governor may choose, between the policy's floor (`cpuinfo_min_freq`,
  or `scaling_min_freq` if higher: the kernel refuses a max below the min) and
  `cpuinfo_max_freq`. A level maps onto each policy's own range, so hybrid CPUs
  (performance and efficiency cores) are capped in proportion. Snapped to
  `scaling_available_frequencies` where the driver lists them (acpi-cpufreq).
- `intel_pstate`: `intel_pstate/max_perf_pct`, the cap as a percentage of the
  highest P-state, from `min_perf_pct` to 100 (global, active or passive mode).
- `epp`: every policy's `energy_performance_preference`, a hint in four steps
  (power, balance_power, balance_performance, performance) for the hardware's
  own P-state choice; not a clock, so its speed is measured, never assumed.

The root is a parameter so tests point the actuators at a temp tree.
"""

from __future__ import annotations

from pathlib import Path

from tscu_tui.engine.telemetry.actuators import sysfs
from tscu_tui.engine.telemetry.actuators.base import ActuatorUnavailable

CPU_ROOT = Path("/sys/devices/system/cpu")
EPP_ORDER = ("power", "balance_power", "balance_performance", "performance")


def policies(root: Path) -> list[Path]:
    """cpufreq policy folders (`cpufreq/policyN`, or the old per-CPU `cpuN/cpufreq`)."""
    found = sorted((root / "cpufreq").glob("policy[0-9]*"), key=_number)
    if not found:
        found = sorted((p / "cpufreq" for p in root.glob("cpu[0-9]*")), key=lambda p:
                       _number(p.parent))
    return [p for p in found if (p / "scaling_max_freq").exists()]


def _number(path: Path) -> int:
    digits = "".join(ch for ch in path.name if ch.isdigit())
    return int(digits) if digits else 0


def _no_policy(root: Path) -> str:
    if not (root / "cpufreq").exists():
        return f"no cpufreq under {root} (no CPU frequency driver in this kernel)"
    return (f"{root / 'cpufreq'} has no policy with scaling_max_freq (the kernel exposes "
            "no frequency driver here: usual in VMs and containers)")


class CpufreqMaxFreq(sysfs.SysfsActuator):
    name = "cpufreq"
    unit = "MHz"

    def __init__(self, root: Path = CPU_ROOT) -> None:
        super().__init__()
        self.root = Path(root)
        self.policies = policies(self.root)
        if not self.policies:
            raise ActuatorUnavailable(_no_policy(self.root))
        self.files = [p / "scaling_max_freq" for p in self.policies]
        self._ranges = []  # per policy: (floor kHz, max kHz, available steps kHz)
        for p in self.policies:
            low = max(sysfs.read_int(p / "cpuinfo_min_freq"),
                      sysfs.read_int(p / "scaling_min_freq", 0))
            high = sysfs.read_int(p / "cpuinfo_max_freq")
            steps = _ints(p / "scaling_available_frequencies")
            self._ranges.append((low, high, steps))
        sysfs.require_writable(self.files, "cpufreq")

    @property
    def key(self) -> str:
        return f"sysfs:{self.root / 'cpufreq'}:scaling_max_freq"

    @property
    def value_min(self) -> float:
        return self._ranges[0][0] / 1000

    @property
    def value_max(self) -> float:
        return self._ranges[0][1] / 1000

    @property
    def steps(self) -> tuple[float, ...]:
        return tuple(s / 1000 for s in self._ranges[0][2])

    def read_value(self) -> float:
        return sysfs.read_int(self.files[0]) / 1000

    def _write(self, value: float) -> None:
        level = self.level_of(value)
        for path, (low, high, steps) in zip(self.files, self._ranges, strict=True):
            khz = round(low + level * (high - low))
            if steps:
                khz = min((s for s in steps if low <= s <= high), key=lambda s: abs(s - khz),
                          default=khz)
            path.write_text(str(khz))

    def describe(self) -> str:
        return (f"cpufreq scaling_max_freq of {len(self.policies)} policies "
                f"({self.value_min:g}-{self.value_max:g} MHz)")


def _ints(path: Path) -> list[int]:
    try:
        return sorted(int(x) for x in sysfs.read_text(path).split())
    except (OSError, ValueError):
        return []


class IntelPstateMaxPerf(sysfs.SysfsActuator):
    name = "intel_pstate"
    unit = "%"

    def __init__(self, root: Path = CPU_ROOT) -> None:
        super().__init__()
        folder = Path(root) / "intel_pstate"
        self.file = folder / "max_perf_pct"
        if not self.file.exists():
            raise ActuatorUnavailable(f"no {self.file} (the CPU frequency driver is not "
                                      "intel_pstate)")
        status = sysfs.read_text(folder / "status") if (folder / "status").exists() else ""
        if status == "off":
            raise ActuatorUnavailable(f"intel_pstate is off ({folder / 'status'})")
        self.files = [self.file]
        self._floor = sysfs.read_int(folder / "min_perf_pct", 0)
        sysfs.require_writable(self.files, "intel_pstate")

    @property
    def key(self) -> str:
        return f"sysfs:{self.file}"

    @property
    def value_min(self) -> float:
        return float(max(self._floor, 1))

    @property
    def value_max(self) -> float:
        return 100.0

    def read_value(self) -> float:
        return float(sysfs.read_int(self.file))

    def _write(self, value: float) -> None:
        self.file.write_text(str(round(value)))

    def describe(self) -> str:
        return f"intel_pstate max_perf_pct ({self.value_min:g}-100 %)"


class EnergyPerformancePreference(sysfs.SysfsActuator):
    name = "epp"
    unit = ""
    controls = "hint"

    def __init__(self, root: Path = CPU_ROOT) -> None:
        super().__init__()
        found = [p for p in policies(Path(root))
                 if (p / "energy_performance_preference").exists()]
        if not found:
            raise ActuatorUnavailable(f"no energy_performance_preference under {root} (the "
                                      "driver has no EPP: intel_pstate or amd-pstate-epp have)")
        offered = set(sysfs.read_text(found[0] / "energy_performance_available_preferences")
                      .split()) if (found[0] / "energy_performance_available_preferences"
                                    ).exists() else set(EPP_ORDER)
        self.choices = [c for c in EPP_ORDER if c in offered]
        if len(self.choices) < 2:
            raise ActuatorUnavailable(f"EPP offers {sorted(offered)}: nothing to choose")
        self.root = Path(root)
        self.files = [p / "energy_performance_preference" for p in found]
        sysfs.require_writable(self.files, "EPP")

    @property
    def key(self) -> str:
        return f"sysfs:{self.root / 'cpufreq'}:energy_performance_preference"

    @property
    def value_min(self) -> float:
        return 0.0

    @property
    def value_max(self) -> float:
        return float(len(self.choices) - 1)

    @property
    def steps(self) -> tuple[float, ...]:
        return tuple(float(i) for i in range(len(self.choices)))

    def read_value(self) -> float:
        text = sysfs.read_text(self.files[0])
        # "default" (or anything unlisted) is the firmware's own choice: the top step
        return float(self.choices.index(text)) if text in self.choices else self.value_max

    def _write(self, value: float) -> None:
        choice = self.choices[round(value)]
        for path in self.files:
            path.write_text(choice)

    def describe(self) -> str:
        return f"EPP energy_performance_preference of {len(self.files)} policies " \
               f"({', '.join(self.choices)})"
