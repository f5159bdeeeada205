"""NVIDIA GPUs through NVML (`pynvml`, shipped by the `nvidia-ml-py` package).

pynvml is imported inside functions: it is optional, and most machines that
run tscu (Apple Silicon) do not have it. No privileges are needed to read.

Which GPU: the one MLX computes on. NVML numbers GPUs in PCI bus order while
CUDA by default numbers them fastest first, and CUDA_VISIBLE_DEVICES renumbers
them again, so NVML's index 0 is often another GPU. `resolve_device` prefers
the UUID MLX reports (from the CUDA runtime, so both CUDA variables are
already applied), then its PCI bus id, then CUDA_VISIBLE_DEVICES itself (a
UUID prefix matched against NVML's UUIDs, or an index, which equals NVML's
index under CUDA_DEVICE_ORDER=PCI_BUS_ID or when all GPUs are the same model;
otherwise the choice is reported as a guess).

Power: `nvmlDeviceGetPowerUsage` where supported; where it raises
NotSupported the total-energy counter (Volta and later) still works, and
power comes from its differences. Energy is the counter when there is one.
Temperature: `nvmlDeviceGetTemperatureV` first (the plain call is deprecated),
the old call only where the new one is missing.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from tscu_tui.engine.telemetry.base import Clock, Source, SourceUnavailable
from tscu_tui.engine.telemetry.counters import BatchedCounter
from tscu_tui.engine.telemetry.device import ComputeDevice, cuda_target
from tscu_tui.engine.telemetry.sample import Sample, SampleKind

NVML_ERROR_NOT_SUPPORTED = 3  # pynvml.NVML_ERROR_NOT_SUPPORTED
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_FUNCTION_NOT_FOUND = 13


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


def nvml_error_code(err: BaseException) -> int | None:
    """pynvml raises NVMLError subclasses carrying the NVML return code in `.value`."""
    value = getattr(err, "value", None)
    return value if isinstance(value, int) else None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def resolve_device(nvml: Any, compute: ComputeDevice | None,
                   env: Mapping[str, str]) -> tuple[Any, str]:
    """The NVML handle of the GPU MLX computes on, and how it was found."""
    if compute is not None and compute.uuid:
        with contextlib.suppress(Exception):  # a MIG UUID, say: try the bus id next
            return nvml.nvmlDeviceGetHandleByUUID(compute.uuid), f"{compute.uuid} (MLX's GPU)"
    if compute is not None and compute.pci_bus_id:
        with contextlib.suppress(Exception):
            return (nvml.nvmlDeviceGetHandleByPciBusId(compute.pci_bus_id),
                    f"PCI {compute.pci_bus_id} (MLX's GPU)")
    count = nvml.nvmlDeviceGetCount()
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    target = cuda_target(env)
    if target is not None and target.hidden:
        raise SourceUnavailable("CUDA_VISIBLE_DEVICES hides every GPU")
    if target is not None and target.uuid_prefix:
        for handle in handles:
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            if uuid.startswith(target.uuid_prefix):
                return handle, f"{uuid} (CUDA_VISIBLE_DEVICES)"
        raise SourceUnavailable(f"no GPU has UUID {target.uuid_prefix} (CUDA_VISIBLE_DEVICES)")
    index = target.index if target is not None and target.index is not None else 0
    if index >= count:
        raise SourceUnavailable(f"CUDA device {index} does not exist ({count} GPU(s))")
    names = {_text(nvml.nvmlDeviceGetName(h)) for h in handles}
    how = f"NVML index {index}"
    if env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID" and len(names) > 1:
        how += (" (a guess: CUDA numbers mixed GPUs fastest first; set "
                "CUDA_DEVICE_ORDER=PCI_BUS_ID or a GPU- UUID in CUDA_VISIBLE_DEVICES)")
    return handles[index], how


class NvidiaSource(Source):
    name = "nvidia"
    kind: SampleKind = "measured"

    def __init__(self, compute: ComputeDevice | None = None, clock: Clock = time.monotonic,
                 nvml: Any = None, env: Mapping[str, str] | None = None) -> None:
        self.nvml = nvml if nvml is not None else _nvml()
        self._clock = clock
        try:
            self.handle, self.device = resolve_device(
                self.nvml, compute, os.environ if env is None else env)
        except SourceUnavailable:
            raise
        except Exception as err:
            raise SourceUnavailable(f"no NVIDIA GPU found: {err}") from err
        self._energy_start_mj = self._total_energy_mj()
        self._power_supported = self._probe_power()
        if not self._power_supported and self._energy_start_mj is None:
            raise SourceUnavailable(f"{self.device}: NVML supports neither power nor the "
                                    "energy counter on this GPU")
        self._from_counter = BatchedCounter()
        self._temperature = self._pick_temperature_call()

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

    def describe(self) -> str:
        power = "power" if self._power_supported else "power from the energy counter"
        return f"NVML {self.device}; {power}"

    def _total_energy_mj(self) -> float | None:
        try:
            return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except Exception:  # NotSupported before Volta: fall back to integrating power
            return None

    def _probe_power(self) -> bool:
        try:
            self.nvml.nvmlDeviceGetPowerUsage(self.handle)
        except Exception as err:
            if nvml_error_code(err) == NVML_ERROR_NOT_SUPPORTED:
                return False  # the energy counter may still work: not a reason to give up
            raise SourceUnavailable(f"{self.device}: NVML power query failed: {err}") from err
        return True

    def _pick_temperature_call(self) -> Callable[[], float] | None:
        nvml, sensor = self.nvml, self.nvml.NVML_TEMPERATURE_GPU
        calls: list[Callable[[], float]] = []
        if hasattr(nvml, "nvmlDeviceGetTemperatureV"):
            calls.append(lambda: float(nvml.nvmlDeviceGetTemperatureV(self.handle, sensor)))
        calls.append(lambda: float(nvml.nvmlDeviceGetTemperature(self.handle, sensor)))
        for call in calls:  # the first one this driver answers is the one we keep
            try:
                call()
            except Exception:
                continue
            return call
        return None

    def read(self) -> Sample:
        now = self._clock()
        total = self._total_energy_mj()
        energy = None
        if total is not None and self._energy_start_mj is not None:
            energy = (total - self._energy_start_mj) / 1000.0
            self._from_counter.update(now, energy)
        power = None
        if self._power_supported:
            power = self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0  # milliwatts
        elif energy is not None:
            power = self._from_counter.rate_w(now)
        temp = None
        if self._temperature is not None:
            with contextlib.suppress(Exception):  # one missed reading is n/a, not an error
                temp = self._temperature()
        return Sample(t_s=now, power_w=power, temp_c=temp, energy_j=energy,
                      source=self.name, kind=self.kind)

    def close(self) -> None:
        # shutting down twice or after a driver reset is harmless
        with contextlib.suppress(Exception):
            self.nvml.nvmlShutdown()
