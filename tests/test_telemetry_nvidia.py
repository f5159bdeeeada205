"""NVIDIA telemetry at the hardware boundary. No NVIDIA GPU here: a pynvml stand-in that
behaves like nvidia-ml-py 13 (errors carry NVML return codes, NotSupported for power on
some boards while the energy counter answers, NVML numbering GPUs in PCI order, the power
limit settable only by root). Device choice, power, temperature and the actuator are real.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tscu_tui.engine.config import Config
from tscu_tui.engine.config.schema import TelemetryConfig
from tscu_tui.engine.telemetry.auto import auto_order, pick_source
from tscu_tui.engine.telemetry.base import SourceUnavailable
from tscu_tui.engine.telemetry.device import ComputeDevice, CudaTarget, cuda_target
from tscu_tui.engine.telemetry.nvidia import (
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_SUPPORTED,
    NvidiaSource,
    nvml_error_code,
)
from tscu_tui.engine.telemetry.nvidia_limit import NvidiaPowerLimit
from tscu_tui.engine.telemetry.sampler import Sampler
from tscu_tui.engine.telemetry.simulated import SimulatedSource
from tscu_tui.engine.train.thermal import ThermalControl

NVML_ERROR_NOT_FOUND = 6


class NVMLError(Exception):
    """As pynvml: NVMLError(code) is an instance of the code's subclass, `.value` the code."""

    _by_code: dict[int, type] = {}

    def __new__(cls, value: int | None = None):
        code = getattr(cls, "code", value)
        target = NVMLError._by_code.get(code, cls) if cls is NVMLError else cls
        err = Exception.__new__(target)
        err.value = code
        return err

    def __init__(self, value: int | None = None) -> None:
        super().__init__(self.value)

    def __str__(self) -> str:
        return {3: "Not Supported", 4: "Insufficient Permissions", 6: "Not Found",
                13: "Function Not Found"}.get(self.value, f"NVML error {self.value}")


def _error_class(name: str, code: int) -> type:
    cls = type(name, (NVMLError,), {"code": code})
    NVMLError._by_code[code] = cls
    return cls


NVMLError_NotSupported = _error_class("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _error_class("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_NotFound = _error_class("NVMLError_NotFound", NVML_ERROR_NOT_FOUND)
NVMLError_FunctionNotFound = _error_class("NVMLError_FunctionNotFound",
                                          NVML_ERROR_FUNCTION_NOT_FOUND)


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Gpu:
    name: str
    uuid: str
    bus_id: str  # NVML's spelling: "00000000:3B:00.0"
    watts: float
    temp_c: int = 61
    power_supported: bool = True
    energy_supported: bool = True
    limit_mw: int = 700_000
    range_mw: tuple[int, int] = (200_000, 700_000)
    limit_history: list[int] = field(default_factory=list)


def _bus(text: str) -> tuple[int, ...]:
    domain, bus, rest = text.split(":")
    device, function = rest.split(".")
    return tuple(int(x, 16) for x in (domain, bus, device, function))


class PynvmlStandIn:
    """The slice of pynvml tscu uses, answering like the library on real hardware."""

    NVML_TEMPERATURE_GPU = 0
    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NoPermission = NVMLError_NoPermission

    def __init__(self, gpus: list[Gpu], clock: Clock, root: bool = False,
                 temperature_v: bool = True) -> None:
        self.gpus, self.clock, self.root = gpus, clock, root
        self.start = clock.now
        self.deprecated_temperature_calls = 0
        self.shutdowns = 0
        if temperature_v:  # nvidia-ml-py >= 12.535; older packages lack it
            self.nvmlDeviceGetTemperatureV = self._temperature_v

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Gpu:
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> Gpu:
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return gpu
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetHandleByPciBusId(self, bus_id: str) -> Gpu:
        for gpu in self.gpus:  # NVML accepts any hex spelling of domain:bus:device.function
            if _bus(gpu.bus_id) == _bus(bus_id):
                return gpu
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, gpu: Gpu) -> str:
        return gpu.uuid

    def nvmlDeviceGetName(self, gpu: Gpu) -> str:
        return gpu.name

    def nvmlDeviceGetPowerUsage(self, gpu: Gpu) -> int:
        if not gpu.power_supported:
            raise NVMLError_NotSupported()
        return int(gpu.watts * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: Gpu) -> int:
        if not gpu.energy_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return 8_000_000_000 + int(gpu.watts * (self.clock.now - self.start) * 1000)

    def _temperature_v(self, gpu: Gpu, sensor: int) -> int:
        return gpu.temp_c

    def nvmlDeviceGetTemperature(self, gpu: Gpu, sensor: int) -> int:
        self.deprecated_temperature_calls += 1
        return gpu.temp_c

    def nvmlDeviceGetPowerManagementLimit(self, gpu: Gpu) -> int:
        return gpu.limit_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, gpu: Gpu) -> list[int]:
        return list(gpu.range_mw)

    def nvmlDeviceSetPowerManagementLimit(self, gpu: Gpu, limit_mw: int) -> None:
        if not self.root:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        low, high = gpu.range_mw
        if not low <= limit_mw <= high:
            raise NVMLError(2)  # NVML_ERROR_INVALID_ARGUMENT
        gpu.limit_mw = limit_mw
        gpu.limit_history.append(limit_mw)


