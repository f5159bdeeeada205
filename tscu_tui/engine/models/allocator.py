"""Keep freed memory for reuse (glibc), before MLX allocates anything.

MLX's CPU backend allocates every intermediate array with malloc. glibc serves
blocks above its mmap threshold (128 KiB, rising with use to at most 32 MiB) by
mmap and returns them to the kernel on free, so the next step's arrays are
zero-filled pages again: an elementwise add over a 1M-element array cost 2.7 ns
per element that way against 0.4 ns once memory is reused (measured on a 2-core
machine; `bench/step_profile.py`). Setting the mmap threshold to its maximum and
trimming to a high-water mark keeps the heap's freed blocks for the next step.

Blocks above 32 MiB (the largest threshold glibc accepts) are still mapped and
unmapped each step: for SmolLM2-135M at 4 x 256 tokens the logits and their
gradient (200 MB each) and the float32 output projection (113 MB, twice), about
0.6 GB of fresh zero-filled pages a step, 0.3-0.5 s of CPU time in the kernel.
`keep_large_blocks(True)` turns mmap off (M_MMAP_MAX = 0), so those come from the
heap too and their memory is reused: 3.6-3.7 s a step against 4.0-4.2 s (same
process alone, 2 cores). The heap's high-water mark then includes its
fragmentation, so the resident peak grows: by 0.23-0.26 GiB for SmolLM2 (3.16
against 2.90 GiB), and by 1.4 GiB (4.77 against 3.36) for four of Qwen3-4B's layers
with its chunked 151,936-word loss (`bench/memory.py`). So the memory plan
(checkpointing.plan_memory) turns it on only where the run's estimate is at most
half of the memory available, and says so in the run's log.

The cost: the process holds on to its peak heap until it exits (a training run
needs it again every step anyway). `TSCU_MALLOC=default` leaves glibc alone.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit
TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes an int: 2 GiB of slack before trimming
MMAP_MAX_DEFAULT = 65536  # glibc's own M_MMAP_MAX


def _glibc_mallopt() -> tuple[Any, str]:
    """(glibc's mallopt, "") or (None, why the allocator stays untouched)."""
    if sys.platform != "linux":
        return None, f"{sys.platform}: the platform allocator, untouched"
    if os.environ.get("TSCU_MALLOC", "").strip().lower() == "default":
        return None, "TSCU_MALLOC=default: glibc's own settings"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None, "not glibc: the allocator is untouched"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return mallopt, ""


def keep_freed_memory() -> str:
    """Apply the settings; say what was done (for run summaries)."""
    mallopt, untouched = _glibc_mallopt()
    if mallopt is None:
        return untouched
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) and mallopt(M_TRIM_THRESHOLD,
                                                                 TRIM_THRESHOLD):
        return "glibc keeps freed memory (mmap threshold 32 MiB, trim threshold 2 GiB)"
    return "glibc refused the mallopt settings: its defaults stay"


def keep_large_blocks(keep: bool) -> bool:
    """Serve blocks above 32 MiB from the heap (kept for reuse) or by mmap (returned to
    the kernel on free, glibc's default); True when the setting took effect."""
    mallopt, _ = _glibc_mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_MAX, 0 if keep else MMAP_MAX_DEFAULT))


ALLOCATOR = keep_freed_memory()
