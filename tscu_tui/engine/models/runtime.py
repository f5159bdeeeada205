"""MLX as engine modules use it: `from tscu_tui.engine.models.runtime import mx`.

Importing any `tscu_tui.engine` module has already loaded OpenBLAS (see
blas.py), so the MLX imported here runs its CPU matmuls on it. `BLAS` says
which BLAS MLX is using, for display and run summaries.

MLX needs each thread that used it to destroy its streams as its last MLX act,
or the process may abort at exit ("terminate called without an active
exception"): `run_mlx_thread` does that for worker threads, and an atexit
hook does it for the main thread.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable

import mlx.core as mx

from tscu_tui.engine.models.blas import BLAS, BlasStatus

__all__ = ["BLAS", "BlasStatus", "mx", "run_mlx_thread"]

atexit.register(mx.clear_streams)


def run_mlx_thread(work: Callable[[], object], name: str = "tscu-mlx") -> threading.Thread:
    """Start a daemon thread running `work`, then releasing its MLX streams."""

    def body() -> None:
        try:
            work()
        finally:
            mx.clear_streams()

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread
