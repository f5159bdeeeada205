"""T-SCU in the training loop: measure, govern, duty-cycle, account energy.

`ThermalControl` owns the telemetry source and its sampler thread, the
governor and the efficiency tracker; the trainer tells it when it computes
(`DutyMeter`), asks it after each optimizer step how long to idle, and feeds
it held-out BPT at evaluations. Where nothing can be measured the readings
are None and the governor holds c = 1: no reading is ever invented.

`auto` telemetry measures the device MLX computes on (`train.device`). On
NVIDIA, `tscu.nvidia_power_limit` adds the board power limit as a second
actuator: set in `start()`, restored in `stop()`, which the trainer calls in a
`finally` (end, stop, failure, Ctrl+C).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from tscu_tui.engine.config import Config
from tscu_tui.engine.telemetry import (
    EfficiencyReading,
    EfficiencyTracker,
    Governor,
    GovernorLimits,
    Sampler,
)
from tscu_tui.engine.telemetry.auto import pick_source
from tscu_tui.engine.telemetry.base import Source, SourceUnavailable
from tscu_tui.engine.telemetry.nvidia_limit import LimitChange, NvidiaPowerLimit
from tscu_tui.engine.train.device import mlx_compute_device


class DutyMeter:
    """The engine's real compute share, for the simulated plant: busy time / elapsed time."""

    def __init__(self) -> None:
        self._clock = time.monotonic
        self._lock = threading.Lock()
        self._busy_since: float | None = None
        self._busy_s = 0.0
        self._last = self._clock()

    def busy(self, on: bool) -> None:
        with self._lock:
            now = self._clock()
            if on and self._busy_since is None:
                self._busy_since = now
            elif not on and self._busy_since is not None:
                self._busy_s += now - self._busy_since
                self._busy_since = None

    def fraction(self) -> float:
        """Share of the time since the previous call spent computing (resets the window)."""
        with self._lock:
            now = self._clock()
            busy = self._busy_s
            if self._busy_since is not None:
                busy += now - self._busy_since
                self._busy_since = now
            elapsed, self._last, self._busy_s = now - self._last, now, 0.0
        return min(max(busy / elapsed, 0.0), 1.0) if elapsed > 0 else 1.0


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
    # One entry per node (rank) of a distributed run; None for a single process.
    node_power_w: list[float | None] | None = None
    node_temp_c: list[float | None] | None = None
    node_energy_j: list[float | None] | None = None


@dataclass(frozen=True)
class NodeReading:
    """What one node measured since the last step: the governor's inputs. In a
    distributed run every rank reads its own node and the readings are combined
    (`train.parallel`) before the one, agreed, decision."""

    power_w: float | None  # average over whole compute+idle cycles
    temp_c: float | None
    energy_j: float | None  # joules of this session on this node
    dt_s: float  # seconds since the governor last ran


