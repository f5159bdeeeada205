"""An optional second actuator on NVIDIA: the board power limit (needs root).

Duty cycling holds average power by idling between steps; a board power
limit makes the GPU itself clock down to a wattage, which usually does the
same work for fewer joules. `nvmlDeviceSetPowerManagementLimit` needs root,
so this is opt-in (`tscu.nvidia_power_limit`): when configured and permitted
the GPU MLX computes on is capped at the power budget (clamped to what the
card allows) for the run; when not permitted, the run says so and goes on
with duty cycling alone. The original limit is put back when the run ends,
fails or is interrupted (ThermalControl.stop runs in the trainer's
`finally`), and by the actuators' process guard should the process leave another
way (atexit, SIGTERM, SIGINT, SIGHUP). The original is written to the actuator
journal before the change, so after a SIGKILL the next `tscu` start restores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tscu_tui.engine.telemetry.actuators import guard, journal
from tscu_tui.engine.telemetry.actuators.nvidia_clocks import POWER_KIND, text_of
from tscu_tui.engine.telemetry.base import Source
from tscu_tui.engine.telemetry.nvidia import (
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_SUPPORTED,
    NvidiaSource,
    nvml_error_code,
)


@dataclass(frozen=True)
class LimitChange:
    applied: bool
    message: str


def _why_not(err: BaseException) -> str:
    code = nvml_error_code(err)
    if code == NVML_ERROR_NO_PERMISSION:
        return "setting it needs root (run as root, or leave tscu.nvidia_power_limit off)"
    if code == NVML_ERROR_NOT_SUPPORTED:
        return "this GPU does not support a settable power limit"
    return f"NVML refused: {err}"


class NvidiaPowerLimit:
    """Set the board power limit once, restore the original exactly once."""

    def __init__(self, nvml: Any, handle: Any, device: str) -> None:
        self._nvml = nvml
        self._handle = handle
        self._device = device
        self._original_mw: int | None = None
        self._key = ""

    @classmethod
    def for_source(cls, source: Source) -> NvidiaPowerLimit | None:
        """The actuator for the GPU an NVML source measures; None for any other source."""
        if not isinstance(source, NvidiaSource):
            return None
        return cls(source.nvml, source.handle, source.device)

    @property
    def active(self) -> bool:
        return self._original_mw is not None

    def apply(self, watts: float) -> LimitChange:
        """Cap the board at `watts` (clamped to the card's range). Never raises."""
        nvml, handle = self._nvml, self._handle
        try:
            original = int(nvml.nvmlDeviceGetPowerManagementLimit(handle))
            low, high = (int(v) for v in
                         nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle))
        except Exception as err:
            return LimitChange(False, f"NVIDIA power limit not changed: {_why_not(err)}")
        target = min(max(round(watts * 1000), low), high)
        try:
            uuid = text_of(nvml.nvmlDeviceGetUUID(handle))
            self._key = f"{POWER_KIND}:{uuid}"
            # on disk before the change; a dead run's record keeps the real original
            original = int(journal.record(self._key, POWER_KIND,
                                          {"uuid": uuid, "milliwatts": original},
                                          f"NVIDIA power limit on {self._device}")["milliwatts"])
        except Exception as err:  # NVML, or the journal (another live run holds this GPU)
            return LimitChange(False, f"NVIDIA power limit not changed on {self._device}: "
                                      f"{err}; duty cycling alone holds the budget")
        guard.register(self._key, self.restore)
        try:
            nvml.nvmlDeviceSetPowerManagementLimit(handle, target)
        except Exception as err:
            guard.unregister(self._key)
            journal.forget(self._key)
            return LimitChange(False, f"NVIDIA power limit not changed on {self._device}: "
                                      f"{_why_not(err)}; duty cycling alone holds the budget")
        self._original_mw = original
        clamped = "" if target == round(watts * 1000) else (
            f" (the budget {watts:.0f} W is outside the card's {low / 1000:.0f}-"
            f"{high / 1000:.0f} W)")
        return LimitChange(True, f"NVIDIA power limit set to {target / 1000:.0f} W on "
                                 f"{self._device}, was {original / 1000:.0f} W{clamped}; "
                                 "restored when the run ends")

    def restore(self) -> LimitChange | None:
        """Put the original limit back; None when nothing was changed (or already restored)."""
        original, self._original_mw = self._original_mw, None
        if original is None:
            return None
        try:
            self._nvml.nvmlDeviceSetPowerManagementLimit(self._handle, original)
        except Exception as err:  # the journal keeps it: the next start tries again
            return LimitChange(False, f"could not restore the NVIDIA power limit to "
                                      f"{original / 1000:.0f} W ({err}): run "
                                      f"`nvidia-smi -pl {original / 1000:.0f}` as root")
        guard.unregister(self._key)
        journal.forget(self._key)
        return LimitChange(True, f"NVIDIA power limit restored to {original / 1000:.0f} W")
