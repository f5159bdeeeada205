"""The device MLX computes on, described for telemetry (which never imports MLX).

On the CUDA backend `mx.device_info()` carries the GPU's UUID and PCI bus id
as the CUDA runtime reports them, after CUDA_VISIBLE_DEVICES and
CUDA_DEVICE_ORDER: exactly what NVML needs to find the same GPU.

`backend_problem` catches a packaging trap: `mlx-cpu` (tscu's Linux default)
and `mlx-cuda-12`/`-13` both install `mlx/lib/libmlx.so`, so with both
present whichever pip wrote last is the MLX that runs.
"""

from __future__ import annotations

from importlib import metadata

from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.telemetry.device import ComputeDevice

CUDA_DISTRIBUTIONS = ("mlx-cuda-12", "mlx-cuda-13", "mlx-cuda")


def _cuda_available() -> bool:
    cuda = getattr(mx, "cuda", None)
    return bool(cuda is not None and cuda.is_available())


def _info(device: object) -> dict[str, object]:
    device_info = getattr(mx, "device_info", None)  # MLX >= 0.30
    if device_info is None:
        return {}
    try:
        return dict(device_info(device))
    except Exception:  # an older build without the query: the names stay unknown
        return {}


def mlx_compute_device() -> ComputeDevice:
    device = mx.default_device()
    info = _info(device)
    name = str(info.get("device_name", ""))
    if device.type == mx.DeviceType.cpu:
        return ComputeDevice(kind="cpu", backend="cpu", name=name)
    if not _cuda_available():
        return ComputeDevice(kind="gpu", backend="metal", name=name)
    uuid, bus = info.get("uuid"), info.get("pci_bus_id")
    return ComputeDevice(kind="gpu", backend="cuda", name=name,
                         uuid=str(uuid) if uuid else None, pci_bus_id=str(bus) if bus else None)


def installed_cuda_distribution() -> str | None:
    for name in CUDA_DISTRIBUTIONS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        return name
    return None


def backend_problem() -> str | None:
    """A sentence when MLX's CUDA wheel is installed but MLX does not run on CUDA."""
    cuda_wheel = installed_cuda_distribution()
    if cuda_wheel is None or _cuda_available():
        return None
    version = metadata.version(cuda_wheel)
    return (f"{cuda_wheel} is installed but MLX is not using CUDA: either no NVIDIA GPU or "
            "driver is visible, or mlx-cpu's library overwrote it (both install "
            "mlx/lib/libmlx.so). To fix the latter: pip install --force-reinstall --no-deps "
            f"{cuda_wheel}=={version}")
