"""Telemetry sources and the sampler: real files, real psutil, simulated time."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tscu_tui.engine.config.schema import TelemetryConfig
from tscu_tui.engine.telemetry.apple import AppleSource
from tscu_tui.engine.telemetry.auto import pick_source
from tscu_tui.engine.telemetry.base import NullSource, Source, SourceUnavailable
from tscu_tui.engine.telemetry.estimated import EstimatedSource, guess_tdp_watts, model_power_w
from tscu_tui.engine.telemetry.hwmon import HwmonSource, pick_temperature, read_temperature_c
from tscu_tui.engine.telemetry.nvidia import NvidiaSource
from tscu_tui.engine.telemetry.rapl import RaplSource, find_domains
from tscu_tui.engine.telemetry.replay import ReplaySource, write_samples
from tscu_tui.engine.telemetry.sample import Sample
from tscu_tui.engine.telemetry.sampler import Sampler
from tscu_tui.engine.telemetry.simulated import PlantParams, SimulatedSource, ThermalPlant


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_domain(root: Path, name: str, label: str, energy_uj: int, max_uj: int) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "name").write_text(label + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    make_domain(root, "intel-rapl:0", "package-0", 1_000_000, 10_000_000)
    make_domain(root, "intel-rapl:0:0", "core", 900_000, 10_000_000)  # nested: never summed
    make_domain(root, "intel-rapl:1", "package-1", 2_000_000, 10_000_000)
    make_domain(root, "intel-rapl:2", "psys", 5_000_000, 10_000_000)  # overlaps packages
    return root


def test_rapl_sums_top_level_packages_and_handles_wraparound(powercap: Path):
    assert [d.name for d in find_domains(powercap)] == ["package-0", "package-1"]
    assert RaplSource.available(powercap)[0]
    clock = FakeClock()
    source = RaplSource(root=powercap, clock=clock)
    (powercap / "intel-rapl:0" / "energy_uj").write_text("3000000")  # +2 J
    (powercap / "intel-rapl:0:0" / "energy_uj").write_text("9000000")  # ignored
    (powercap / "intel-rapl:1" / "energy_uj").write_text("500000")  # wrapped: +8.5 J
    clock.now += 2.0
    sample = source.read()
    assert sample.energy_j == pytest.approx(10.5)
    assert sample.power_w == pytest.approx(5.25)
    assert (sample.source, sample.kind, sample.temp_c) == ("rapl", "measured", None)


def test_rapl_missing_and_root_only_are_explained(tmp_path: Path, powercap: Path):
    ok, why = RaplSource.available(tmp_path / "nothing")
    assert not ok and "no RAPL" in why
    with pytest.raises(SourceUnavailable):
        RaplSource(root=tmp_path / "nothing")
    counter = powercap / "intel-rapl:0" / "energy_uj"
    counter.chmod(0)
    try:
        if counter.stat().st_mode & 0o444 == 0 and _unreadable(counter):
            ok, why = RaplSource.available(powercap)
            assert not ok and "root only" in why
    finally:
        counter.chmod(0o644)


def _unreadable(path: Path) -> bool:
    try:
        path.read_text()
    except PermissionError:
        return True
    return False  # running as root: permissions are not enforced


def test_hwmon_prefers_package_labels_and_never_invents_a_value():
    entry = SimpleNamespace
    chips = {"acpitz": [entry(label="", current=45.0)],
             "coretemp": [entry(label="Core 0", current=70.0),
                          entry(label="Package id 0", current=65.0)],
             "nvme": [entry(label="Composite", current=90.0)]}
    assert pick_temperature(chips) == 65.0
    assert pick_temperature({"k10temp": [entry(label="Tctl", current=55.5)]}) == 55.5
    assert pick_temperature({"coretemp": [entry(label="Package id 0", current=0.0)]}) is None
    assert pick_temperature({}) is None
    temp = read_temperature_c()
    assert temp is None or isinstance(temp, float)
    sample = HwmonSource().read()
    assert sample.power_w is None and sample.kind == "measured"
    assert isinstance(HwmonSource.available()[1], str)


def test_estimated_source_uses_real_psutil():
    assert model_power_w(0.0, 50.0, 5.0) == 5.0 and model_power_w(1.5, 50.0, 5.0) == 50.0
    assert 15.0 <= guess_tdp_watts() <= 250.0
    source = EstimatedSource(tdp_watts=40.0, idle_watts=4.0)
    sample = source.read()
    assert sample.kind == "estimated" and sample.source == "estimated"
    assert 4.0 <= sample.power_w <= 40.0
    assert sample.temp_c is None and sample.energy_j is None
    assert EstimatedSource(tdp_watts=0.0).tdp_w == guess_tdp_watts()


def test_simulated_plant_approaches_steady_state_and_counts_energy():
    params = PlantParams(idle_w=5.0, busy_w=40.0, thermal_resistance_k_per_w=1.0,
                         heat_capacity_j_per_k=10.0, ambient_c=20.0)
    plant = ThermalPlant(params)
    for _ in range(1000):
        sample = plant.advance(0.5, busy_fraction=0.5)
    assert sample.power_w == pytest.approx(22.5)
    assert sample.temp_c == pytest.approx(20.0 + 22.5, abs=1e-6)
    assert sample.energy_j == pytest.approx(22.5 * 500.0)
    assert sample.kind == "simulated"
    clock, duty = FakeClock(), [0.0]
    source = SimulatedSource(ThermalPlant(params), duty=lambda: duty[0], clock=clock)
    clock.now += 10.0
    assert source.read().energy_j == pytest.approx(50.0)
    duty[0] = 1.0
    clock.now += 10.0
    assert source.read().energy_j == pytest.approx(450.0)


def test_replay_returns_recorded_samples_then_ends(tmp_path: Path):
    recorded = [Sample(t_s=float(i), power_w=10.0 + i, temp_c=None if i == 1 else 50.0,
                       energy_j=None, source="rapl", kind="measured") for i in range(3)]
    path = tmp_path / "telemetry.jsonl"
    write_samples(path, recorded)
    source = ReplaySource(path)
    assert [source.read() for _ in range(3)] == recorded
    with pytest.raises(SourceUnavailable):
        source.read()
    looped = ReplaySource(path, loop=True)
    assert [looped.read().t_s for _ in range(4)] == [0.0, 1.0, 2.0, 0.0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"t_s": 0, "kind": "guessed"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        ReplaySource(bad)


def test_optional_hardware_sources_explain_themselves():
    for cls in (AppleSource, NvidiaSource):
        ok, why = cls.available()
        assert isinstance(ok, bool) and why


def test_pick_source_auto_explains_and_explicit_sources_build(tmp_path: Path,
                                                             powercap: Path):
    source, why = pick_source(TelemetryConfig(source="auto"), rapl_root=powercap)
    assert isinstance(source, Source) and why.startswith(source.name)
    if source.name == "rapl":  # no Apple or NVIDIA here: our fake tree wins
        assert "skipped" in why
    none, _ = pick_source(TelemetryConfig(source="none"))
    assert isinstance(none, NullSource) and none.read().power_w is None
    sim, why = pick_source(TelemetryConfig(source="simulated"))
    assert sim.kind == "simulated" and "configured" in why
    with pytest.raises(SourceUnavailable, match="replay_path"):
        pick_source(TelemetryConfig(source="replay"))
    no_rapl, _ = pick_source(TelemetryConfig(), rapl_root=tmp_path / "absent")
    assert no_rapl.name in {"apple", "nvidia", "estimated"}


class ConstantPower(Source):
    name = "constant"

    def __init__(self, power_w: float, clock=time.monotonic, fail_after: int | None = None
                 ) -> None:
        self.power_w, self.clock, self.fail_after, self.reads = power_w, clock, fail_after, 0

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, "test"

    def read(self) -> Sample:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise OSError("sensor gone")
        return Sample(t_s=self.clock(), power_w=self.power_w, temp_c=None, energy_j=None,
                      source=self.name, kind="measured")


def test_sampler_integrates_trapezoids_and_window_average_in_simulated_time():
    clock = FakeClock()
    sampler = Sampler(ConstantPower(12.0, clock=clock), period_s=0.5, history=10)
    for _ in range(41):
        sampler.poll_once()
        clock.now += 0.5
    assert sampler.energy_j == pytest.approx(12.0 * 20.0)
    assert len(sampler.history()) == 10  # bounded
    assert sampler.window_average(2.0) == pytest.approx(12.0)
    assert sampler.latest().energy_j == pytest.approx(240.0)


def test_sampler_differences_hardware_counters_across_a_restart():
    clock = FakeClock()
    plant_source = SimulatedSource(ThermalPlant(PlantParams(idle_w=5.0, busy_w=5.0)),
                                   clock=clock)
    sampler = Sampler(plant_source, period_s=1.0)
    for _ in range(11):
        sampler.poll_once()
        clock.now += 1.0
    assert sampler.energy_j == pytest.approx(50.0)
    plant_source.plant.energy_j = 0.0  # the counter restarts: our total must not drop
    sampler.poll_once()
    clock.now += 1.0
    sampler.poll_once()
    assert sampler.energy_j == pytest.approx(60.0)  # 50 before + 10 counted since


def test_failing_source_degrades_once_and_never_raises():
    warnings: list[str] = []
    sampler = Sampler(ConstantPower(5.0, fail_after=2), period_s=0.01,
                      on_warning=warnings.append)
    results = [sampler.poll_once() for _ in range(5)]
    assert results[2:] == [None, None, None]
    assert not sampler.available and "sensor gone" in sampler.status
    assert len(warnings) == 1


def test_sampler_thread_runs_stops_cleanly_and_integrates_energy():
    power_w = 8.0
    sampler = Sampler(ConstantPower(power_w), period_s=0.02)
    started = time.monotonic()
    sampler.start()
    assert sampler.running
    time.sleep(0.3)  # the thread under test needs real time to run
    sampler.stop()
    assert not sampler.running
    assert not any(t.name == "tscu-telemetry" for t in threading.enumerate())
    history = sampler.history()
    assert len(history) >= 5
    span = history[-1].t_s - history[0].t_s
    assert span < time.monotonic() - started
    assert sampler.energy_j == pytest.approx(power_w * span, rel=1e-6)


def test_a_source_that_measured_nothing_gives_no_power_and_no_energy():
    """`source = "none"`: the sampler must not turn "nothing" into 0 J and then 0.0 W."""
    clock = FakeClock()
    sampler = Sampler(NullSource(clock=clock), period_s=0.5)
    for _ in range(6):
        sample = sampler.poll_once()
        assert sample is not None and sample.energy_j is None and sample.power_w is None
        clock.now += 0.5
    assert sampler.window_average(2.0) is None
    assert sampler.energy_j is None


class CounterReaderStandIn(Source):
    """Behaves like zeus' window API and an NVML counter at once: a read that overlaps
    another read raises (zeus: "Measurement with specified key already exists"), and
    the work inside a read lets other threads run, as NVML's GIL-releasing calls do."""

    name = "counter-stand-in"

    def __init__(self) -> None:
        self.counter_j = 0.0
        self.inside = 0
        self.overlaps = 0
        self.t = 0.0
        self._guard = threading.Lock()

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, "test"

    def read(self) -> Sample:
        with self._guard:
            self.inside += 1
            overlapped = self.inside > 1
        try:
            if overlapped:
                self.overlaps += 1
                raise RuntimeError("Measurement with specified key already exists.")
            self.t += 0.01
            self.counter_j += 1.0
            t, counter = self.t, self.counter_j
            time.sleep(0.0002)  # a driver call: releases the GIL like NVML does
            return Sample(t_s=t, power_w=None, temp_c=None, energy_j=counter,
                          source=self.name, kind="measured")
        finally:
            with self._guard:
                self.inside -= 1


