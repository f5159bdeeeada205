"""Polls a Source on its own thread and integrates energy.

The loop sleeps only the remainder of each period (as zeus does), on an Event
so `stop()` interrupts the wait at once. Energy comes from differencing the
source's counter when it has one, else from trapezoids over `power_w`. A
source that raises degrades the sampler to "unavailable" with exactly one
warning callback; nothing is ever raised into the training loop.

The Sampler is the one owner of its source: the polling thread and the
training loop (`poll_once` after each step) both read through it, and one
lock spans the read *and* the integration. Without it two reads interleave:
zeus' begin/end windows raise, NVML calls (which release the GIL) overlap,
and a counter sample integrated after a newer one looks like a counter reset,
which would add the whole cumulative energy again.

A sample that measured nothing (no power, no energy: `source = "none"`, or a
sensor that answered only a temperature) keeps `energy_j = None`, so no
average power is ever computed from it: n/a, not 0 W.
"""

from __future__ import annotations

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

    def add(self, sample: Sample) -> EnergyIntegrator:
        if not sample.measured_anything:  # nothing to integrate; keep the last real sample
            return self
        if sample.energy_j is not None:
            return self._from_counter(sample)
        prev = self.last
        energy = self.energy_j
        if (prev is not None and prev.power_w is not None and sample.power_w is not None
                and sample.t_s > prev.t_s):
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
        self.available = True
        self.status = f"{source.name} ({source.kind})"

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
        with self._poll_lock:  # a read still in flight finishes before the handle goes
            if self._closed:
                return
            self._closed = True
            try:
                self.source.close()
            except Exception as err:  # closing must not break shutdown either
                self._warn(f"telemetry source {self.source.name} failed to close: {err}")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set() and self.available:
            started = self._clock()
            self.poll_once()
            remaining = self.period_s - (self._clock() - started)
            if remaining > 0:
                self._stop.wait(remaining)

    # -- one step ----------------------------------------------------------------------
    def poll_once(self) -> Sample | None:
        """Read the source once and record it; None once the source has failed."""
        with self._poll_lock:
            if not self.available or self._closed:
                return None
            try:
                raw = self.source.read()
            except Exception as err:  # any backend failure: degrade, warn once, never raise
                self.available = False
                self.status = f"{self.source.name} unavailable: {err}"
                self._warn(f"telemetry source {self.source.name} failed, continuing without "
                           f"it: {err}")
                return None
            with self._lock:
                self._energy = self._energy.add(raw)
                energy = self._energy.energy_j if raw.measured_anything else None
                sample = replace(raw, energy_j=energy)
                self._history.append(sample)
            return sample

    def _warn(self, message: str) -> None:
        if self._on_warning is not None:
            self._on_warning(message)

    # -- accessors (thread-safe) ------------------------------------------------------
    def latest(self) -> Sample | None:
        """The newest sample; its `energy_j` is joules since this sampler started."""
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
        """Mean power over the last `seconds`: energy difference over time when possible."""
        with self._lock:
            samples = list(self._history)
        if not samples:
            return None
        newest = samples[-1]
        window = [s for s in samples if s.t_s >= newest.t_s - seconds]
        with_energy = [s for s in window if s.energy_j is not None]
        if len(with_energy) >= 2:
            first, last = with_energy[0], with_energy[-1]
            span = last.t_s - first.t_s
            if span > 0:
                return (last.energy_j - first.energy_j) / span  # type: ignore[operator]
        powers = [s.power_w for s in window if s.power_w is not None]
        return sum(powers) / len(powers) if powers else None
