"""Apple Silicon telemetry at the hardware boundary, with stand-ins that behave like the
real libraries (no Mac here): a zeus-like monitor whose counters publish in batches, SMC
key tables of two chip generations, IOHID sensor names. The logic under test is real."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from tscu_tui.engine.telemetry.apple import (
    PACKAGE_FIELDS_MJ,
    AppleSource,
    parse_powermetrics_w,
)
from tscu_tui.engine.telemetry.apple_iokit import SMCKeyData, fourcc, from_fourcc
from tscu_tui.engine.telemetry.apple_sensors import (
    AppleTemperatures,
    DieTemperatures,
    chip_generation,
    classify_smc_key,
    discover_smc_keys,
    hid_temperatures,
)
from tscu_tui.engine.telemetry.counters import BatchedCounter
from tscu_tui.engine.telemetry.sampler import Sampler

GPU_CADENCE_S = 0.12


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Channel:
    """True cumulative energy of one IOReport channel: piecewise-constant watts."""

    cadence_s: float
    phase_s: float
    segments: list[tuple[float, float, float]] = field(default_factory=list)  # t, mJ, W

    def true_mj(self, t: float) -> float:
        start, mj, watts = next(s for s in reversed(self.segments) if s[0] <= t)
        return mj + watts * (t - start) * 1000.0

    def published_mj(self, t: float) -> int:
        """What IOReport shows at t: the value at the last publish, in whole mJ."""
        last = self.phase_s + math.floor((t - self.phase_s) / self.cadence_s) * self.cadence_s
        return int(self.true_mj(last))


class ZeusLikeMonitorStandIn:
    """Stands in for zeus_apple_silicon.AppleEnergyMonitor on real silicon: integer mJ
    counters, cumulative since boot, that move only when the chip publishes -- CPU, ANE and
    DRAM every `batch_s` (about 1 s on an M1 Ultra, 2 s on an M5 Max), GPU every 120 ms.
    Windows behave like zeus' (a duplicate begin raises) and are counted."""

    def __init__(self, clock: Clock, watts: dict[str, float], batch_s: float) -> None:
        self.clock = clock
        self.window_calls = 0
        self._open: set[str] = set()
        boot = clock.now - 5000.0
        self.channels = {}
        for name in ("cpu_total_mj", "gpu_mj", "ane_mj", "dram_mj"):
            cadence = GPU_CADENCE_S if name == "gpu_mj" else batch_s
            channel = Channel(cadence_s=cadence, phase_s=boot + 0.37)
            channel.segments.append((boot - 100.0, 9_000_000.0, watts.get(name, 0.0)))
            self.channels[name] = channel

    def set_watts(self, name: str, watts: float) -> None:
        channel, now = self.channels[name], self.clock.now
        channel.segments.append((now, channel.true_mj(now), watts))

    def true_package_j(self) -> float:
        return sum(self.channels[f].true_mj(self.clock.now) for f in PACKAGE_FIELDS_MJ) / 1e3

    def get_cumulative_energy(self) -> SimpleNamespace:
        t = self.clock.now
        published = {name: ch.published_mj(t) for name, ch in self.channels.items()}
        return SimpleNamespace(**published, efficiency_cores_mj=None,
                               performance_cores_mj=None, gpu_sram_mj=None)

    def begin_window(self, key: str) -> None:
        self.window_calls += 1
        if key in self._open:
            raise RuntimeError("Measurement with specified key already exists.")
        self._open.add(key)

    def end_window(self, key: str) -> SimpleNamespace:
        self.window_calls += 1
        if key not in self._open:
            raise RuntimeError("No measurement with provided key had been started.")
        self._open.discard(key)
        return self.get_cumulative_energy()


WATTS = {"cpu_total_mj": 12.0, "gpu_mj": 30.0, "ane_mj": 0.0, "dram_mj": 3.0}
PACKAGE_W = 42.0  # CPU + GPU + ANE: DRAM is not part of Apple package power


