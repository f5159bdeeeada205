"""T-SCU in the training loop: measure, govern, duty-cycle, account energy.

`ThermalControl` owns the telemetry source and its sampler thread, the
governor and the efficiency tracker; what it measures, node by node and over the
run, is `train.thermal_meter`'s. The loop tells it when it computes
(`DutyMeter`), asks it after each optimizer step how long to idle, and feeds
it held-out BPT at evaluations. Where nothing can be measured the readings
are None and the governor holds c = 1: no reading is ever invented.

Safety, whatever else is switched off: the emergency stop is armed whenever a
temperature is measured (`tscu.enabled = false` only stops the duty cycling);
a source that fails or falls silent is shown as failed and, past a few
sampling periods, handled by `tscu.on_sensor_loss` (telemetry.health); a run
stopped by the emergency resumes once the chip has cooled (train.cooldown)
under the config's limits, not the checkpoint's.

`auto` telemetry measures the device MLX computes on (`train.device`). On
NVIDIA, `tscu.nvidia_power_limit` adds the board power limit as a second
actuator: set in `start()`, restored in `stop()`, which the trainer calls in a
`finally` (end, stop, failure, Ctrl+C).

`tscu.frequency_control` adds a clock knob, driven frequency first
(`train.frequency`): the governor's output is then a power demand the knob meets
first, and the duty cycle only below its floor. The knob is restored in `stop()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tscu_tui.engine.config import Config
from tscu_tui.engine.telemetry import (
    EfficiencyReading,
    EfficiencyTracker,
    Governor,
    GovernorLimits,
    Sampler,
    duty_idle_seconds,
)
from tscu_tui.engine.telemetry.actuators import guard
from tscu_tui.engine.telemetry.auto import pick_source
from tscu_tui.engine.telemetry.base import Clock, Source, SourceUnavailable
from tscu_tui.engine.telemetry.health import SensorState, SensorWatch
from tscu_tui.engine.telemetry.nvidia_limit import LimitChange, NvidiaPowerLimit
from tscu_tui.engine.train.cooldown import wait_until_cool
from tscu_tui.engine.train.device import mlx_compute_device
from tscu_tui.engine.train.duty import DutyMeter
from tscu_tui.engine.train.frequency import FrequencyControl, resolve_actuator
from tscu_tui.engine.train.thermal_meter import NodeReading, ThermalMeter

#: cycles (step + idle) one governor measurement covers at least: one cycle's power is
#: exact on an energy counter, but the cycles' lengths jitter with the machine's load
MIN_CYCLES = 3


@dataclass(frozen=True)
class ThermalStep:
    """Telemetry of one optimizer step and the governor's decision after it."""

    power_w: float | None
    temp_c: float | None
    control_factor: float | None  # None when the governor is off
    idle_s: float
    energy_j: float | None
    source: str
    kind: str
    emergency: bool
    over_budget: bool
    sensor: str | None = None  # why telemetry is not measuring now; None while it is
    stop: str | None = None  # the run must stop: "emergency_stop" | "sensor_lost"
    stop_message: str = ""
    # One entry per node (rank) of a distributed run; None for a single process.
    node_power_w: list[float | None] | None = None
    node_temp_c: list[float | None] | None = None
    node_energy_j: list[float | None] | None = None
    frequency: str | None = None  # the clock knob and its setting; None without one
    stretch_s: float = 0.0  # extra busy seconds (the simulated plant's lower clock)


