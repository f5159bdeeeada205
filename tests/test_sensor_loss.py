"""Telemetry that fails mid-run, through the real sampler thread and ThermalControl.

The sensor is a stand-in for hardware (the one boundary faked here): it reads
30 W and 60 °C, then fails in one of three ways a real sensor does: its read
raises, it answers garbage, or it never answers. Whatever the way, within a few
sampling periods the readings are n/a (never the last values, never 0 W), the
telemetry is shown as failed, and the governor falls to the safe side: c at its
floor ("slow") or a stop ("stop"). The thread runs in real time (20 ms periods),
so these tests take a second or two each.
"""

from __future__ import annotations

import threading
import time

import pytest

from tscu_tui.engine.config import load_config
from tscu_tui.engine.telemetry.base import Source
from tscu_tui.engine.telemetry.health import stale_seconds
from tscu_tui.engine.telemetry.sample import Sample
from tscu_tui.engine.train.thermal import ThermalControl, ThermalStep

PERIOD_S = 0.02


class FailingSensorFake(Source):
    """30 W and 60 °C until `fail()`; then raises, answers garbage or hangs."""

    name = "sensor-fake"

    def __init__(self, how: str) -> None:
        self.how = how
        self.failed = threading.Event()
        self.released = threading.Event()  # a hung read returns once this is set

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, "test stand-in"

    def fail(self) -> None:
        self.failed.set()

    def read(self) -> Sample:
        if self.failed.is_set():
            if self.how == "raise":
                raise OSError("sensor gone")
            if self.how == "garbage":
                return Sample(t_s=time.monotonic(), power_w=-3.0e9, temp_c=1.0e6,
                              energy_j=None, source=self.name, kind="measured")
            self.released.wait(10.0)  # "hang": a driver call that never comes back
        return Sample(t_s=time.monotonic(), power_w=30.0, temp_c=60.0, energy_j=None,
                      source=self.name, kind="measured")


def _control(sensor: Source, *overrides: str) -> tuple[ThermalControl, list[str], list[str]]:
    config = load_config(None, [f"telemetry.interval_seconds={PERIOD_S}",
                                "tscu.power_budget_watts=20.0", "tscu.control_frequency=1",
                                *overrides])
    warnings: list[str] = []
    infos: list[str] = []
    control = ThermalControl(config, on_warning=warnings.append, on_info=infos.append,
                             source=sensor)
    return control, warnings, infos


def _steps_for(control: ThermalControl, seconds: float, since: float | None = None
               ) -> list[ThermalStep]:
    """Steps of 10 ms compute + 10 ms idle, in real time (the sampler thread is real);
    with `since`, only those that ended more than a stale reading's age after it."""
    steps = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)  # "compute": the sampler thread needs real time to run
        started = time.monotonic()
        step = control.after_step(0.01)
        assert time.monotonic() - started < 0.2  # never waits on a hung sensor
        if since is None or started > since + stale_seconds(PERIOD_S):
            steps.append(step)
        time.sleep(0.01)
    return steps


@pytest.mark.parametrize("how", ["raise", "garbage", "hang"])
def test_a_sensor_that_fails_is_shown_failed_and_the_governor_slows_to_its_floor(how):
    sensor = FailingSensorFake(how)
    control, warnings, infos = _control(sensor)
    control.start()
    try:
        before = _steps_for(control, 0.8)
        assert before[-1].power_w == pytest.approx(30.0) and before[-1].temp_c == 60.0
        assert before[-1].sensor is None and before[-1].energy_j is not None
        c_before = before[-1].control_factor
        assert c_before == 0.1  # 30 W, whatever c, over a 20 W budget: at the floor
        sensor.fail()
        after = _steps_for(control, 1.6, since=time.monotonic())
    finally:
        sensor.released.set()
        control.stop()
    # Never the last values, never 0 W or a frozen joule count read as one.
    assert all(s.power_w is None and s.temp_c is None and s.energy_j is None for s in after)
    assert all(s.sensor is not None for s in after)
    lost = [s for s in after if s.sensor and s.sensor.startswith("lost")]
    held = [s for s in after if s.sensor and s.sensor.startswith("failing")]
    assert lost and held  # held first, for the grace (a few periods, >= 1 s), then lost
    assert after.index(lost[0]) > after.index(held[-1])
    # Silence read as 0 W would have sent c up to 1; a stale 60 °C would have pinned it.
    assert all(s.control_factor == 0.1 for s in after)
    what = {"raise": "sensor gone", "garbage": "implausible reading power_w = -3e+09 W",
            "hang": "no reading for"}[how]
    assert what in lost[-1].sensor
    assert any(w.startswith("telemetry lost (") and "holds c at 0.1" in w for w in warnings)
    assert all(s.stop is None for s in after)  # "slow" keeps training


def test_on_sensor_loss_stop_asks_for_a_stop_and_readings_that_return_are_used_again():
    sensor = FailingSensorFake("raise")
    control, _, _ = _control(sensor, 'tscu.on_sensor_loss="stop"')
    control.start()
    try:
        _steps_for(control, 0.4)
        sensor.fail()
        after = _steps_for(control, 1.5)
    finally:
        control.stop()
    stops = [s for s in after if s.stop is not None]
    assert stops and stops[0].stop == "sensor_lost"
    assert stops[0].stop_message == ("telemetry lost (sensor gone): saving and stopping "
                                     '(tscu.on_sensor_loss = "stop")')

    sensor = FailingSensorFake("raise")
    control, _, infos = _control(sensor)
    control.start()
    try:
        _steps_for(control, 0.3)
        sensor.fail()
        _steps_for(control, 1.5)
        sensor.failed.clear()  # plugged back in
        back = _steps_for(control, 0.5)
    finally:
        control.stop()
    assert back[-1].sensor is None and back[-1].temp_c == 60.0
    assert back[-1].power_w == pytest.approx(30.0)
    assert any(i.startswith("telemetry is back after ") for i in infos)
    assert control.summary()["telemetry_lost_seconds"] > 1.0