def run_sampler(source: AppleSource, clock: Clock, seconds: float, period: float = 0.5,
                jitter: float = 0.0) -> tuple[Sampler, list]:
    sampler = Sampler(source, period_s=period, history=10_000)
    samples = []
    for i in range(int(seconds / period)):
        clock.now += period + jitter * math.sin(i * 2.39996)  # deterministic jitter
        samples.append(sampler.poll_once())
    return sampler, samples


@pytest.mark.parametrize("batch_s", [1.0, 2.0], ids=["m1_ultra_1s", "m5_max_2s"])
def test_zeus_like_stand_in_batched_counters_give_steady_package_power(batch_s: float):
    clock = Clock()
    monitor = ZeusLikeMonitorStandIn(clock, WATTS, batch_s)
    # The stand-in is as awkward as the hardware: read to read, power is 0 or inflated.
    naive, last = [], monitor.get_cumulative_energy().cpu_total_mj
    for _ in range(8):
        clock.now += 0.5
        now = monitor.get_cumulative_energy().cpu_total_mj
        naive.append((now - last) / 1000.0 / 0.5)
        last = now
    assert min(naive) == 0.0 and max(naive) >= 1.9 * WATTS["cpu_total_mj"]

    source = AppleSource(monitor, clock=clock)
    start_true = monitor.true_package_j()
    sampler, samples = run_sampler(source, clock, seconds=60.0)
    settled = samples[int(2 * max(batch_s, 2.0) / 0.5) + 2:]
    assert all(s.power_w == pytest.approx(PACKAGE_W, rel=0.02) for s in settled)
    assert sampler.window_average(2.0) == pytest.approx(PACKAGE_W, rel=0.03)  # GPU batches
    measured = sampler.energy_j
    true = monitor.true_package_j() - start_true
    assert abs(measured - true) < PACKAGE_W * batch_s  # within one batch, however long
    assert monitor.window_calls == 0  # windows lose the energy between end and begin
    assert all(s.source == "apple" and s.kind == "measured" for s in samples)


def test_zeus_like_stand_in_jittered_reads_stay_within_a_few_percent():
    clock = Clock()
    source = AppleSource(ZeusLikeMonitorStandIn(clock, WATTS, batch_s=2.0), clock=clock)
    _, samples = run_sampler(source, clock, seconds=90.0, jitter=0.12)
    assert all(s.power_w == pytest.approx(PACKAGE_W, rel=0.08) for s in samples[20:])


def test_zeus_like_stand_in_power_follows_a_step_and_an_idle_ane():
    clock = Clock()
    monitor = ZeusLikeMonitorStandIn(clock, {**WATTS, "ane_mj": 4.0}, batch_s=1.0)
    source = AppleSource(monitor, clock=clock)
    run_sampler(source, clock, seconds=20.0)
    assert source.read().power_w == pytest.approx(PACKAGE_W + 4.0, rel=0.02)
    monitor.set_watts("cpu_total_mj", 32.0)
    monitor.set_watts("ane_mj", 0.0)  # the ANE goes idle: its counter stands still
    _, samples = run_sampler(source, clock, seconds=20.0)
    assert samples[-1].power_w == pytest.approx(PACKAGE_W + 20.0, rel=0.02)
    assert samples[11].power_w == pytest.approx(PACKAGE_W + 20.0, rel=0.05)  # within 6 s


def test_batched_counter_is_unknown_until_two_publishes_then_idle_means_zero():
    counter = BatchedCounter(window_s=4.0, idle_after_s=4.0)
    counter.update(0.0, 100.0)
    counter.update(0.5, 100.0)
    assert counter.rate_w(0.5) is None  # nothing published yet: unknown, not 0 W
    counter.update(1.0, 110.0)  # published between 0.5 and 1.0: taken as 0.75
    assert counter.rate_w(1.0) is None  # one publish gives no interval
    for t in (1.5, 2.0, 2.5):
        counter.update(t, 110.0)
    counter.update(3.0, 130.0)  # published at about 2.75: 20 J in 2 s
    assert counter.rate_w(3.0) == pytest.approx(10.0)
    assert counter.rate_w(2.75 + 4.9) == pytest.approx(10.0)  # 2.5 intervals not yet over
    assert counter.rate_w(2.75 + 5.0) == 0.0
    counter.update(20.0, 5.0)  # a counter restart keeps what was counted
    counter.update(22.0, 25.0)
    assert counter.energy_j(22.0) >= 30.0 + 20.0
    quiet = BatchedCounter(idle_after_s=4.0)
    quiet.update(0.0, 7.0)
    assert quiet.rate_w(3.9) is None and quiet.rate_w(4.0) == 0.0


