"""Peak memory of the current run: MLX's arrays and the process's resident set.

`mx.get_peak_memory()` counts MLX's allocations (what the estimate in memory.py
models); the resident set adds the Python runtime, the tokenizer, the data and
the allocator's cache. Both are reset when a run starts, so a second run in the
same app process reports its own peak: MLX through `mx.reset_peak_memory()`,
Linux's high-water mark through /proc/self/clear_refs. Where the high-water mark
cannot be reset (macOS), `ru_maxrss` is the process's lifetime peak, and the
run's own peak is at most that.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from pathlib import Path

from tscu_tui.engine.models.runtime import mx

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peaks() -> None:
    mx.reset_peak_memory()
    with contextlib.suppress(OSError):
        _CLEAR_REFS.write_text("5")  # 5 = reset the peak resident set size (VmHWM)


def peak_rss_bytes() -> int:
    """Highest resident set size since reset_peaks() (Linux) or process start."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)


def peak_memory_bytes() -> int:
    """Highest MLX allocation total since reset_peaks()."""
    return int(mx.get_peak_memory())
