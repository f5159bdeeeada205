"""Apple Silicon die temperatures: which SMC keys and HID sensors mean what.

No sudo is needed: like macmon, mactop, stats and actop, tscu opens the
`AppleSMCKeysEndpoint` service and reads float ("flt ", 4 bytes, little
endian) temperature keys; where the SMC exposes none (it depends on the macOS
version more than on the chip), it falls back to the IOHIDEventSystem sensors.

Which keys are die sensors is public knowledge gathered by those tools:
- `Tp*` and `Te*`: CPU performance / efficiency cores (every generation);
- `Tg*`: GPU clusters;
- `Tf*`: on M3 only, `Tf0?`/`Tf4?` are P-cores and `Tf1?`/`Tf2?` GPU
  clusters; on other generations their meaning is unknown, so they are skipped
  rather than guessed (a wrong key could trip the emergency stop).
- HID: "pACC/eACC MTR Temp Sensor" (CPU), "GPU MTR Temp Sensor" (GPU), and
  "PMU tdie" (the SoC die, used only when neither CPU nor GPU sensors exist).

The governed temperature is the hottest CPU or GPU die sensor: a limit must
hold for the hottest spot, not the average macmon displays. Readings outside
(0, 150) C are absent probes and are dropped. This module is the logic, kept
free of IOKit so it is testable anywhere; `apple_iokit` is the ctypes side.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

DieGroup = Literal["cpu", "gpu", "soc"]
FLOAT_TYPE = "flt "
PLAUSIBLE_C = (0.0, 150.0)
HID_PREFIXES: tuple[tuple[str, DieGroup], ...] = (
    ("pACC MTR Temp Sensor", "cpu"), ("eACC MTR Temp Sensor", "cpu"),
    ("GPU MTR Temp Sensor", "gpu"), ("PMU tdie", "soc"), ("PMU2 tdie", "soc"))


@dataclass(frozen=True)
class DieTemperatures:
    """Hottest plausible reading per die group; None where none was readable."""

    cpu_c: float | None
    gpu_c: float | None
    soc_c: float | None = None
    via: str = "smc"

    @property
    def governing_c(self) -> float | None:
        """What the thermal limit acts on: the hotter of CPU and GPU, else the SoC die."""
        dies = [c for c in (self.cpu_c, self.gpu_c) if c is not None]
        return max(dies) if dies else self.soc_c


def chip_generation(brand: str) -> int | None:
    """3 for "Apple M3 Max" (sysctl machdep.cpu.brand_string); None if not an M chip."""
    match = re.search(r"Apple M(\d+)", brand)
    return int(match.group(1)) if match else None


def classify_smc_key(key: str, generation: int | None) -> DieGroup | None:
    if key.startswith(("Tp", "Te")):
        return "cpu"
    if key.startswith("Tg"):
        return "gpu"
    if generation == 3 and key.startswith("Tf") and len(key) == 4:
        return {"0": "cpu", "4": "cpu", "1": "gpu", "2": "gpu"}.get(key[2])  # type: ignore[return-value]
    return None


def classify_hid_name(name: str) -> DieGroup | None:
    for prefix, group in HID_PREFIXES:
        if name.startswith(prefix):
            return group
    return None


def decode_float(data: bytes) -> float | None:
    """An SMC "flt " value: IEEE 754 single, little endian on Apple Silicon."""
    return struct.unpack("<f", data[:4])[0] if len(data) >= 4 else None


def plausible(value: float | None) -> bool:
    low, high = PLAUSIBLE_C
    return value is not None and low < value < high


def _hottest(values: Iterable[float | None]) -> float | None:
    good = [float(v) for v in values if plausible(v)]
    return max(good) if good else None


class SmcConnection(Protocol):
    """What tscu asks of the SMC (AppleSMCKeysEndpoint, or a stand-in in tests)."""

    def key_count(self) -> int: ...

    def key_at(self, index: int) -> str | None: ...

    def key_info(self, key: str) -> tuple[int, str] | None:
        """(data size in bytes, four-character data type), None if the key is absent."""

    def read_bytes(self, key: str, size: int, data_type: str) -> bytes | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SmcSensorKeys:
    cpu: tuple[str, ...]
    gpu: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.cpu or self.gpu)


def discover_smc_keys(smc: SmcConnection, generation: int | None) -> SmcSensorKeys:
    """Walk every SMC key once; keep die sensors stored as 4-byte floats."""
    cpu: list[str] = []
    gpu: list[str] = []
    for index in range(smc.key_count()):
        key = smc.key_at(index)
        group = classify_smc_key(key, generation) if key else None
        if group is None or key is None:
            continue
        if smc.key_info(key) != (4, FLOAT_TYPE):
            continue
        (cpu if group == "cpu" else gpu).append(key)
    return SmcSensorKeys(cpu=tuple(cpu), gpu=tuple(gpu))


def read_smc_temperatures(smc: SmcConnection, keys: SmcSensorKeys) -> DieTemperatures:
    def group(names: tuple[str, ...]) -> float | None:
        return _hottest(_read_float(smc, key) for key in names)

    return DieTemperatures(cpu_c=group(keys.cpu), gpu_c=group(keys.gpu), via="smc")


def _read_float(smc: SmcConnection, key: str) -> float | None:
    data = smc.read_bytes(key, 4, FLOAT_TYPE)
    return decode_float(data) if data is not None else None


def hid_temperatures(readings: Iterable[tuple[str, float]]) -> DieTemperatures | None:
    """Group IOHIDEventSystem temperature readings by die; None if none is a die sensor."""
    groups: dict[DieGroup, list[float]] = {"cpu": [], "gpu": [], "soc": []}
    for name, value in readings:
        group = classify_hid_name(name)
        if group is not None:
            groups[group].append(value)
    temps = DieTemperatures(cpu_c=_hottest(groups["cpu"]), gpu_c=_hottest(groups["gpu"]),
                            soc_c=_hottest(groups["soc"]), via="hid")
    return temps if temps.governing_c is not None else None


HidReader = Callable[[], list[tuple[str, float]]]


class AppleTemperatures:
    """SMC die sensors first; the HID sensors when the SMC has none or reads nothing."""

    def __init__(self, smc: SmcConnection | None, generation: int | None,
                 hid: HidReader | None = None) -> None:
        self._smc = smc
        self._keys = discover_smc_keys(smc, generation) if smc is not None else None
        self._hid = hid

    @classmethod
    def open(cls) -> AppleTemperatures:
        """The real sensors of this Mac (IOKit via ctypes); empty elsewhere."""
        from tscu_tui.engine.telemetry import apple_iokit

        brand = apple_iokit.cpu_brand()
        return cls(apple_iokit.open_smc(), chip_generation(brand or ""),
                   apple_iokit.read_hid_temperatures if apple_iokit.on_macos() else None)

    def describe(self) -> str:
        if self._keys:
            return (f"SMC die sensors ({len(self._keys.cpu)} CPU, {len(self._keys.gpu)} "
                    "GPU keys)")
        return "IOHID temperature sensors" if self._hid is not None else "no temperature sensor"

    def read(self) -> DieTemperatures | None:
        if self._smc is not None and self._keys:
            temps = read_smc_temperatures(self._smc, self._keys)
            if temps.governing_c is not None:
                return temps
        return hid_temperatures(self._hid()) if self._hid is not None else None

    def close(self) -> None:
        if self._smc is not None:
            self._smc.close()
            self._smc = None
