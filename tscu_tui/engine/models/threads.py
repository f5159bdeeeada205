"""How many threads BLAS may use: all cores when the machine is ours, fewer under load.

OpenBLAS splits each matmul over its threads, and a split matmul waits for its
slowest part. On a 2-core laptop with another CPU-bound process running, BLAS's
threads, the other process and tscu's own compute thread fight over two cores:
measured on the demo preset, throughput fell to 0.42x with 2 BLAS threads and held at
0.88x with one while idle workers spun for 0.1 s (blas.py now lets them sleep after
2^16 cycles: 0.52x at 2 threads and 0.74x at one, of 2 threads alone).
`BlasThreadPolicy` watches, between steps, how much CPU *other* processes use
(system CPU time minus this process's, over wall time) and gives BLAS the cores
that are left: fewer threads as soon as another process takes about a core for a
whole window, all of them back once the machine has been quiet for a couple of
seconds, and decides once before the first step from the load seen during setup.
`TSCU_BLAS_THREADS=N` fixes the count; `auto` (the default) adapts. Windows shorter
than `min_window_s` are merged, so fast steps do not make the decision noisy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.models import native
from tscu_tui.engine.models.blas import set_blas_threads

#: (busy CPU seconds of the whole machine, CPU seconds of this process)
CpuClock = Callable[[], tuple[float, float]]


def machine_and_own_cpu() -> tuple[float, float]:
    import psutil

    system = psutil.cpu_times()
    busy = sum(getattr(system, name, 0.0) for name in
               ("user", "nice", "system", "irq", "softirq"))
    own = psutil.Process().cpu_times()
    return busy, own.user + own.system


@dataclass(frozen=True)
class ThreadChange:
    threads: int
    previous: int
    others_cores: float

    @property
    def message(self) -> str:
        why = (f"other processes use {self.others_cores:.1f} cores" if self.threads <
               self.previous else "the machine is free again")
        return f"BLAS threads {self.previous} -> {self.threads}: {why}"


class BlasThreadPolicy:
    """Decides BLAS threads from other processes' CPU use; the caller applies changes.

    Created when setup starts, so the load measured while the model loads gives the
    first decision (`before_first_step`) before any step runs at the wrong count: beside
    a busy loop a SmolLM2-135M step takes 1.3x as long at two threads as at one.
    After that, a window closes at the first step end past `min_window_s`; a taken core
    takes a thread at once, a free core gives it back after `quiet_s` of quiet (time, not
    windows: a real model's step is several seconds, one quiet step is evidence enough).
    """

    def __init__(self, cores: int, current: int, *, min_window_s: float = 1.0,
                 busy_core_share: float = 0.6, quiet_s: float = 2.0,
                 cpu: CpuClock = machine_and_own_cpu,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cores = max(1, cores)
        self.threads = max(1, min(current, self.cores))
        self.min_window_s = min_window_s
        self.busy_core_share = busy_core_share  # a core counts as taken above this share
        self.quiet_s = quiet_s
        self._cpu, self._clock = cpu, clock
        self._start = (clock(), *cpu())
        self._quiet_since: float | None = None

    def before_first_step(self, min_window_s: float = 0.2) -> ThreadChange | None:
        """Decide from the load seen since the policy was made (setup), either way."""
        window = self._close_window(min_window_s)
        if window is None:
            return None
        _, _, others = window
        target = self._target(others)
        return self._change(target, others) if target != self.threads else None

    def after_step(self) -> ThreadChange | None:
        """Close the window if long enough; return the change it calls for, if any."""
        window = self._close_window(self.min_window_s)
        if window is None:
            return None
        started, now, others = window
        target = self._target(others)
        if target < self.threads:
            self._quiet_since = None
            return self._change(target, others)
        if target > self.threads:
            if self._quiet_since is None:  # quiet since this window began
                self._quiet_since = started
            if now - self._quiet_since >= self.quiet_s:
                self._quiet_since = None
                return self._change(target, others)
        else:
            self._quiet_since = None
        return None

    def _close_window(self, min_window_s: float) -> tuple[float, float, float] | None:
        """(start, end, cores other processes used) of the window, or None while too
        short."""
        now = self._clock()
        started, busy0, own0 = self._start
        if now - started < min_window_s:
            return None
        busy, own = self._cpu()
        self._start = (now, busy, own)
        return started, now, max(0.0, (busy - busy0) - (own - own0)) / (now - started)

    def _target(self, others: float) -> int:
        taken = int(others + (1.0 - self.busy_core_share))  # cores others hold
        return max(1, self.cores - taken)

    def _change(self, threads: int, others: float) -> ThreadChange:
        change = ThreadChange(threads=threads, previous=self.threads, others_cores=others)
        self.threads = threads
        return change


def fixed_blas_threads() -> int | None:
    """TSCU_BLAS_THREADS=N: that many, always; None for `auto` (the default)."""
    value = os.environ.get("TSCU_BLAS_THREADS", "auto").strip().lower()
    if value in ("", "auto"):
        return None
    if not value.isdigit() or int(value) < 1:
        raise TscuError(f"TSCU_BLAS_THREADS={value!r}: must be 'auto' or a whole number >= 1")
    return int(value)


def set_compute_threads(count: int) -> None:
    """Give OpenBLAS and tscu's native kernels (native.py) `count` threads each: the
    policy decides for both, as both split their work over the same cores."""
    set_blas_threads(count)
    native.set_threads(count)
