"""What T-SCU measures in the loop: this node's readings after each step, and the
run's energy and wall time (earlier sessions of a resumed run included).

`ThermalMeter` reads the sampler (telemetry's thread, or the loop itself in
simulated time) into a `NodeReading`: power averaged over whole compute+idle
cycles, the temperature, the joules so far, and whether the source is measuring
at all. `train.thermal.ThermalControl` decides on those readings and acts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tscu_tui.engine.telemetry import Sampler
from tscu_tui.engine.telemetry.base import Clock
from tscu_tui.engine.telemetry.health import (
    SensorHealth,
    SensorState,
    SensorWatch,
    sensor_health,
)


@dataclass(frozen=True)
class NodeReading:
    """What one node measured since the last step: the governor's inputs. In a
    distributed run every rank reads its own node and the readings are combined
    (`train.parallel`) before the one, agreed, decision."""

    power_w: float | None  # average over whole compute+idle cycles
    temp_c: float | None
    energy_j: float | None  # joules of this session on this node
    dt_s: float  # seconds since the governor last ran
    sensor: SensorState = "ok"  # readings current, held (briefly failed) or lost


class ThermalMeter:
    def __init__(self, sampler: Sampler, sensors: SensorWatch, clock: Clock) -> None:
        """`sensors` is the run's telemetry state (all nodes'): energy is only
        reported while it is measuring."""
        self.sampler, self.sensors, self._clock = sampler, sensors, clock
        self.t_start = self._clock()
        self.measured_at = self.t_start  # when this step's readings were taken
        self.health = SensorHealth("ok", None, 0.0)  # this node's, as of the last read
        self._step_ends: deque[float] = deque(maxlen=256)
        self.energy_offset = 0.0  # joules of earlier sessions of a resumed run
        self.wall_offset = 0.0  # and their seconds
        self.node_energy: list[float | None] | None = None  # per node, this session
        self.node_offsets: list[float] | None = None  # per node, earlier sessions
        self.distributed = False  # energy is then all nodes' or None

    def read(self, last_control: float) -> NodeReading:
        """This node's sensors after a step (fresh numbers for the decision); nothing but
        the interval since `last_control` when they are not current (failed, garbage or
        silent)."""
        now = self._clock()
        # The sampler's thread reads the source (a read that hangs, hangs there); only
        # without one (simulated time) does the loop read it itself.
        fresh = None if self.sampler.running else self.sampler.poll_once(wait=False)
        window = self._window(now)
        self.health = sensor_health(self.sampler.problem, self.sampler.last_good_at,
                                    self.t_start, now, self.sampler.period_s)
        # Time and joules both as of the newest good reading: measured to "now", a source
        # that stopped answering a moment ago would read as a drop in power.
        self.measured_at = self.sampler.last_good_at or now
        dt = self.measured_at - last_control
        if not self.health.ok:
            return NodeReading(power_w=None, temp_c=None, energy_j=None, dt_s=dt,
                               sensor=self.health.state)
        latest = fresh or self.sampler.latest()
        return NodeReading(power_w=self.sampler.window_average(window),
                           temp_c=latest.temp_c if latest is not None else None,
                           energy_j=self.sampler.energy_j, dt_s=dt)

    def span(self) -> float:
        """Seconds one power measurement covers: several sampling periods, so a source
        that reports power (not an energy counter) is averaged over enough readings."""
        return 4 * self.sampler.period_s

    def _window(self, now: float) -> float:
        """Seconds to average power over: whole compute+idle cycles back to a step end at
        least ~2 s ago. Whole cycles keep the average unbiased (a window ending in a
        compute burst but cutting an idle short reads high); 2 s keeps it smooth."""
        span = max(2.0, self.span())
        ends = self._step_ends
        start = next((t for t in reversed(ends) if now - t >= span), ends[0] if ends else None)
        ends.append(now)
        return max(now - start, self.sampler.period_s) if start is not None else span

    def energy_j(self) -> float | None:
        """Joules of this run (earlier sessions included); None while nothing is measured,
        or while the telemetry has failed (a frozen total would read as 0 W since).
        In a distributed run: all nodes together, as of the last step's exchange."""
        if self.sensors.state != "ok":
            return None
        if (nodes := self.node_energy_j()) is not None:
            if any(e is None for e in nodes):
                return None
            return self.energy_offset + sum(nodes)  # type: ignore[arg-type]
        if self.distributed:  # no exchange yet: this node's joules alone would differ by rank
            return None
        energy = self.sampler.energy_j
        return None if energy is None else self.energy_offset + energy

    def node_energy_j(self) -> list[float | None] | None:
        """Joules per node (earlier sessions included), for a distributed run."""
        if self.node_energy is None:
            return None
        offsets = self.node_offsets or [0.0] * len(self.node_energy)
        if len(offsets) != len(self.node_energy):
            offsets = [0.0] * len(self.node_energy)
        return [None if e is None else e + o for e, o in zip(self.node_energy, offsets,
                                                             strict=True)]

    def wall_s(self) -> float:
        return self.wall_offset + self._clock() - self.t_start

    def load_offsets(self, state: dict[str, object]) -> None:
        """A resumed run's energy and seconds so far (a checkpoint's `thermal` state)."""
        self.energy_offset = float(state["energy_j"])  # type: ignore[arg-type]
        self.wall_offset = float(state.get("wall_s", 0.0))  # type: ignore[arg-type]
        nodes = state.get("node_energy_j")
        self.node_offsets = [float(e) for e in nodes] if isinstance(nodes, list) else None
        if self.node_offsets is not None:  # the total's offset is the nodes' sum
            self.energy_offset -= sum(self.node_offsets)
