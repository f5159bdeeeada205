"""Frequency first (TSCU.md section 2): the governor's demand is met by a clock knob
before the duty cycle; `tscu.objective = "energy"` profiles clock settings in the run
and keeps the least J/token within max_slowdown. On the simulated plant, in
simulated time (the plant's clock is `actuators.simulated`, nothing real changes),
and on a fake sysfs cpufreq tree (the hardware boundary this machine lacks)."""

from __future__ import annotations

import pytest
from fake_sysfs import fake_cpu_tree, texts

from tscu_tui.engine.config import load_config
from tscu_tui.engine.errors import ConfigError
from tscu_tui.engine.hub.model_card_energy import energy_lines
from tscu_tui.engine.telemetry.actuators import guard, journal
from tscu_tui.engine.telemetry.actuators.cpufreq import CpufreqMaxFreq
from tscu_tui.engine.telemetry.actuators.simulated import SimulatedFrequency
from tscu_tui.engine.telemetry.frequency_policy import FrequencyPolicy
from tscu_tui.engine.telemetry.plant import DEFAULT_MODEL
from tscu_tui.engine.telemetry.simulated import SimulatedSource, ThermalPlant
from tscu_tui.engine.train.duty import DutyMeter
from tscu_tui.engine.train.energy_profile import ProfilePoint, choose
from tscu_tui.engine.train.frequency import FrequencyControl
from tscu_tui.engine.train.thermal import ThermalControl


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _loop(*overrides: str, steps: int = 300, budget: float = 24.0):
    """The trainer's cycle in simulated time: compute 0.25 s (512 tokens at the full
    clock), the lower clock's extra busy time, the duty cycle's idle."""
    config = load_config(None, ['telemetry.source="simulated"', "telemetry.interval_seconds=0.05",
                                f"tscu.power_budget_watts={budget}", *overrides])
    clock = Clock()
    duty = DutyMeter(clock)
    source = SimulatedSource(ThermalPlant(), duty=duty.fraction, clock=clock)
    infos: list[str] = []
    thermal = ThermalControl(config, on_warning=infos.append, on_info=infos.append,
                             source=source, duty=duty, clock=clock)
    thermal.start(background=False)
    thermal.announce()
    readings = []
    for step in range(1, steps + 1):
        duty.busy(True)
        clock.t += 0.25
        duty.busy(False)
        thermal.tokens = 512 * step
        reading = thermal.after_step(0.25)
        duty.busy(True)
        clock.t += reading.stretch_s
        duty.busy(False)
        clock.t += reading.idle_s
        readings.append(reading)
    thermal.sampler.poll_once()
    return thermal, readings, infos


def test_policy_lowers_the_clock_before_duty_cycling_and_idles_only_below_the_floor():
    policy = FrequencyPolicy(SimulatedFrequency())
    high = policy.decide(0.8)
    assert high.duty == 1.0 and high.speed < 1.0
    assert policy.ratio(high.level) <= 0.8  # the highest level predicted within the demand
    above = [lv for lv in policy.levels if lv > high.level]
    assert all(policy.ratio(lv) > 0.8 for lv in above)
    floor_ratio = policy.ratio(0.0)
    low = policy.decide(0.5 * floor_ratio)  # below what the floor draws
    assert low.level == 0.0 and low.duty == pytest.approx(0.5)
    assert policy.decide(1.0).level == 1.0 and policy.decide(1.0).duty == 1.0


def test_simulated_clock_holds_the_budget_without_idling_and_restores_at_stop():
    thermal, readings, infos = _loop('tscu.frequency_control="simulated"')
    late = readings[100:]
    assert all(r.control_factor == 1.0 and r.idle_s == 0.0 for r in late)  # no duty cycling
    assert all(r.frequency.startswith("simulated ") and "f_max" in r.frequency for r in late)
    knob = thermal.frequency.actuator
    assert 0.6 <= knob.speed() <= 0.75  # P(f) = 24 W at f ~ 0.69
    power = sum(r.power_w for r in late) / len(late)
    assert power == pytest.approx(24.0, rel=0.05)
    assert any("frequency first: simulated clock" in line for line in infos)
    thermal.stop()
    assert knob.speed() == 1.0 and not knob.changed
    assert guard.active() == [] and journal.read_entries() == {}  # nothing real was touched


def test_a_budget_below_the_floor_duty_cycles_at_the_floor():
    thermal, readings, _ = _loop('tscu.frequency_control="simulated"', budget=10.0)
    late = readings[150:]
    assert thermal.frequency.actuator.speed() == pytest.approx(0.5)  # the floor
    assert all(r.control_factor < 0.9 and r.idle_s > 0 for r in late)
    power = sum(r.power_w for r in late) / len(late)
    assert power == pytest.approx(10.0, rel=0.05)
    thermal.stop()


