"""The BLAS thread policy: fewer threads while other processes hold a core, all back
once the machine is quiet; fixed by TSCU_BLAS_THREADS. Driven by a scripted CPU
clock (what psutil would report), so no test depends on this machine's load."""

from __future__ import annotations

import pytest

from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.models.blas import blas_threads, set_blas_threads
from tscu_tui.engine.models.threads import BlasThreadPolicy, fixed_blas_threads


class Machine:
    """Wall clock and CPU counters advanced by hand: `run(seconds, own, others)` where
    own/others are cores kept busy by this process / by everything else."""

    def __init__(self) -> None:
        self.now = 0.0
        self.busy = 0.0
        self.own = 0.0

    def run(self, seconds: float, own: float, others: float) -> None:
        self.now += seconds
        self.own += own * seconds
        self.busy += (own + others) * seconds

    def cpu(self) -> tuple[float, float]:
        return self.busy, self.own

    def clock(self) -> float:
        return self.now


def policy(machine: Machine, current: int = 2, **kwargs: object) -> BlasThreadPolicy:
    return BlasThreadPolicy(cores=2, current=current, cpu=machine.cpu, clock=machine.clock,
                            **kwargs)  # type: ignore[arg-type]


def test_a_competing_process_takes_a_thread_and_quiet_gives_it_back():
    m = Machine()
    p = policy(m)
    m.run(2.0, own=2.0, others=0.0)
    assert p.after_step() is None and p.threads == 2  # alone: both cores
    m.run(2.0, own=1.2, others=1.0)
    change = p.after_step()
    assert change is not None and (change.previous, change.threads) == (2, 1)
    assert change.message == "BLAS threads 2 -> 1: other processes use 1.0 cores"
    m.run(1.2, own=1.0, others=0.05)  # quiet, but not yet for long enough (2 s)
    assert p.after_step() is None and p.threads == 1
    m.run(1.2, own=1.0, others=1.0)  # the competitor is back: the quiet spell is over
    assert p.after_step() is None and p.threads == 1
    m.run(1.2, own=1.0, others=0.05)
    assert p.after_step() is None and p.threads == 1
    m.run(1.2, own=1.0, others=0.05)
    change = p.after_step()
    assert change is not None and change.threads == 2 and "free again" in change.message


def test_one_long_quiet_step_is_enough_to_take_the_core_back():
    """A real model's step lasts seconds: one quiet step is 2 s of quiet, not 3 windows."""
    m = Machine()
    p = policy(m, current=1)
    m.run(7.0, own=1.0, others=0.1)
    change = p.after_step()
    assert change is not None and (change.previous, change.threads) == (1, 2)


def test_the_load_seen_during_setup_decides_before_the_first_step():
    m = Machine()
    p = policy(m)
    m.run(0.1, own=1.0, others=1.0)
    assert p.before_first_step() is None and p.threads == 2  # too short to judge
    m.run(3.0, own=1.0, others=1.0)  # loading the model beside a busy process
    change = p.before_first_step()
    assert change is not None and (change.previous, change.threads) == (2, 1)
    quiet = Machine()
    back = policy(quiet, current=1)
    quiet.run(3.0, own=1.0, others=0.0)  # quiet during setup: no waiting for more quiet
    change = back.before_first_step()
    assert change is not None and change.threads == 2


def test_short_steps_are_merged_into_one_window_and_light_load_is_ignored():
    m = Machine()
    p = policy(m, min_window_s=1.0)
    for _ in range(4):
        m.run(0.2, own=1.0, others=1.0)
        assert p.after_step() is None  # 0.8 s: no decision yet
    m.run(0.3, own=1.0, others=1.0)
    assert p.after_step() is not None and p.threads == 1
    quiet = Machine()
    q = policy(quiet)
    quiet.run(2.0, own=2.0, others=0.3)  # a browser tab, not a competing job
    assert q.after_step() is None and q.threads == 2


def test_fixed_count_from_the_environment(monkeypatch):
    monkeypatch.setenv("TSCU_BLAS_THREADS", "1")
    assert fixed_blas_threads() == 1
    monkeypatch.setenv("TSCU_BLAS_THREADS", "auto")
    assert fixed_blas_threads() is None
    monkeypatch.setenv("TSCU_BLAS_THREADS", "two")
    with pytest.raises(TscuError, match="TSCU_BLAS_THREADS='two'"):
        fixed_blas_threads()


def test_openblas_thread_count_is_set_for_real():
    before = blas_threads()
    if before is None:
        pytest.skip("MLX is not on tscu's OpenBLAS here (macOS, or TSCU_BLAS set)")
    try:
        assert set_blas_threads(1) and blas_threads() == 1
    finally:
        set_blas_threads(before)
    assert blas_threads() == before