def test_two_threads_reading_one_source_are_serialised_and_integrated_in_order():
    source = CounterReaderStandIn()
    warnings: list[str] = []
    sampler = Sampler(source, period_s=0.5, history=5000, on_warning=warnings.append)
    sampler.poll_once()  # the baseline both threads count from

    def hammer() -> None:
        for _ in range(300):
            sampler.poll_once()

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert source.overlaps == 0 and sampler.available and warnings == []
    history = sampler.history()
    assert [s.t_s for s in history] == sorted(s.t_s for s in history)
    energies = [s.energy_j for s in history]
    assert energies == sorted(energies)  # never a "counter reset" from out-of-order samples
    assert sampler.energy_j == pytest.approx(600.0)  # 600 reads of +1 J after the baseline


def test_stopped_sampler_never_reads_a_closed_source():
    source = ConstantPower(3.0)
    sampler = Sampler(source, period_s=0.5)
    sampler.poll_once()
    sampler.stop()
    sampler.stop()  # idempotent: the trainer's finally may stop twice
    assert sampler.poll_once() is None and source.reads == 1


def test_thermal_control_with_no_telemetry_reports_n_a_not_zero_watts():
    """What the headless display prints as W: None (n/a), never an invented 0.0."""
    from tscu_tui.engine.config import Config
    from tscu_tui.engine.train.thermal import ThermalControl

    control = ThermalControl(Config(), on_warning=lambda message: None, source=NullSource())
    control.start()
    try:
        steps = [control.after_step(0.01) for _ in range(3)]
    finally:
        control.stop()
    assert all(s.power_w is None and s.energy_j is None and not s.over_budget for s in steps)
    assert control.summary()["avg_power_watts"] is None
