"""MLX as engine modules use it: `from tscu_tui.engine.models.runtime import mx`.

Importing any `tscu_tui.engine` module has already loaded OpenBLAS (see
blas.py), so the MLX imported here runs its CPU matmuls on it. `BLAS` says
which BLAS MLX is using, for display and run summaries.

MLX needs each thread that used it to destroy its streams as its last MLX act,
or the process may abort at exit ("terminate called without an active
exception"): `release_streams` does that for worker threads (`run_mlx_thread`
calls it), and an atexit hook does it for the main thread.

`mx.clear_streams()` also empties MLX's compile cache, holding the cache's lock
while it destroys the compiled graphs, and destroying a graph node that holds a
Python function (an `mx.custom_function`'s VJP) takes the GIL. If another thread
holds the GIL and waits for that lock (its garbage collector freeing a compiled
function calls MLX's `compile_erase`), both wait forever: seen in the app as a
train screen that never finished. `release_streams` therefore collects garbage
first, under its own GIL, and pauses the cyclic collector while it clears.
"""

from __future__ import annotations

import atexit
import gc
import threading
from collections.abc import Callable

import mlx.core as mx

from tscu_tui.engine.models.blas import BLAS, BlasStatus

__all__ = ["BLAS", "BlasStatus", "mx", "release_streams", "run_mlx_thread"]

atexit.register(mx.clear_streams)
_RELEASING = threading.Lock()


def release_streams() -> None:
    """A worker thread's last MLX act: destroy its streams, without the deadlock above."""
    with _RELEASING:  # the collector's on/off state is the interpreter's, not ours
        gc.collect()  # garbage compiled functions go now, erased under this thread's GIL
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            mx.clear_streams()
        finally:
            if was_enabled:
                gc.enable()


def run_mlx_thread(work: Callable[[], object], name: str = "tscu-mlx") -> threading.Thread:
    """Start a daemon thread running `work`, then releasing its MLX streams."""

    def body() -> None:
        try:
            work()
        finally:
            release_streams()

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread
