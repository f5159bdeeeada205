"""The RAPL long-term package power limit (`constraint_0_power_limit_uw`), Linux.

A power ceiling, not a clock: the package lowers its P-state (and below the
lowest, duty-cycles its clock) to stay under it. The ceiling is
`constraint_0_max_power_uw` where the firmware publishes one (else the limit
found at start); the floor is a quarter of it, tscu's own choice: RAPL has no
lower bound of its own, and far below the package's lowest P-state power the
hardware only idles, which duty cycling already does. Top-level package domains
only (`intel-rapl:N`; AMD's driver uses the same names); each is mapped onto its
own range.
"""

from __future__ import annotations

from pathlib import Path

from tscu_tui.engine.telemetry.actuators import sysfs
from tscu_tui.engine.telemetry.actuators.base import ActuatorUnavailable
from tscu_tui.engine.telemetry.rapl import DEFAULT_ROOT, find_domains

FLOOR_SHARE = 0.25


class RaplPowerLimit(sysfs.SysfsActuator):
    name = "rapl-limit"
    unit = "W"
    controls = "power"

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        super().__init__()
        self.root = Path(root)
        domains = [d for d in find_domains(self.root)
                   if (d.path / "constraint_0_power_limit_uw").exists()]
        if not domains:
            raise ActuatorUnavailable(f"no RAPL package domain with a power limit under "
                                      f"{self.root}" if self.root.exists() else
                                      f"no {self.root} (no RAPL driver in this kernel)")
        disabled = [d.name for d in domains
                    if sysfs.read_text(d.path / "enabled") == "0"] if all(
            (d.path / "enabled").exists() for d in domains) else []
        if disabled:
            raise ActuatorUnavailable(f"RAPL power limiting is disabled on {', '.join(disabled)} "
                                      "(enabled = 0)")
        self.files = [d.path / "constraint_0_power_limit_uw" for d in domains]
        self._ceilings = [sysfs.read_int(d.path / "constraint_0_max_power_uw", 0)
                          or sysfs.read_int(f) for d, f in zip(domains, self.files,
                                                                strict=True)]
        sysfs.require_writable(self.files, "RAPL power limit")

    @property
    def key(self) -> str:
        return f"sysfs:{self.root}:constraint_0_power_limit_uw"

    @property
    def value_min(self) -> float:
        return FLOOR_SHARE * self.value_max

    @property
    def value_max(self) -> float:
        return sum(self._ceilings) / 1e6

    def read_value(self) -> float:
        return sum(sysfs.read_int(f) for f in self.files) / 1e6

    def _write(self, value: float) -> None:
        level = self.level_of(value)
        for path, ceiling in zip(self.files, self._ceilings, strict=True):
            path.write_text(str(round(ceiling * (FLOOR_SHARE + level * (1 - FLOOR_SHARE)))))

    def describe(self) -> str:
        return (f"RAPL long-term power limit of {len(self.files)} package(s) "
                f"({self.value_min:.0f}-{self.value_max:.0f} W)")
