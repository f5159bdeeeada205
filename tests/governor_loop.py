"""The whole T-SCU chain (sampler, power window, governor, duty cycle) in simulated time.

`simulated_run` drives the real `ThermalControl` as the trainer does: compute a
step, `after_step`, evaluate every `eval_every` steps (computing too, idled for
through `idle_after`), idle. The clock is simulated, so the numbers do not
depend on how fast or how loaded the machine running the test is.
"""

from __future__ import annotations

from dataclasses import dataclass

from tscu_tui.engine.config import load_config
from tscu_tui.engine.telemetry.simulated import PlantParams, SimulatedSource, ThermalPlant
from tscu_tui.engine.train.thermal import DutyMeter, ThermalControl

BUSY_W = PlantParams().busy_w


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass(frozen=True)
class LoopResult:
    avg_power_w: float  # energy over wall time, evaluations included
    control: list[float]  # c after each step
    window_power_w: list[float]
    emergencies: list[int]  # steps whose reading said emergency
    stops: list[str | None]  # the stop each step's reading asked for

    def c_variation(self, skip: int = 10) -> float:
        """Mean |c[k] - c[k-1]| after the first `skip` steps."""
        cs = self.control[skip:]
        jumps = [abs(b - a) for a, b in zip(cs, cs[1:], strict=False)]
        return sum(jumps) / len(jumps) if jumps else 0.0


def simulated_run(*overrides: str, steps: int = 60, step_s: float = 0.1,
                  eval_every: int = 20, eval_s: float = 0.3, budget_share: float = 0.6,
                  idle_evals: bool = True) -> LoopResult:
    config = load_config(None, ['telemetry.source="simulated"',
                                f"tscu.power_budget_watts={budget_share * BUSY_W}",
                                "telemetry.interval_seconds=0.05", *overrides])
    clock = FakeClock()
    duty = DutyMeter(clock)
    source = SimulatedSource(ThermalPlant(), duty=duty.fraction, clock=clock)
    thermal = ThermalControl(config, on_warning=lambda m: None, source=source, duty=duty,
                             clock=clock)
    thermal.start(background=False)
    control, window, emergencies, stops = [], [], [], []
    for step in range(1, steps + 1):
        duty.busy(True)
        clock.advance(step_s)
        duty.busy(False)
        reading = thermal.after_step(step_s)
        idle = reading.idle_s
        if step % eval_every == 0 or step == steps:
            duty.busy(True)
            clock.advance(eval_s)
            duty.busy(False)
            idle += thermal.idle_after(eval_s) if idle_evals else 0.0
        control.append(reading.control_factor if reading.control_factor is not None else 1.0)
        window.append(reading.power_w or 0.0)
        if reading.emergency:
            emergencies.append(step)
        stops.append(reading.stop)
        if step < steps:
            clock.advance(idle)
    thermal.sampler.poll_once()
    energy = thermal.energy_j()
    thermal.stop()
    assert energy is not None
    return LoopResult(avg_power_w=energy / thermal.wall_s(), control=control,
                      window_power_w=window, emergencies=emergencies, stops=stops)
