"""Power from an energy counter that the hardware publishes in batches.

Apple's IOReport "Energy Model" counters do not move continuously: the CPU,
ANE and DRAM channels publish about every 1 s (M1 Ultra) to 2 s (M5 Max), the
GPU channel about every 120 ms. Differencing two reads 0.5 s apart therefore
gives 0 W, then a whole batch divided by 0.5 s, and the governor's input
swings between the two.

`BatchedCounter` differences *publishes*, not reads. A read whose value moved
is a publish; it happened between the previous read and this one, so its time
is taken as the midpoint. The rate is the energy between the oldest publish in
a window of a few seconds and the newest one, over their time apart: whole
batches over the time they took, so the batch size cancels. With reads at a
fixed period the midpoint's offset from the true publish is the same at both
ends and cancels too; jitter costs at most one read period over the window.

The energy a sample carries must be smooth as well, because the governor
averages power as energy over a 2 s window: the raw counter would bring the
batches back. Between publishes the counter is extrapolated at that rate (for
at most 1.25 publish intervals); the reported energy advances at the rate and
is pulled toward that extrapolation with a time constant of `window_s`, and it
never decreases. A channel that publishes faster than it is read (the GPU's
120 ms against 0.5 s reads) would otherwise carry its quantisation (a batch
more or less per read) straight into a 2 s average. The total stays anchored
to the hardware counter: off by about one batch at any moment, never drifting.

A channel that stops publishing (the ANE when idle: its counter stands still)
counts 0 W once it has been silent for `idle_after_s`, or for 2.5 of its own
publish intervals if those are longer. Until a channel has published twice (or
has proven idle) its rate is unknown, and so is the source's power: n/a for the
first seconds rather than a guess.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

EXTRAPOLATE_INTERVALS = 1.25  # past this, the next publish is late: hold, don't invent
IDLE_INTERVALS = 2.5


@dataclass(frozen=True)
class Publish:
    t_s: float
    energy_j: float  # cumulative, since the counter's first read


class BatchedCounter:
    """One cumulative energy counter (joules) read at arbitrary times."""

    def __init__(self, window_s: float = 4.0, idle_after_s: float = 4.0) -> None:
        self.window_s = window_s
        self.idle_after_s = idle_after_s
        self._first_raw: float | None = None
        self._offset_j = 0.0  # energy before a counter reset, carried over
        self._last_raw = 0.0
        self._last_read_t = 0.0
        self._start_t = 0.0
        self._publishes: deque[Publish] = deque(maxlen=256)
        self._reported_j = 0.0
        self._reported_t: float | None = None

    @property
    def started(self) -> bool:
        return self._first_raw is not None

    def update(self, t_s: float, raw_j: float) -> None:
        """Feed one read of the hardware's cumulative counter."""
        if self._first_raw is None:
            self._first_raw = self._last_raw = raw_j
            self._last_read_t = self._start_t = t_s
            return
        if raw_j < self._last_raw:  # the counter restarted: keep what it had counted
            self._offset_j += self._last_raw - self._first_raw
            self._first_raw = 0.0
        if raw_j != self._last_raw:
            cumulative = self._offset_j + raw_j - self._first_raw
            self._publishes.append(Publish(0.5 * (self._last_read_t + t_s), cumulative))
        self._last_raw = raw_j
        self._last_read_t = t_s

    def _interval_and_rate(self) -> tuple[float, float] | None:
        """Mean publish interval and power over the newest publishes, or None (< 2)."""
        pubs = self._publishes
        if len(pubs) < 2:
            return None
        newest = pubs[-1]
        ref_index = len(pubs) - 2  # at least the previous publish, however old
        while ref_index > 0 and newest.t_s - pubs[ref_index - 1].t_s <= self.window_s:
            ref_index -= 1
        ref = pubs[ref_index]
        span = newest.t_s - ref.t_s
        if span <= 0:
            return None
        batches = len(pubs) - 1 - ref_index
        return span / batches, (newest.energy_j - ref.energy_j) / span

    def _idle(self, t_s: float, interval_s: float | None) -> bool:
        since = self._publishes[-1].t_s if self._publishes else self._start_t
        limit = self.idle_after_s
        if interval_s is not None:
            limit = max(limit, IDLE_INTERVALS * interval_s)
        return t_s - since >= limit

    def rate_w(self, t_s: float) -> float | None:
        """Power at `t_s` from whole batches; 0 once silent; None while unknown."""
        if not self.started:
            return None
        fit = self._interval_and_rate()
        if self._idle(t_s, fit[0] if fit else None):
            return 0.0
        return fit[1] if fit else None

    def _anchor_j(self, t_s: float, fit: tuple[float, float] | None) -> float:
        """The hardware counter at `t_s`: the newest publish plus a bounded extrapolation."""
        if not self._publishes:
            return 0.0
        newest = self._publishes[-1]
        if fit is None:
            return newest.energy_j
        interval, rate = fit
        ahead = min(max(t_s - newest.t_s, 0.0), EXTRAPOLATE_INTERVALS * interval)
        return newest.energy_j + rate * ahead

    def energy_j(self, t_s: float) -> float:
        """Joules since the first read, smoothed; call once per read, in time order."""
        if not self.started:
            return 0.0
        fit = self._interval_and_rate()
        rate = self.rate_w(t_s)
        anchor = self._anchor_j(t_s, None if rate == 0.0 else fit)
        if rate is None or self._reported_t is None:
            estimate = anchor  # no rate yet: the counter as published
        else:
            dt = max(t_s - self._reported_t, 0.0)
            predicted = self._reported_j + rate * dt
            estimate = predicted + min(dt / self.window_s, 1.0) * (anchor - predicted)
        self._reported_j = max(self._reported_j, estimate)  # energy never runs backwards
        self._reported_t = t_s
        return self._reported_j
