"""Which device MLX computes on, as telemetry needs to know it.

`auto` must measure the device that does the work: on Linux with MLX on the
CPU, NVML would measure an idle GPU; with MLX on CUDA, NVML must read the GPU
MLX uses, not NVML's device 0. The trainer fills a `ComputeDevice` from MLX
(`train.device`); telemetry only reads it, so it never imports MLX itself.

`cuda_target` reads `CUDA_VISIBLE_DEVICES` the way the CUDA runtime does: the
first entry is the device a process computes on as its device 0; it is an
index, a `GPU-`/`MIG-` UUID (a unique prefix is enough), and an invalid entry
ends the list, so "", "-1" or "NoDevFiles" first hides every GPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

DeviceKind = Literal["cpu", "gpu"]


@dataclass(frozen=True)
class ComputeDevice:
    """MLX's default device. `uuid` and `pci_bus_id` come from the CUDA runtime, which
    already applied CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER."""

    kind: DeviceKind
    backend: str  # "cpu", "metal" or "cuda"
    name: str = ""
    uuid: str | None = None  # "GPU-xxxxxxxx-xxxx-..." as NVML spells it
    pci_bus_id: str | None = None  # "0000:3b:00.0"

    def describe(self) -> str:
        label = f"{self.kind} ({self.backend}"
        label += f": {self.name})" if self.name else ")"
        return label + (f" {self.uuid}" if self.uuid else "")


@dataclass(frozen=True)
class CudaTarget:
    """The first visible CUDA device: by UUID (prefix), by index, or none at all."""

    uuid_prefix: str | None = None
    index: int | None = None

    @property
    def hidden(self) -> bool:
        return self.uuid_prefix is None and self.index is None


def cuda_target(env: Mapping[str, str]) -> CudaTarget | None:
    """None when CUDA_VISIBLE_DEVICES is unset (every GPU is visible, CUDA's device 0)."""
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    first = value.split(",")[0].strip()
    if first.startswith(("GPU-", "MIG-")):
        return CudaTarget(uuid_prefix=first)
    try:
        index = int(first)
    except ValueError:  # "", "NoDevFiles", garbage: CUDA stops at the first invalid entry
        return CudaTarget()
    return CudaTarget(index=index) if index >= 0 else CudaTarget()