def test_apple_package_power_is_cpu_gpu_ane_in_both_apple_sources():
    assert PACKAGE_FIELDS_MJ == ("cpu_total_mj", "gpu_mj", "ane_mj")
    combined = "CPU Power: 900 mW\nGPU Power: 300 mW\nCombined Power (CPU + GPU + ANE): 1234 mW\n"
    assert parse_powermetrics_w(combined) == pytest.approx(1.234)
    monterey = ("E-Cluster Power: 38 mW\nP0-Cluster Power: 3 mW\nANE Power: 10 mW\n"
                "DRAM Power: 33 mW\nCPU Power: 44 mW\nGPU Power: 8 mW\nPackage Power: 95 mW\n"
                "**** GPU usage ****\nGPU Power: 8 mW\n")
    assert parse_powermetrics_w(monterey) == pytest.approx(0.062)  # no DRAM, GPU once
    assert parse_powermetrics_w("no power here") is None


class AppleSmcStandIn:
    """Behaves like AppleSMCKeysEndpoint: keys by index (including `#KEY`), each with a
    size and four-character type; "flt " values are little-endian IEEE singles."""

    def __init__(self, table: dict[str, tuple[str, float]]) -> None:
        self.table = {"#KEY": ("ui32", float(len(table) + 1)), **table}
        self.keys = list(self.table)
        self.closed = False

    def key_count(self) -> int:
        data = self.read_bytes("#KEY", 4, "ui32")
        return struct.unpack(">I", data)[0]

    def key_at(self, index: int) -> str | None:
        return self.keys[index] if index < len(self.keys) else None

    def key_info(self, key: str) -> tuple[int, str] | None:
        if key not in self.table:
            return None
        kind = self.table[key][0]
        return ({"flt ": 4, "ui32": 4, "ui8 ": 1, "fpe2": 2}[kind], kind)

    def read_bytes(self, key: str, size: int, data_type: str) -> bytes | None:
        kind, value = self.table[key]
        if kind == "flt ":
            return struct.pack("<f", value)[:size]
        if kind == "ui32":
            return struct.pack(">I", int(value))
        return bytes([int(value) & 0xFF]) * size

    def close(self) -> None:
        self.closed = True


M1_TABLE = {  # an M1: Tp* CPU cores, Tg* GPU, plus keys that are not die sensors
    "TB0T": ("flt ", 31.0),  # battery
    "Tp09": ("flt ", 55.25), "Tp0T": ("flt ", 61.0), "Tp01": ("flt ", 70.5),
    "Tp0b": ("flt ", 0.0),  # an absent probe reads 0
    "Tp0X": ("ui8 ", 99.0),  # not a float key: skipped
    "Tg05": ("flt ", 48.0), "Tg0D": ("flt ", 52.5),
    "Tf04": ("flt ", 120.0),  # Tf keys mean nothing known on an M1: never used
    "TaLP": ("flt ", 35.0),  # airflow
}
M3_TABLE = {  # an M3 Max: E-cores Te*, P-cores Tf0?/Tf4?, GPU Tf1?/Tf2?
    "Te05": ("flt ", 45.0), "Te0L": ("flt ", 47.5),
    "Tf04": ("flt ", 66.0), "Tf09": ("flt ", 71.5), "Tf4A": ("flt ", 73.0),
    "Tf14": ("flt ", 58.0), "Tf24": ("flt ", 60.5), "Tf2A": ("flt ", 151.0),  # implausible
    "TW0P": ("flt ", 40.0),
}


