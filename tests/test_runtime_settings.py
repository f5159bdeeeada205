"""What tscu sets up in the process before MLX runs, checked in fresh processes (the
settings take effect when the libraries load): idle OpenBLAS workers that sleep
instead of spinning, and a heap that keeps large blocks for the next step."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SPIN_PROBE = """
import json, os, resource, time
import tscu_tui.engine
from tscu_tui.engine.models.blas import BLAS, blas_threads
from tscu_tui.engine.models.runtime import mx
a = mx.random.normal((768, 768))
mx.eval(a)
for _ in range(3):
    mx.eval(a @ a)  # both BLAS threads work; the worker then waits for the next call
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
start = cpu()
time.sleep(0.05)
print(json.dumps({"timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
                  "openblas": BLAS.library is not None, "threads": blas_threads(),
                  "idle_cpu_s": cpu() - start}))
"""

HEAP_PROBE = """
import ctypes, json
import tscu_tui.engine
from tscu_tui.engine.models.allocator import ALLOCATOR

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
before = libc.mallinfo2().hblks  # blocks glibc took from mmap (each returned on free)
block = libc.malloc(200 * 2**20)  # a SmolLM2 step's logits
mapped = libc.mallinfo2().hblks - before
libc.free(block)
print(json.dumps({"mapped": mapped, "allocator": ALLOCATOR}))
"""


def probe(code: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("OPENBLAS_THREAD_TIMEOUT", "TSCU_MALLOC", "TSCU_BLAS_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], env={**environ, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_idle_openblas_workers_sleep_unless_the_user_sets_the_timeout():
    default = probe(SPIN_PROBE)
    if not default["openblas"] or (default["threads"] or 1) < 2:
        pytest.skip("needs tscu's OpenBLAS with two threads or more")
    assert default["timeout"] == "16"
    # OpenBLAS's own default (2^28 cycles, ~0.1 s): the worker spins through the sleep
    spinning = probe(SPIN_PROBE, OPENBLAS_THREAD_TIMEOUT="28")
    assert spinning["timeout"] == "28"  # the user's setting is kept
    assert spinning["idle_cpu_s"] > 0.025
    assert default["idle_cpu_s"] < 0.015


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_large_blocks_come_from_the_heap_not_from_mmap():
    kept = probe(HEAP_PROBE)
    if "not glibc" in kept["allocator"]:
        pytest.skip(kept["allocator"])
    assert kept["allocator"] == "glibc keeps freed memory (no mmap, trim threshold 2 GiB)"
    assert kept["mapped"] == 0
    default = probe(HEAP_PROBE, TSCU_MALLOC="default")
    assert default["allocator"] == "TSCU_MALLOC=default: glibc's own settings"
    assert default["mapped"] == 1