class ThermalControl:
    def __init__(self, config: Config, on_warning: Callable[[str], None],
                 on_info: Callable[[str], None] | None = None,
                 source: Source | None = None, duty: DutyMeter | None = None,
                 clock: Clock = time.monotonic) -> None:
        """`source` replaces the configured one (benches, hardware stand-ins in tests);
        `duty` and `clock` let a test run the whole loop in simulated time."""
        self.config = config
        self._clock = clock
        self.duty = duty or DutyMeter(clock)
        self._warn = on_warning
        self._info = on_info or (lambda message: None)
        if source is not None:
            self.reason = f"{source.name}: given"
        else:
            try:
                source, self.reason = pick_source(config.telemetry, duty=self.duty.fraction,
                                                  compute=mlx_compute_device())
            except SourceUnavailable as exc:
                raise SourceUnavailable(f"telemetry.source = {config.telemetry.source!r}: "
                                        f"{exc}") from None
        self.sampler = Sampler(source, period_s=config.telemetry.interval_seconds,
                               on_warning=on_warning, clock=clock)
        self.power_limit: NvidiaPowerLimit | None = None
        if config.tscu.nvidia_power_limit:
            self.power_limit = NvidiaPowerLimit.for_source(source)
            if self.power_limit is None:
                on_warning(f"tscu.nvidia_power_limit is on but telemetry is {source.name}, "
                           "not NVML: no GPU power limit is set")
        self.governor = Governor(GovernorLimits.from_config(config.tscu))
        knob, why = resolve_actuator(config, source)
        self.frequency = FrequencyControl(config, knob) if knob is not None else None
        if config.tscu.objective == "energy" and knob is None:
            why += '; tscu.objective = "energy" has nothing to profile'
        self._frequency_note = why
        self.tokens = 0  # tokens trained so far (the trainer keeps it current)
        self._duty = 1.0  # the compute share the duty cycle realises now
        self.enabled = config.tscu.enabled
        self.efficiency: EfficiencyTracker | None = None
        self._efficiency_state: dict[str, float | int | bool] | None = None  # from a checkpoint
        self._last_control = self._clock()  # when the readings of the last update were taken
        self._steps = 0
        self._control_step = 0  # self._steps at the governor's last update
        self._control_energy: float | None = None  # sampler joules then
        self._governed_s = 0.0  # seconds the governor's updates have covered
        self._notes: list[tuple[Callable[[str], None], str]] = []  # said by announce()
        self.sensors = SensorWatch(config.tscu.on_sensor_loss, clock, on_warning,
                                   self._info)  # the run's (all nodes'), step by step
        self.meter = ThermalMeter(self.sampler, self.sensors, clock)
        self._cooldown_pending = False  # stopped by the emergency: cool down before step 1

    @property
    def source_name(self) -> str:
        return self.sampler.source.name

    @property
    def source_kind(self) -> str:
        # The null source measures nothing: call it that, not "estimated".
        return "none" if self.source_name == "none" else self.sampler.source.kind

    @property
    def distributed(self) -> bool:
        return self.meter.distributed

    @distributed.setter
    def distributed(self, value: bool) -> None:
        """Set by the trainer: energy is then all nodes' or None."""
        self.meter.distributed = value

    def start(self, background: bool = True) -> None:
        """Sensors on (and the GPU limit set) before the run's first measurement; what
        was done is said by `announce()`, once the run has been announced itself.
        `background=False` polls only after steps (a test in simulated time)."""
        self.meter.t_start = self._last_control = self._clock()
        detail = self.sampler.source.describe()
        self._notes.insert(0, (self._info, f"telemetry: {self.reason}" + (
            f"; measuring {detail}" if detail != self.source_name else "")))
        if self.enabled:
            self._notes.insert(1, (self._info, self._frequency_note))
        if self.power_limit is not None:
            change = self.power_limit.apply(self.config.tscu.power_budget_watts)
            self._notes.append((self._info if change.applied else self._warn, change.message))
        self.sampler.poll_once()  # a first reading (and energy baseline) right away
        self._control_energy = self.sampler.energy_j
        if background:
            self.sampler.start()

    def announce(self) -> None:
        for say, message in self._notes:
            say(message)
        self._notes = []

    def stop(self) -> None:
        """End of run, however it ends: the GPU's own limit back first, then the sensors."""
        self.announce()  # a run that failed before announcing still says what was set
        if self.frequency is not None and (done := self.frequency.restore()) is not None:
            self._info(done)
        if self.power_limit is not None:
            change = self.power_limit.restore()
            if change is not None:
                self._report(change)
        for done in guard.restore_all():  # any clock knob too (emergency stop included)
            (self._info if getattr(done, "applied", False) else self._warn)(
                getattr(done, "message", str(done)))
        self.sampler.stop()

    def _report(self, change: LimitChange) -> None:
        (self._info if change.applied else self._warn)(change.message)

    def energy_j(self) -> float | None:
        """Joules of this run so far (`ThermalMeter.energy_j`)."""
        return self.meter.energy_j()

    def after_step(self, compute_s: float) -> ThermalStep:
        """Read the sensors, run the governor on each fresh measurement, plan idle."""
        return self.decide(self.read(), compute_s)

    def read(self) -> NodeReading:
        """This node's sensors after a step (`ThermalMeter.read`)."""
        return self.meter.read(self._last_control)

    def decide(self, reading: NodeReading, compute_s: float,
               nodes: list[NodeReading] | None = None) -> ThermalStep:
        """The governor on `reading` (this node's, or all nodes' combined: total watts and
        joules, hottest node, longest interval, worst telemetry) and the idle that
        follows. Given the same inputs every rank decides the same control factor and
        the same stop, so duty cycles stay in step."""
        self._steps += 1
        power, temp = reading.power_w, reading.temp_c
        # Armed whenever a temperature is measured, governor on or off; every step.
        emergency = self.governor.check_emergency(temp)
        change = self.sensors.update(reading.sensor, self.meter.health.problem,
                                     governed=self.enabled, c_min=self.governor.limits.c_min)
        if change.back:  # a fresh measuring window: the gap's energy is not this c's
            self._last_control, self._control_energy = self.meter.measured_at, self.sampler.energy_j
            self._control_step = self._steps
        stop, message = change.stop, change.message
        if self.enabled and reading.sensor == "ok":
            self._govern(reading)
        elif self.enabled and reading.sensor == "lost":
            self.governor.fail_safe()
        if emergency:
            stop, message = "emergency_stop", (
                f"temperature {temp:.1f} °C reached tscu.emergency_shutdown_temp "
                f"({self.governor.limits.emergency_temp_c:g} °C): saving and stopping")
        if nodes is not None:
            self.meter.node_energy = [n.energy_j for n in nodes]
        c, idle, stretch = self._actuate(compute_s, reading)
        # Over budget means beyond the 5% a settled governor is allowed to wander.
        over = power is not None and power > 1.05 * self.config.tscu.power_budget_watts
        return ThermalStep(
            power_w=power, temp_c=temp, control_factor=c, idle_s=idle,
            energy_j=self.energy_j(), source=self.source_name, kind=self.source_kind,
            emergency=emergency, over_budget=over,
            sensor=self._sensor_problem(reading.sensor), stop=stop, stop_message=message,
            node_power_w=[n.power_w for n in nodes] if nodes is not None else None,
            node_temp_c=[n.temp_c for n in nodes] if nodes is not None else None,
            node_energy_j=self.meter.node_energy_j() if nodes is not None else None,
            frequency=self.frequency.label() if self.frequency is not None else None,
            stretch_s=stretch)

    def _actuate(self, compute_s: float, reading: NodeReading
                 ) -> tuple[float | None, float, float]:
        """The governor's demand met by the clock first, then the duty cycle: the compute
        share, the idle after this step and the extra busy time (simulated clock)."""
        if not self.enabled:
            return None, 0.0, 0.0
        self._duty = self.governor.control_factor
        if self.frequency is None:
            return self._duty, duty_idle_seconds(compute_s, self._duty), 0.0
        decision, message = self.frequency.decide(self.governor.control_factor,
                                                  self.governor.emergency)
        if message is not None:
            self._info(message)
        if reading.sensor == "ok" and (line := self.frequency.observe(
                self.meter.measured_at, self.energy_j(), self.tokens)) is not None:
            self._info(line)  # the profile is done: the governor measures afresh from here
            self._last_control = self.meter.measured_at
            self._control_energy = self.sampler.energy_j
            self._control_step = self._steps
        self._duty = decision.duty
        stretch = self.frequency.stretch_s(compute_s)
        return self._duty, duty_idle_seconds(compute_s + stretch, self._duty), stretch

    def _sensor_problem(self, state: SensorState) -> str | None:
        if state == "ok":
            return None
        what = self.meter.health.problem or "another node's telemetry failed"
        return f"{'lost' if state == 'lost' else 'failing'}: {what}"

    def _govern(self, reading: NodeReading) -> None:
        """Update the governor once the cycles since its last update span a measuring
        window and MIN_CYCLES (or `control_frequency`) steps: power over exactly those
        cycles, all run at the current c, so each update sees the effect of the last one.
        Only the reading's (agreed, when distributed) interval and energy are used."""
        steps = self._steps - self._control_step
        if self.frequency is not None and self.frequency.profiling:
            return  # held: each profile window measures one clock setting alone
        if (steps < max(self.config.tscu.control_frequency, MIN_CYCLES)
                or reading.dt_s < self.meter.span()):
            return
        energy, start = reading.energy_j, self._control_energy
        power = None
        if energy is not None and start is not None and reading.dt_s > 0:
            power = (energy - start) / reading.dt_s
        self._governed_s += reading.dt_s
        run_avg = (energy / self._governed_s if energy is not None and self._governed_s > 0
                   else None)
        self.governor.update(power, reading.temp_c, reading.dt_s, run_avg_power_w=run_avg)
        self._last_control, self._control_energy = self.meter.measured_at, energy
        self._control_step = self._steps

    def idle_after(self, compute_s: float) -> float:
        """Idle for extra compute in a cycle (an evaluation), so it keeps the duty cycle."""
        return duty_idle_seconds(compute_s, self._duty) if self.enabled else 0.0

    def cooldown(self, wait: Callable[[float], None]) -> bool:
        """Before the first step of a run its emergency temperature stopped: wait until the
        chip is below max_temperature_celsius, saying so. False when it does not cool within
        tscu.cooldown_timeout_seconds (the run stops again). A fresh run that starts hot is
        the governor's to stop at its first step: waiting here for a chip whose idle
        temperature is above the limit would only hang the start."""
        if not self._cooldown_pending:
            return True

        def temperature() -> float | None:
            sample = self.sampler.poll_once()
            return sample.temp_c if sample is not None else None

        result = wait_until_cool(temperature, self.governor.limits.max_temp_c,
                                 self.config.tscu.cooldown_timeout_seconds,
                                 self.sampler.period_s, wait, self._clock,
                                 lambda line: self._warn(line))
        (self._info if result.cool else self._warn)(result.message)
        self._cooldown_pending = not result.cool
        return result.cool

    def on_eval(self, heldout_bpt: float, param_bpt: float, tokens: int, n_tokens: int,
                mdl: bool = False) -> EfficiencyReading | None:
        """Information per joule at an evaluation (None until energy is measurable).
        `n_tokens` is ParamBPT's N; `mdl` (the penalty is on) adds the MDL view."""
        energy = self.energy_j()
        if energy is None:
            return None
        latest = self.sampler.latest()
        temp = latest.temp_c if latest is not None else None
        if self.efficiency is None:
            self.efficiency = EfficiencyTracker(
                n_tokens=n_tokens, target_bits_per_joule=self.config.tscu.
                target_efficiency_bits_per_joule, patience=self.config.tscu.efficiency_patience,
                heldout_bpt_start=heldout_bpt, param_bpt_start=param_bpt,
                energy_j_start=energy, tokens_start=tokens, mdl=mdl)
            if self._efficiency_state is None:
                return None  # this evaluation is the baseline
            self.efficiency.load_state_dict(self._efficiency_state)  # a resumed run's
        return self.efficiency.update(heldout_bpt, energy, tokens, temp, param_bpt)

    def state_dict(self) -> dict[str, object]:
        state: dict[str, object] = {"governor": self.governor.state_dict(),
                                    "energy_j": self.energy_j() or 0.0, "wall_s": self.wall_s(),
                                    "efficiency": (self.efficiency.state_dict()
                                                   if self.efficiency is not None
                                                   else self._efficiency_state),
                                    "emergency_stop": self.governor.emergency
                                    or self._cooldown_pending}
        if (nodes := self.meter.node_energy_j()) is not None:
            state["node_energy_j"] = [e or 0.0 for e in nodes]
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        """A resumed run: the controller's state and the energy so far; the limits stay the
        config's (a line says which changed), and an emergency stop means cooling first."""
        governor: dict[str, object] = state["governor"]  # type: ignore[assignment]
        self.governor.load_state_dict(governor)
        saved = self.governor.saved_limits(governor)
        changed = self.governor.limits.changes_from(saved) if saved is not None else []
        if changed:
            self._notes.append((self._info, "the config's limits apply, changed since the "
                                            f"checkpoint: {', '.join(changed)}"))
        self._cooldown_pending = bool(state.get("emergency_stop", governor.get("emergency")))
        self.meter.load_offsets(state)
        self._efficiency_state = state.get("efficiency")  # type: ignore[assignment]

    def wall_s(self) -> float:
        return self.meter.wall_s()

    def summary(self) -> dict[str, object]:
        """Run-level figures; average power is energy over wall time (evals included)."""
        energy = self.energy_j()
        summary: dict[str, object] = {
            "telemetry_reason": self.reason,
            "avg_power_watts": energy / self.wall_s() if energy is not None else None,
            "measured_seconds": self.wall_s() if energy is not None else None,
            "information_tokens_n": self.efficiency.n_tokens if self.efficiency else None,
            "telemetry_lost_seconds": self.sensors.down_seconds,
            "frequency_control": self.frequency.summary() if self.frequency else None}
        if (nodes := self.meter.node_energy_j()) is not None:
            summary["node_energy_joules"] = nodes
            summary["node_avg_power_watts"] = [None if e is None else e / self.wall_s()
                                               for e in nodes]
        return summary