A100 = dict(name="NVIDIA A100-SXM4-40GB", uuid="GPU-aaaaaaaa-1111-2222-3333-444444444444",
            bus_id="00000000:3B:00.0", watts=180.0)
H100 = dict(name="NVIDIA H100 80GB HBM3", uuid="GPU-bbbbbbbb-5555-6666-7777-888888888888",
            bus_id="00000000:AF:00.0", watts=520.0, temp_c=72)


def two_gpus(clock: Clock, **kwargs: object) -> PynvmlStandIn:
    return PynvmlStandIn([Gpu(**A100), Gpu(**H100)], clock, **kwargs)


def test_pynvml_stand_in_power_not_supported_falls_back_to_the_energy_counter():
    clock = Clock()
    nvml = PynvmlStandIn([Gpu(**{**H100, "power_supported": False, "watts": 250.0})], clock)
    source = NvidiaSource(clock=clock, nvml=nvml, env={})
    assert "energy counter" in source.describe()
    sampler = Sampler(source, period_s=0.5)
    samples = []
    for _ in range(20):
        clock.now += 0.5
        samples.append(sampler.poll_once())
    assert samples[0].power_w is None  # one publish of the counter gives no rate yet
    assert all(s.power_w == pytest.approx(250.0, rel=1e-3) for s in samples[3:])
    assert sampler.energy_j == pytest.approx(250.0 * 9.5, rel=1e-3)
    assert samples[-1].temp_c == 72.0 and samples[-1].kind == "measured"
    assert sampler.available  # NotSupported for power no longer disables the source


def test_pynvml_stand_in_without_power_or_energy_is_unavailable():
    gpu = Gpu(**{**H100, "power_supported": False, "energy_supported": False})
    with pytest.raises(SourceUnavailable, match="neither power nor the energy counter"):
        NvidiaSource(clock=Clock(), nvml=PynvmlStandIn([gpu], Clock()), env={})


def test_pynvml_stand_in_temperature_uses_the_v_call_first():
    clock = Clock()
    nvml = PynvmlStandIn([Gpu(**H100)], clock)
    assert NvidiaSource(clock=clock, nvml=nvml, env={}).read().temp_c == 72.0
    assert nvml.deprecated_temperature_calls == 0
    old_package = PynvmlStandIn([Gpu(**H100)], clock, temperature_v=False)
    assert NvidiaSource(clock=clock, nvml=old_package, env={}).read().temp_c == 72.0
    assert old_package.deprecated_temperature_calls >= 1
    old_driver = PynvmlStandIn([Gpu(**H100)], clock)

    def missing(gpu: Gpu, sensor: int) -> int:
        raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)

    old_driver.nvmlDeviceGetTemperatureV = missing
    assert NvidiaSource(clock=clock, nvml=old_driver, env={}).read().temp_c == 72.0


