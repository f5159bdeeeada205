"""One telemetry reading (TSCU.md section 2): what a source saw at one instant.

Units live in the field names. A missing value is `None`, never a made-up
constant, so the UI can show n/a and the governor can ignore that constraint.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, get_args

SampleKind = Literal["measured", "estimated", "simulated"]
SAMPLE_KINDS: tuple[str, ...] = get_args(SampleKind)

#: what a working sensor can report; outside, the reading is garbage (a driver bug, an
#: unplugged probe reading -273 or 1e6 C), never a number to act on
PLAUSIBLE_TEMP_C = (-50.0, 200.0)
PLAUSIBLE_POWER_W = (0.0, 100_000.0)


@dataclass(frozen=True)
class Sample:
    """A power/temperature reading.

    `energy_j` is cumulative since the source started, and only set when the
    hardware (or the simulated plant) keeps an energy counter; otherwise the
    sampler integrates `power_w` itself.

    `temp_c` is the temperature the governor acts on. Where a chip reports its
    CPU and GPU dies separately (Apple Silicon), `temp_c` is the hotter of the
    two and `cpu_temp_c` / `gpu_temp_c` keep both for display; elsewhere they
    stay None.
    """

    t_s: float
    power_w: float | None
    temp_c: float | None
    energy_j: float | None
    source: str
    kind: SampleKind
    cpu_temp_c: float | None = None
    gpu_temp_c: float | None = None

    @property
    def measured_anything(self) -> bool:
        """Whether this sample carries power or energy (a temperature alone is not energy)."""
        return self.power_w is not None or self.energy_j is not None

    def implausible(self) -> str | None:
        """What makes this reading garbage (a number no working sensor reports), or None."""
        checks = (("power_w", self.power_w, PLAUSIBLE_POWER_W, "W"),
                  ("temp_c", self.temp_c, PLAUSIBLE_TEMP_C, "°C"),
                  ("cpu_temp_c", self.cpu_temp_c, PLAUSIBLE_TEMP_C, "°C"),
                  ("gpu_temp_c", self.gpu_temp_c, PLAUSIBLE_TEMP_C, "°C"),
                  ("energy_j", self.energy_j, (0.0, math.inf), "J"))
        for name, value, (low, high), unit in checks:
            if value is None:
                continue
            if not math.isfinite(value) or not low <= value <= high:
                return f"implausible reading {name} = {value:g} {unit}"
        return None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, object]) -> Sample:
        """Build from a JSON record, rejecting what a recorder could not have written."""
        kind = record.get("kind")
        if kind not in SAMPLE_KINDS:
            raise ValueError(f"sample kind {kind!r} is not one of {SAMPLE_KINDS}")
        return cls(t_s=_number(record, "t_s"), power_w=_optional(record, "power_w"),
                   temp_c=_optional(record, "temp_c"), energy_j=_optional(record, "energy_j"),
                   source=str(record.get("source", "unknown")), kind=kind,  # type: ignore[arg-type]
                   cpu_temp_c=_optional(record, "cpu_temp_c"),
                   gpu_temp_c=_optional(record, "gpu_temp_c"))


def _optional(record: dict[str, object], key: str) -> float | None:
    return None if record.get(key) is None else _number(record, key)


def _number(record: dict[str, object], key: str) -> float:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"sample field {key!r} must be a finite number, got {value!r}")
    return float(value)