def test_frequency_off_is_duty_cycling_as_before():
    thermal, readings, _ = _loop('tscu.frequency_control="off"')
    assert thermal.frequency is None and all(r.frequency is None for r in readings)
    assert all(r.control_factor < 0.7 for r in readings[100:])
    thermal.stop()


@pytest.mark.parametrize(("budget", "slowdown", "speed"), [(40.0, 0.10, 0.90),
                                                           (40.0, 0.50, 0.70),
                                                           (24.0, 0.10, 0.65)])
def test_energy_objective_keeps_the_least_j_per_token_within_the_slowdown(budget, slowdown,
                                                                         speed):
    """Loose budget: within 10% slowdown the least J/token is the slowest allowed, 0.9
    f_max; within 50%, the model's optimum f* = (16/48)^(1/3) ~ 0.69 (0.7 profiled). At
    24 W the budget allows at most 0.65 (P(0.7) = 24.2 W) and sets the pace."""
    thermal, _, infos = _loop('tscu.frequency_control="simulated"', 'tscu.objective="energy"',
                              f"tscu.max_slowdown={slowdown}", budget=budget)
    profile = thermal.summary()["frequency_control"]["energy_profile"]
    assert profile["chosen"]["speed"] == pytest.approx(speed)
    curve = profile["curve"]
    assert len(curve) == 10 and curve[0]["speed"] == 1.0
    for point in curve:  # the measured curve is the plant's law
        ratio = point["joules_per_token"] / curve[0]["joules_per_token"]
        assert ratio == pytest.approx(DEFAULT_MODEL.energy_ratio(point["speed"]), rel=0.02)
    assert any(line.startswith("energy profile: keeping simulated at") for line in infos)
    assert thermal.frequency.actuator.speed() <= speed + 1e-9  # kept (the budget may lower)
    thermal.stop()


def test_choose_excludes_settings_over_the_budget_and_falls_back_to_the_least_power():
    pts = [ProfilePoint(1.0, 1.0, 10.0, 100.0, 40.0), ProfilePoint(0.5, 0.8, 8.0, 80.0, 25.0),
           ProfilePoint(0.2, 0.6, 7.0, 60.0, 18.0)]
    assert choose(pts, 30.0, 0.10).speed == 0.8  # 1.0 is over budget; 0.8 sets the pace
    assert choose(pts, 30.0, 0.30).speed == 0.6
    assert choose(pts, 10.0, 0.10).speed == 0.6  # none fits: the least power


def test_frequency_control_restores_a_fake_sysfs_cpufreq_knob(tmp_path, monkeypatch):
    monkeypatch.setenv("TSCU_STATE_DIR", str(tmp_path / "state"))
    root = fake_cpu_tree(tmp_path / "cpu", ranges_khz=[(800_000, 3_000_000)])
    config = load_config(None, ['tscu.frequency_control="cpufreq"'])
    control = FrequencyControl(config, CpufreqMaxFreq(root))
    decision, message = control.decide(0.5, emergency=False)
    assert decision.duty == 1.0 and decision.level < 1.0 and "set to" in message
    assert texts(root, "scaling_max_freq") != {"cpufreq/policy0/scaling_max_freq": "3000000"}
    assert journal.read_entries() != {}  # the original is on disk while changed
    assert "restored" in control.restore()
    assert texts(root, "scaling_max_freq") == {"cpufreq/policy0/scaling_max_freq": "3000000"}
    assert guard.active() == [] and journal.read_entries() == {}


@pytest.mark.parametrize(("override", "key"), [('tscu.frequency_control="turbo"',
                                                "tscu.frequency_control"),
                                               ('tscu.objective="speed"', "tscu.objective"),
                                               ("tscu.max_slowdown=2.0", "tscu.max_slowdown")])
def test_bad_frequency_settings_are_one_line_errors(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert key in str(err.value) and "\n" not in str(err.value)


def test_model_card_energy_section_states_the_choice_and_the_curve():
    analysis = {"frequency_control": {
        "actuator": "simulated", "simulated": True, "level": 0.86, "speed": 0.9,
        "energy_profile": {"objective": "energy", "max_slowdown": 0.1, "warmup_steps": 2,
                           "measure_steps": 4,
                           "curve": [{"level": 1.0, "speed": 1.0, "joules_per_token": 0.02,
                                      "tokens_per_s": 2048.0, "power_w": 40.0},
                                     {"level": 0.86, "speed": 0.9, "joules_per_token": 0.0186,
                                      "tokens_per_s": 1843.2, "power_w": 34.3}],
                           "chosen": {"level": 0.86, "speed": 0.9, "joules_per_token": 0.0186,
                                      "tokens_per_s": 1843.2, "power_w": 34.3}}}}
    text = "\n".join(energy_lines(analysis))
    assert "simulated" in text and "0.90 f_max" in text and "-7.0%" in text
    assert energy_lines({}) == [] and energy_lines({"frequency_control": None}) == []