def test_pynvml_stand_in_reads_the_gpu_mlx_computes_on():
    clock = Clock()
    by_uuid = ComputeDevice("gpu", "cuda", "H100", uuid=H100["uuid"], pci_bus_id="0000:af:00.0")
    source = NvidiaSource(by_uuid, clock=clock, nvml=two_gpus(clock), env={})
    assert source.read().power_w == 520.0 and "MLX's GPU" in source.device
    by_bus = ComputeDevice("gpu", "cuda", "H100", uuid="MIG-not-in-nvml",
                           pci_bus_id="0000:af:00.0")
    assert NvidiaSource(by_bus, clock=clock, nvml=two_gpus(clock), env={}).read().power_w == 520
    prefix = {"CUDA_VISIBLE_DEVICES": "GPU-bbbb,GPU-aaaa"}
    assert NvidiaSource(clock=clock, nvml=two_gpus(clock), env=prefix).read().power_w == 520
    pci_order = {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    source = NvidiaSource(clock=clock, nvml=two_gpus(clock), env=pci_order)
    assert source.read().power_w == 520 and "guess" not in source.device
    fastest_first = NvidiaSource(clock=clock, nvml=two_gpus(clock),
                                 env={"CUDA_VISIBLE_DEVICES": "1"})
    assert "guess" in fastest_first.device  # mixed models: CUDA's order may differ
    same_model = PynvmlStandIn([Gpu(**H100), Gpu(**{**H100, "uuid": "GPU-c", "bus_id":
                                                    "00000000:B0:00.0"})], clock)
    assert "guess" not in NvidiaSource(clock=clock, nvml=same_model,
                                       env={"CUDA_VISIBLE_DEVICES": "1"}).device
    for hidden in ("", "-1", "NoDevFiles"):
        with pytest.raises(SourceUnavailable, match="hides every GPU"):
            NvidiaSource(clock=clock, nvml=two_gpus(clock),
                         env={"CUDA_VISIBLE_DEVICES": hidden})
    with pytest.raises(SourceUnavailable, match="does not exist"):
        NvidiaSource(clock=clock, nvml=two_gpus(clock), env={"CUDA_VISIBLE_DEVICES": "5"})


def test_cuda_visible_devices_is_read_like_the_cuda_runtime():
    assert cuda_target({}) is None
    assert cuda_target({"CUDA_VISIBLE_DEVICES": "2,0"}) == CudaTarget(index=2)
    assert cuda_target({"CUDA_VISIBLE_DEVICES": " GPU-8f1e,1"}) == CudaTarget(
        uuid_prefix="GPU-8f1e")
    assert cuda_target({"CUDA_VISIBLE_DEVICES": "MIG-12"}).uuid_prefix == "MIG-12"
    assert cuda_target({"CUDA_VISIBLE_DEVICES": "-1"}).hidden
    assert cuda_target({"CUDA_VISIBLE_DEVICES": "x,0"}).hidden  # invalid first entry


def test_auto_never_measures_an_idle_gpu_when_mlx_computes_on_the_cpu(tmp_path):
    order, skipped = auto_order(ComputeDevice("cpu", "cpu"))
    assert "nvidia" not in order and "MLX computes on the CPU" in skipped[0]
    assert auto_order(ComputeDevice("gpu", "cuda"))[0][:2] == ("apple", "nvidia")
    source, why = pick_source(TelemetryConfig(), compute=ComputeDevice("cpu", "cpu"),
                              rapl_root=tmp_path)
    assert source.name != "nvidia" and "nvidia: MLX computes on the CPU" in why
    assert "for MLX on cpu (cpu)" in why


def test_power_limit_stand_in_needs_root_and_says_so():
    clock = Clock()
    nvml = PynvmlStandIn([Gpu(**H100)], clock, root=False)
    limit = NvidiaPowerLimit.for_source(NvidiaSource(clock=clock, nvml=nvml, env={}))
    change = limit.apply(300.0)
    assert not change.applied and "needs root" in change.message
    assert nvml.gpus[0].limit_mw == 700_000 and limit.restore() is None
    assert NvidiaPowerLimit.for_source(SimulatedSource()) is None


def test_power_limit_stand_in_as_root_is_clamped_and_restored_once():
    clock = Clock()
    nvml = PynvmlStandIn([Gpu(**H100)], clock, root=True)
    limit = NvidiaPowerLimit.for_source(NvidiaSource(clock=clock, nvml=nvml, env={}))
    change = limit.apply(120.0)  # below the card's 200 W floor
    assert change.applied and "200 W" in change.message and "outside" in change.message
    assert nvml.gpus[0].limit_mw == 200_000 and limit.active
    restored = limit.restore()
    assert restored.applied and nvml.gpus[0].limit_mw == 700_000
    assert limit.restore() is None and nvml.gpus[0].limit_history == [200_000, 700_000]


def test_thermal_control_sets_the_limit_at_start_and_restores_it_at_stop_stand_in():
    clock = Clock()
    nvml = PynvmlStandIn([Gpu(**H100)], clock, root=True)
    config = Config()
    config.tscu.nvidia_power_limit = True
    config.tscu.power_budget_watts = 350.0
    infos: list[str] = []
    warnings: list[str] = []
    control = ThermalControl(config, on_warning=warnings.append, on_info=infos.append,
                             source=NvidiaSource(clock=clock, nvml=nvml, env={}))
    control.start()
    assert nvml.gpus[0].limit_mw == 350_000
    control.announce()  # the trainer announces once RunStarted is out
    assert any("set to 350 W" in m for m in infos)
    try:
        raise KeyboardInterrupt  # Ctrl+C in the loop: the trainer's finally calls stop()
    except KeyboardInterrupt:
        pass
    finally:
        control.stop()
    assert nvml.gpus[0].limit_mw == 700_000 and warnings == []
    assert any("set to 350 W" in m for m in infos) and any("restored" in m for m in infos)
    assert nvml.shutdowns == 1  # NVML closed only after the limit was put back
    control.stop()
    assert nvml.gpus[0].limit_history == [350_000, 700_000]


def test_power_limit_on_a_source_that_is_not_nvml_is_said_plainly():
    config = Config()
    config.tscu.nvidia_power_limit = True
    warnings: list[str] = []
    ThermalControl(config, on_warning=warnings.append, source=SimulatedSource())
    assert len(warnings) == 1 and "not NVML" in warnings[0]


def test_stand_in_errors_match_the_real_pynvml():
    pynvml = pytest.importorskip("pynvml")
    real = pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
    assert isinstance(real, pynvml.NVMLError_NotSupported)
    assert nvml_error_code(real) == NVML_ERROR_NOT_SUPPORTED
    assert nvml_error_code(pynvml.NVMLError_NoPermission()) == NVML_ERROR_NO_PERMISSION
    assert pynvml.NVML_ERROR_FUNCTION_NOT_FOUND == NVML_ERROR_FUNCTION_NOT_FOUND
    assert nvml_error_code(NVMLError(NVML_ERROR_NOT_SUPPORTED)) == NVML_ERROR_NOT_SUPPORTED
    assert isinstance(NVMLError(NVML_ERROR_NOT_SUPPORTED), NVMLError_NotSupported)
    for name in ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetHandleByUUID",
                 "nvmlDeviceGetHandleByPciBusId", "nvmlDeviceGetTotalEnergyConsumption",
                 "nvmlDeviceSetPowerManagementLimit",
                 "nvmlDeviceGetPowerManagementLimitConstraints"):
        assert hasattr(pynvml, name)
