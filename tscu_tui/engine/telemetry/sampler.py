"""Polls a Source on its own thread and integrates energy.

The loop sleeps only the remainder of each period (as zeus does), on an Event
so `stop()` interrupts the wait at once. Energy comes from differencing the
source's counter when it has one, else from trapezoids over `power_w`. A
source that raises, or answers with garbage (`Sample.implausible`), marks the
sampler failed with one warning per failure; nothing is ever raised into the
training loop. The sampler keeps trying at its period, and a source that
answers again is back. While it fails nothing new is recorded: `last_good_at`
says how old the newest reading is, so the caller can tell a silent or failed
source from a quiet machine; the last reading is never passed off as current.

The Sampler is the one owner of its source: the polling thread and any other
caller (`tscu telemetry`, a loop in simulated time) read through it, and one
lock spans the read *and* the integration. Without it two reads interleave:
zeus' begin/end windows raise, NVML calls (which release the GIL) overlap,
and a counter sample integrated after a newer one looks like a counter reset,
which would add the whole cumulative energy again.

A sample that measured nothing (no power, no energy: `source = "none"`, or a
sensor that answered only a temperature) keeps `energy_j = None`, so no
average power is ever computed from it: n/a, not 0 W. Nor is power integrated
across a failure: trapezoids restart after one (a hardware counter, which kept
counting, still covers the gap).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from tscu_tui.engine.telemetry.base import Clock, Source
from tscu_tui.engine.telemetry.sample import Sample

Warn = Callable[[str], None]


@dataclass(frozen=True)
class EnergyIntegrator:
    """Immutable running total: `add(sample)` returns the next state."""

    energy_j: float = 0.0
    last: Sample | None = None
    counter_base_j: float | None = None  # source counter when our total was last rebased
    total_at_base_j: float = 0.0

    @property
    def measured(self) -> bool:
        """Whether any sample so far carried power or energy."""
        return self.last is not None

    def add(self, sample: Sample, bridge: bool = True) -> EnergyIntegrator:
        """The total with `sample` counted; `bridge=False` after a failure: no trapezoid
        over the unmeasured gap (that would invent the power in between)."""
        if not sample.measured_anything:  # nothing to integrate; keep the last real sample
            return self
        if sample.energy_j is not None:
            return self._from_counter(sample)
        prev = self.last
        energy = self.energy_j
        if (bridge and prev is not None and prev.power_w is not None
                and sample.power_w is not None and sample.t_s > prev.t_s):
            energy += 0.5 * (prev.power_w + sample.power_w) * (sample.t_s - prev.t_s)
        return replace(self, energy_j=energy, last=sample, counter_base_j=None,
                       total_at_base_j=energy)

    def _from_counter(self, sample: Sample) -> EnergyIntegrator:
        counter = sample.energy_j
        assert counter is not None
        last = self.last.energy_j if self.last is not None else None
        if self.counter_base_j is None:  # first counter reading: count from here
            return replace(self, last=sample, counter_base_j=counter,
                           total_at_base_j=self.energy_j)
        if last is not None and counter < last:  # the source restarted its counter at 0
            return replace(self, energy_j=self.energy_j + counter, last=sample,
                           counter_base_j=0.0, total_at_base_j=self.energy_j)
        return replace(self, energy_j=self.total_at_base_j + (counter - self.counter_base_j),
                       last=sample)


class Sampler:
    """Background polling with bounded history; `poll_once()` is the same step, inline."""

    def __init__(self, source: Source, period_s: float = 0.5, history: int = 1200,
                 on_warning: Warn | None = None, clock: Clock = time.monotonic) -> None:
        if period_s <= 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self.source = source
        self.period_s = period_s
        self._on_warning = on_warning
        self._clock = clock
        self._lock = threading.Lock()  # guards history and the integrator for readers
        self._poll_lock = threading.Lock()  # one read + integration at a time, in order
        self._closed = False
        self._history: deque[Sample] = deque(maxlen=history)
        self._energy = EnergyIntegrator()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = f"{source.name} ({source.kind})"
        self.problem: str | None = None  # why the last read failed; None while reads work
        self.last_good_at: float | None = None  # this sampler's clock at the last good read
        self._segment_t = -math.inf  # source time of the first reading since a failure

    @property
    def available(self) -> bool:
        """Whether the last read worked (True until a read has failed)."""
        return self.problem is None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tscu-telemetry", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        # A read still in flight finishes before the handle goes; one that hangs past
        # the timeout keeps its handle (closing it under the read would be worse).
        if not self._poll_lock.acquire(timeout=timeout_s):
            return
        try:
            if self._closed:
                return
            self._closed = True
            try:
                self.source.close()
            except Exception as err:  # closing must not break shutdown either
                self._warn(f"telemetry source {self.source.name} failed to close: {err}")
        finally:
            self._poll_lock.release()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():  # failed or not: a source may come back
            started = self._clock()
            self.poll_once()
            remaining = self.period_s - (self._clock() - started)
            if remaining > 0:
                self._stop.wait(remaining)

    # -- one step ----------------------------------------------------------------------
    def poll_once(self, wait: bool = True) -> Sample | None:
        """Read the source once and record it; None when the read failed, the sampler is
        closed, or (`wait=False`) another read is still in flight: a sensor that hangs
        must not hang the training loop too."""
        if not self._poll_lock.acquire(blocking=wait):
            return None
        try:
            if self._closed:
                return None
            try:
                raw = self.source.read()
                problem = raw.implausible()
            except Exception as err:  # any backend failure: never raised into the loop
                raw, problem = None, str(err) or type(err).__name__
            if raw is None or problem is not None:
                self._fail(problem or "no reading")
                return None
            with self._lock:
                if self.problem is not None:  # averages start afresh: the gap is unmeasured
                    self._segment_t = raw.t_s
                self._energy = self._energy.add(raw, bridge=self.problem is None)
                energy = self._energy.energy_j if raw.measured_anything else None
                sample = replace(raw, energy_j=energy)
                self._history.append(sample)
                self.last_good_at = self._clock()
            if self.problem is not None:
                self.problem = None
                self.status = f"{self.source.name} ({self.source.kind})"
            return sample
        finally:
            self._poll_lock.release()

    def _fail(self, problem: str) -> None:
        """Record a failed read; warn once per failure, not once per read."""
        first = self.problem is None
        self.problem = problem
        self.status = f"{self.source.name} unavailable: {problem}"
        if first:
            self._warn(f"telemetry source {self.source.name} failed: {problem}")

    def _warn(self, message: str) -> None:
        if self._on_warning is not None:
            self._on_warning(message)

    # -- accessors (thread-safe) ------------------------------------------------------
    def latest(self) -> Sample | None:
        """The newest good sample (maybe old: see `last_good_at`); its `energy_j` is
        joules since this sampler started."""
        with self._lock:
            return self._history[-1] if self._history else None

    def history(self) -> list[Sample]:
        with self._lock:
            return list(self._history)

    @property
    def energy_j(self) -> float | None:
        """Joules since this sampler started; None while nothing has been measured."""
        with self._lock:
            return self._energy.energy_j if self._energy.measured else None

    def window_average(self, seconds: float) -> float | None:
        """Mean power over the last `seconds` (never across a failure): energy difference
        over time when possible."""
        with self._lock:
            samples = list(self._history)
            segment = self._segment_t
        if not samples:
            return None
        newest = samples[-1]
        window = [s for s in samples if s.t_s >= max(newest.t_s - seconds, segment)]
        with_energy = [s for s in window if s.energy_j is not None]
        if len(with_energy) >= 2:
            first, last = with_energy[0], with_energy[-1]
            span = last.t_s - first.t_s
            if span > 0:
                return (last.energy_j - first.energy_j) / span  # type: ignore[operator]
        powers = [s.power_w for s in window if s.power_w is not None]
        return sum(powers) / len(powers) if powers else None