def test_smc_stand_in_m1_and_m3_tables_give_hottest_cpu_and_gpu_die():
    m1 = AppleTemperatures(AppleSmcStandIn(M1_TABLE), chip_generation("Apple M1"))
    temps = m1.read()
    assert temps == DieTemperatures(cpu_c=70.5, gpu_c=52.5, via="smc")
    assert temps.governing_c == 70.5
    assert "3 CPU, 2 GPU" not in m1.describe() and "4 CPU, 2 GPU" in m1.describe()
    m3 = AppleTemperatures(AppleSmcStandIn(M3_TABLE), chip_generation("Apple M3 Max"))
    temps = m3.read()
    assert (temps.cpu_c, temps.gpu_c, temps.governing_c) == (73.0, 60.5, 73.0)
    keys = discover_smc_keys(AppleSmcStandIn(M3_TABLE), 3)
    assert keys.cpu == ("Te05", "Te0L", "Tf04", "Tf09", "Tf4A")
    assert keys.gpu == ("Tf14", "Tf24", "Tf2A")


def test_smc_key_classification_rules():
    assert classify_smc_key("Tp0T", 1) == "cpu" and classify_smc_key("Te0S", 4) == "cpu"
    assert classify_smc_key("Tg0f", 2) == "gpu"
    assert classify_smc_key("Tf4E", 3) == "cpu" and classify_smc_key("Tf19", 3) == "gpu"
    assert classify_smc_key("Tf04", 4) is None and classify_smc_key("Tf04", None) is None
    assert classify_smc_key("TB0T", 3) is None and classify_smc_key("PSTR", 3) is None
    assert chip_generation("Apple M5 Max") == 5 and chip_generation("Intel(R) Core") is None


def hid_readings() -> list[tuple[str, float]]:
    return [("pACC MTR Temp Sensor2", 64.0), ("eACC MTR Temp Sensor0", 50.0),
            ("GPU MTR Temp Sensor1", 57.0), ("PMU tdie3", 68.0),
            ("gas gauge battery", 31.0), ("NAND CH0 temp", 44.0),
            ("GPU MTR Temp Sensor4", -127.0)]


def test_hid_stand_in_is_the_fallback_when_the_smc_has_no_die_keys():
    smc_without_dies = AppleSmcStandIn({"TB0T": ("flt ", 31.0)})
    temps = AppleTemperatures(smc_without_dies, 1, hid=hid_readings).read()
    assert temps == DieTemperatures(cpu_c=64.0, gpu_c=57.0, soc_c=68.0, via="hid")
    assert temps.governing_c == 64.0  # CPU/GPU dies govern; the PMU die only without them
    only_pmu = hid_temperatures([("PMU tdie1", 61.0), ("gas gauge battery", 30.0)])
    assert only_pmu is not None and only_pmu.governing_c == 61.0
    assert hid_temperatures([("gas gauge battery", 30.0)]) is None
    assert AppleTemperatures(None, None, hid=list).read() is None  # nothing: n/a
    assert AppleTemperatures(None, None).read() is None


def test_apple_source_carries_the_governing_and_both_die_temperatures_stand_in():
    clock = Clock()
    smc = AppleSmcStandIn(M3_TABLE)
    source = AppleSource(ZeusLikeMonitorStandIn(clock, WATTS, 1.0),
                         AppleTemperatures(smc, 3), clock=clock)
    clock.now += 0.5
    sample = source.read()
    assert (sample.temp_c, sample.cpu_temp_c, sample.gpu_temp_c) == (73.0, 73.0, 60.5)
    assert "SMC die sensors" in source.describe()
    source.close()
    assert smc.closed


def test_smc_struct_matches_the_kernel_layout():
    assert struct.calcsize("<f") == 4
    import ctypes

    assert ctypes.sizeof(SMCKeyData) == 80
    assert SMCKeyData.bytes.offset == 48 and SMCKeyData.data8.offset == 42
    assert from_fourcc(fourcc("Tp0T")) == "Tp0T" and fourcc("flt ") == 1718383648
