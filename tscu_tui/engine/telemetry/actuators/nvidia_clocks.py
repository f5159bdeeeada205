"""NVIDIA locked SM clocks through NVML (root; `nvidia-smi -lgc` is the same call).

`nvmlDeviceSetGpuLockedClocks(handle, low, high)` keeps the graphics (SM) clock in
[low, high]; tscu locks [lowest supported, f], a ceiling like cpufreq's
`scaling_max_freq`, so the GPU still drops below f when it idles. The steps are
`nvmlDeviceGetSupportedGraphicsClocks` at the highest memory clock. Restore is
`nvmlDeviceResetGpuLockedClocks`: NVML cannot read back a lock someone else set,
so the original recorded is "unlocked" (a machine whose administrator locks clocks
should leave this actuator off). Unlike power capping, a locked clock also bites
in memory-bound phases, where the board never reaches a power cap (issue 22).

The board power limit, the ceiling beside it, is `nvidia_limit.NvidiaPowerLimit`.
"""

from __future__ import annotations

import os
from typing import Any

from tscu_tui.engine.telemetry.actuators.base import ActuatorUnavailable, FrequencyActuator
from tscu_tui.engine.telemetry.nvidia import (
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_SUPPORTED,
    NvidiaSource,
    nvml_error_code,
)

KIND = "nvml-clocks"
POWER_KIND = "nvml-power"  # the board power limit's records (nvidia_limit.py)


def nvml_refusal(err: BaseException) -> str:
    code = nvml_error_code(err)
    if code == NVML_ERROR_NO_PERMISSION:
        return "NVML refused: it needs root"
    if code == NVML_ERROR_NOT_SUPPORTED:
        return "NVML: not supported on this GPU"
    return f"NVML refused: {err}"


def text_of(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvidiaLockedClocks(FrequencyActuator):
    name = "nvidia-clocks"
    unit = "MHz"

    def __init__(self, nvml: Any, handle: Any, device: str, euid: int | None = None) -> None:
        super().__init__()
        self._nvml, self._handle, self.device = nvml, handle, device
        try:
            self.uuid = text_of(nvml.nvmlDeviceGetUUID(handle))
            memory = max(int(c) for c in nvml.nvmlDeviceGetSupportedMemoryClocks(handle))
            clocks = sorted({int(c) for c in
                             nvml.nvmlDeviceGetSupportedGraphicsClocks(handle, memory)})
        except Exception as err:
            raise ActuatorUnavailable(f"{device}: supported clocks unreadable "
                                      f"({nvml_refusal(err)})") from None
        if len(clocks) < 2:
            raise ActuatorUnavailable(f"{device}: NVML lists {clocks} MHz: nothing to lock")
        self._clocks = tuple(float(c) for c in clocks)
        self._cap: float | None = None
        euid = os.geteuid() if euid is None and hasattr(os, "geteuid") else euid
        if euid != 0:
            raise ActuatorUnavailable(f"{device}: locking GPU clocks needs root (as "
                                      "`nvidia-smi -lgc` does); this process is not root")

    @classmethod
    def for_source(cls, source: object, euid: int | None = None) -> NvidiaLockedClocks:
        if not isinstance(source, NvidiaSource):
            raise ActuatorUnavailable("telemetry is not NVML: no NVIDIA GPU to clock")
        return cls(source.nvml, source.handle, source.device, euid=euid)

    @classmethod
    def journal_kind(cls) -> str:
        return KIND

    @property
    def key(self) -> str:
        return f"{KIND}:{self.uuid}"

    @property
    def value_min(self) -> float:
        return self._clocks[0]

    @property
    def value_max(self) -> float:
        return self._clocks[-1]

    @property
    def steps(self) -> tuple[float, ...]:
        return self._clocks

    def read_value(self) -> float:
        return self._cap if self._cap is not None else self.value_max

    def _original(self) -> object:
        return {"uuid": self.uuid, "locked": None}

    def _write(self, value: float) -> None:
        try:
            self._nvml.nvmlDeviceSetGpuLockedClocks(self._handle, int(self.value_min),
                                                    int(value))
        except Exception as err:
            raise RuntimeError(nvml_refusal(err)) from None
        self._cap = value

    def _put_back(self, original: object) -> None:
        try:
            self._nvml.nvmlDeviceResetGpuLockedClocks(self._handle)
        except Exception as err:
            raise RuntimeError(nvml_refusal(err)) from None
        self._cap = None

    def _restore_hint(self, original: object) -> str:
        return f"run `sudo nvidia-smi -i {self.uuid} -rgc`"

    def describe(self) -> str:
        return (f"NVIDIA locked SM clocks on {self.device} "
                f"({self.value_min:g}-{self.value_max:g} MHz)")


def reset_clocks(nvml: Any, original: dict[str, Any]) -> None:
    """`recover`'s restorer: unlock the clocks of the GPU a dead process had locked."""
    handle = nvml.nvmlDeviceGetHandleByUUID(original["uuid"])
    nvml.nvmlDeviceResetGpuLockedClocks(handle)


def set_power_limit(nvml: Any, original: dict[str, Any]) -> None:
    """`recover`'s restorer for the board power limit a dead process had set."""
    handle = nvml.nvmlDeviceGetHandleByUUID(original["uuid"])
    nvml.nvmlDeviceSetPowerManagementLimit(handle, int(original["milliwatts"]))