class ThermalControl:
    def __init__(self, config: Config, on_warning: Callable[[str], None],
                 on_info: Callable[[str], None] | None = None,
                 source: Source | None = None) -> None:
        """`source` replaces the configured one (benches, hardware stand-ins in tests)."""
        self.config = config
        self.duty = DutyMeter()
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
                               on_warning=on_warning)
        self.power_limit: NvidiaPowerLimit | None = None
        if config.tscu.nvidia_power_limit:
            self.power_limit = NvidiaPowerLimit.for_source(source)
            if self.power_limit is None:
                on_warning(f"tscu.nvidia_power_limit is on but telemetry is {source.name}, "
                           "not NVML: no GPU power limit is set")
        self.governor = Governor(GovernorLimits.from_config(config.tscu))
        self.enabled = config.tscu.enabled
        self.efficiency: EfficiencyTracker | None = None
        self._energy_offset = 0.0  # joules of earlier sessions of a resumed run
        self._wall_offset = 0.0  # and their seconds
        self._t_start = time.monotonic()
        self._last_control = time.monotonic()
        self._step_ends: deque[float] = deque(maxlen=256)
        self._steps = 0
        self._started: list[tuple[Callable[[str], None], str]] = []
        self._node_energy: list[float | None] | None = None  # per node, this session
        self.distributed = False  # set by the trainer: energy is then all nodes' or None
        self._node_offsets: list[float] | None = None  # per node, earlier sessions

    @property
    def source_name(self) -> str:
        return self.sampler.source.name

    @property
    def source_kind(self) -> str:
        # The null source measures nothing: call it that, not "estimated".
        return "none" if self.source_name == "none" else self.sampler.source.kind

    def start(self) -> None:
        """Sensors on (and the GPU limit set) before the run's first measurement; what
        was done is said by `announce()`, once the run has been announced itself."""
        self._t_start = time.monotonic()
        detail = self.sampler.source.describe()
        self._started = [(self._info, f"telemetry: {self.reason}"
                          + (f"; measuring {detail}" if detail != self.source_name else ""))]
        if self.power_limit is not None:
            change = self.power_limit.apply(self.config.tscu.power_budget_watts)
            self._started.append((self._info if change.applied else self._warn,
                                  change.message))
        self.sampler.poll_once()  # a first reading (and energy baseline) right away
        self.sampler.start()

    def announce(self) -> None:
        for say, message in self._started:
            say(message)
        self._started = []

    def stop(self) -> None:
        """End of run, however it ends: the GPU's own limit back first, then the sensors."""
        self.announce()  # a run that failed before announcing still says what was set
        if self.power_limit is not None:
            change = self.power_limit.restore()
            if change is not None:
                self._report(change)
        self.sampler.stop()

    def _report(self, change: LimitChange) -> None:
        (self._info if change.applied else self._warn)(change.message)

    def energy_j(self) -> float | None:
        """Joules of this run (earlier sessions included); None while nothing is measured.
        In a distributed run: all nodes together, as of the last step's exchange."""
        if (nodes := self.node_energy_j()) is not None:
            if any(e is None for e in nodes):
                return None
            return self._energy_offset + sum(nodes)  # type: ignore[arg-type]
        if self.distributed:  # no exchange yet: this node's joules alone would differ by rank
            return None
        energy = self.sampler.energy_j
        return None if energy is None else self._energy_offset + energy

    def node_energy_j(self) -> list[float | None] | None:
        """Joules per node (earlier sessions included), for a distributed run."""
        if self._node_energy is None:
            return None
        offsets = self._node_offsets or [0.0] * len(self._node_energy)
        if len(offsets) != len(self._node_energy):
            offsets = [0.0] * len(self._node_energy)
        return [None if e is None else e + o for e, o in zip(self._node_energy, offsets,
                                                             strict=True)]

    def after_step(self, compute_s: float) -> ThermalStep:
        """Read the sensors, run the governor every `control_frequency` steps, plan idle."""
        return self.decide(self.read(), compute_s)

    def read(self) -> NodeReading:
        """This node's sensors after a step (fresh numbers for the decision)."""
        now = time.monotonic()
        self.sampler.poll_once()
        power = self.sampler.window_average(self._window(now))
        latest = self.sampler.latest()
        return NodeReading(power_w=power, temp_c=latest.temp_c if latest is not None else None,
                           energy_j=self.sampler.energy_j, dt_s=now - self._last_control)

    def decide(self, reading: NodeReading, compute_s: float,
               nodes: list[NodeReading] | None = None) -> ThermalStep:
        """The governor on `reading` (this node's, or all nodes' combined: total watts,
        hottest node) and the idle that follows. Given the same inputs every rank
        decides the same control factor, so the duty cycle stays in step."""
        self._steps += 1
        power, temp = reading.power_w, reading.temp_c
        if self.enabled and self._steps % self.config.tscu.control_frequency == 0:
            self.governor.update(power, temp, reading.dt_s)
            self._last_control = time.monotonic()
        if nodes is not None:
            self._node_energy = [n.energy_j for n in nodes]
        c = self.governor.control_factor if self.enabled else None
        idle = self.governor.idle_seconds(compute_s) if self.enabled else 0.0
        # Over budget means beyond the 5% a settled governor is allowed to wander.
        over = power is not None and power > 1.05 * self.config.tscu.power_budget_watts
        return ThermalStep(
            power_w=power, temp_c=temp, control_factor=c, idle_s=idle,
            energy_j=self.energy_j(), source=self.source_name, kind=self.source_kind,
            emergency=self.governor.emergency, over_budget=over,
            node_power_w=[n.power_w for n in nodes] if nodes is not None else None,
            node_temp_c=[n.temp_c for n in nodes] if nodes is not None else None,
            node_energy_j=self.node_energy_j() if nodes is not None else None)

    def _window(self, now: float) -> float:
        """Seconds to average power over: whole compute+idle cycles back to a step end at
        least ~2 s ago. Whole cycles keep the average unbiased (a window ending in a
        compute burst but cutting an idle short reads high); 2 s keeps it smooth."""
        span = max(2.0, 4 * self.sampler.period_s)
        ends = self._step_ends
        start = next((t for t in reversed(ends) if now - t >= span), ends[0] if ends else None)
        ends.append(now)
        return max(now - start, self.sampler.period_s) if start is not None else span

    def on_eval(self, total_bpt: float, tokens: int, n_tokens: int) -> EfficiencyReading | None:
        """Information per joule at an evaluation (None until energy is measurable)."""
        energy = self.energy_j()
        if energy is None:
            return None
        latest = self.sampler.latest()
        temp = latest.temp_c if latest is not None else None
        if self.efficiency is None:
            self.efficiency = EfficiencyTracker(
                n_tokens=n_tokens, target_bits_per_joule=self.config.tscu.
                target_efficiency_bits_per_joule, patience=self.config.tscu.efficiency_patience,
                total_bpt_start=total_bpt, energy_j_start=energy, tokens_start=tokens)
            return None
        return self.efficiency.update(total_bpt, energy, tokens, temp)

    def state_dict(self) -> dict[str, object]:
        state: dict[str, object] = {"governor": self.governor.state_dict(),
                                    "energy_j": self.energy_j() or 0.0, "wall_s": self.wall_s()}
        if (nodes := self.node_energy_j()) is not None:
            state["node_energy_j"] = [e or 0.0 for e in nodes]
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.governor.load_state_dict(state["governor"])  # type: ignore[arg-type]
        self._energy_offset = float(state["energy_j"])  # type: ignore[arg-type]
        self._wall_offset = float(state.get("wall_s", 0.0))  # type: ignore[arg-type]
        nodes = state.get("node_energy_j")
        self._node_offsets = [float(e) for e in nodes] if isinstance(nodes, list) else None
        if self._node_offsets is not None:  # the total's offset is the nodes' sum
            self._energy_offset -= sum(self._node_offsets)

    def wall_s(self) -> float:
        return self._wall_offset + time.monotonic() - self._t_start

    def summary(self) -> dict[str, object]:
        """Run-level figures; average power is energy over wall time (evals included)."""
        energy = self.energy_j()
        summary: dict[str, object] = {
            "telemetry_reason": self.reason,
            "avg_power_watts": energy / self.wall_s() if energy is not None else None,
            "measured_seconds": self.wall_s() if energy is not None else None}
        if (nodes := self.node_energy_j()) is not None:
            summary["node_energy_joules"] = nodes
            summary["node_avg_power_watts"] = [None if e is None else e / self.wall_s()
                                               for e in nodes]
        return summary
