"""NVIDIA GPUs through NVML (`pynvml`, shipped by the `nvidia-ml-py` package).

pynvml is imported inside functions: it is optional, and most machines that
run tscu (Apple Silicon) do not have it. The total-energy counter (Volta and
later) is preferred; older GPUs give power only and the sampler integrates it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from tscu_tui.engine.telemetry.base import Clock, Source, SourceUnavailable
from tscu_tui.engine.telemetry.sample import Sample, SampleKind


def _nvml() -> Any:
    try:
        import pynvml  # optional dependency: nvidia-ml-py
    except ImportError as err:
        raise SourceUnavailable("pynvml is not installed (pip install nvidia-ml-py)") from err
    try:
        pynvml.nvmlInit()
    except Exception as err:  # NVMLError subclasses differ between driver versions
        raise SourceUnavailable(f"NVML did not initialise: {err}") from err
    return pynvml


class NvidiaSource(Source):
    name = "nvidia"
    kind: SampleKind = "measured"

    def __init__(self, device_index: int = 0, clock: Clock = time.monotonic) -> None:
        self._nvml = _nvml()
        self._clock = clock
        try:
            self._handle = self._nvml.nvmlDeviceGetHandleByIndex(device_index)
        except Exception as err:
            raise SourceUnavailable(f"no NVIDIA GPU at index {device_index}: {err}") from err
        self._energy_start_mj = self._total_energy_mj()

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            nvml = _nvml()
            count = nvml.nvmlDeviceGetCount()
        except SourceUnavailable as err:
            return False, str(err)
        except Exception as err:
            return False, f"NVML query failed: {err}"
        if count < 1:
            return False, "NVML found no NVIDIA GPU"
        return True, f"NVML sees {count} NVIDIA GPU(s)"

    def _total_energy_mj(self) -> float | None:
        try:
            return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception:  # NotSupported before Volta: fall back to integrating power
            return None

    def read(self) -> Sample:
        nvml = self._nvml
        power = nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0  # milliwatts
        try:
            temp: float | None = float(nvml.nvmlDeviceGetTemperature(
                self._handle, nvml.NVML_TEMPERATURE_GPU))
        except Exception:
            temp = None
        energy = None
        total = self._total_energy_mj()
        if total is not None and self._energy_start_mj is not None:
            energy = (total - self._energy_start_mj) / 1000.0
        return Sample(t_s=self._clock(), power_w=power, temp_c=temp, energy_j=energy,
                      source=self.name, kind=self.kind)

    def close(self) -> None:
        # shutting down twice or after a driver reset is harmless
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()
