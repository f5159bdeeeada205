"""Load an optimised BLAS for MLX's CPU backend, before anything imports mlx.

MLX's Linux CPU wheel links a bundled *reference* BLAS, about 35x slower than
OpenBLAS for fp32 matmul. The dynamic linker resolves MLX's `cblas_sgemm` (and
LAPACK) symbols through the global scope first, so loading OpenBLAS with
RTLD_GLOBAL *before* `mlx.core` is imported makes MLX use it, without touching
MLX itself. OpenBLAS comes from the `cmeel-openblas` wheel (a platform
dependency) or the system (`libopenblas0`). This module imports nothing heavy
and runs when `tscu_tui.engine` is first imported (a ~2 ms dlopen), so every
path into MLX through tscu gets it; `runtime.py` reports the result.

`TSCU_BLAS=reference` keeps MLX's own BLAS (for benchmarks); `TSCU_BLAS=/path`
names a library to load instead.

OpenBLAS's idle worker threads spin before they sleep, by default for 2^28 CPU
cycles (about 0.1 s). A LoRA step leaves BLAS for many stretches shorter than
that (elementwise ops, norms, the native kernels), and in each of them the spinning
worker holds a core that the step's own threads (or another process) could use.
tscu sets `OPENBLAS_THREAD_TIMEOUT` (read by OpenBLAS when it loads) to 16, 2^16
cycles (tens of microseconds), unless it is set already. Measured on 2 cores
(SmolLM2-135M, 4 x 256 tokens; the demo preset; one process each, alone): the step
took 4.0-4.2 s at 2^28 and 3.6-3.8 s at 2^12-2^20 (2^24: 4.0-4.3 s); the demo step
0.116-0.133 s at 2^28 and 0.101-0.102 s at 2^16.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BlasStatus:
    """Which BLAS MLX's CPU backend calls, and why."""

    library: str | None
    detail: str

    @property
    def optimised(self) -> bool:
        return self.library is not None


def _site_dirs() -> list[Path]:
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    with contextlib.suppress(AttributeError):  # virtualenvs of old lack it
        dirs += site.getsitepackages()
    dirs += [p for p in sys.path if p.endswith("site-packages")]
    return list(dict.fromkeys(Path(d) for d in dirs))


def _candidates() -> list[str]:
    found = [str(d / "cmeel.prefix" / "lib" / "libopenblas.so.0") for d in _site_dirs()]
    found = [p for p in found if Path(p).exists()]
    system = ctypes.util.find_library("openblas")
    if system:
        found.append(system)
    return found


#: OPENBLAS_THREAD_TIMEOUT: idle OpenBLAS workers sleep after 2^this many cycles
WORKER_SPIN_EXPONENT = 16


def _load_blas() -> BlasStatus:
    if sys.platform != "linux":
        return BlasStatus(None, f"{sys.platform}: MLX uses the platform's own BLAS")
    choice = os.environ.get("TSCU_BLAS", "").strip()
    if choice == "reference":
        return BlasStatus(None, "TSCU_BLAS=reference: MLX's bundled reference BLAS (slow)")
    if "mlx.core" in sys.modules:
        return BlasStatus(None, "mlx was imported before tscu could load OpenBLAS")
    candidates = [choice] if choice else _candidates()
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(WORKER_SPIN_EXPONENT))
    reasons = []
    for path in candidates:
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            reasons.append(f"{path}: {exc}")
            continue
        spin = os.environ["OPENBLAS_THREAD_TIMEOUT"]
        return BlasStatus(path, f"OpenBLAS loaded from {path} (idle threads sleep after "
                                f"2^{spin} cycles)")
    if not candidates:
        reasons.append("no OpenBLAS found (pip install cmeel-openblas, or apt install "
                       "libopenblas0)")
    return BlasStatus(None, "MLX's reference BLAS (slow): " + "; ".join(reasons))


BLAS: BlasStatus = _load_blas()


def _openblas() -> ctypes.CDLL | None:
    if BLAS.library is None:
        return None
    try:
        lib = ctypes.CDLL(BLAS.library)
        lib.openblas_set_num_threads.argtypes = [ctypes.c_int]
        lib.openblas_get_num_threads.restype = ctypes.c_int
    except (OSError, AttributeError):  # another BLAS named by TSCU_BLAS
        return None
    return lib


def blas_threads() -> int | None:
    """Threads OpenBLAS uses for one call now; None when tscu did not load OpenBLAS."""
    lib = _openblas()
    return int(lib.openblas_get_num_threads()) if lib is not None else None


def set_blas_threads(count: int) -> bool:
    """Let OpenBLAS use `count` threads per call; False when it is not ours to set."""
    lib = _openblas()
    if lib is None:
        return False
    lib.openblas_set_num_threads(max(1, int(count)))
    return True
