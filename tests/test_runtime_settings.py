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
import ctypes, json, sys
import tscu_tui.engine
from tscu_tui.engine.models.allocator import ALLOCATOR, keep_large_blocks

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2

def mapped(mib=200):
    before = libc.mallinfo2().hblks  # blocks glibc took from mmap (each returned on free)
    block = libc.malloc(mib * 2**20)  # 200: a SmolLM2 step's logits
    taken = libc.mallinfo2().hblks - before
    libc.free(block)
    return taken

result = {"allocator": ALLOCATOR, "mapped": mapped()}
result["set"] = keep_large_blocks(True)
result["mapped_kept"] = mapped()
keep_large_blocks(False)
result["mapped_again"] = mapped(300)  # larger than the kept 200 MB free block
print(json.dumps(result))
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
def test_large_blocks_come_from_the_heap_only_when_asked():
    kept = probe(HEAP_PROBE)
    if "not glibc" in kept["allocator"]:
        pytest.skip(kept["allocator"])
    assert kept["allocator"] == ("glibc keeps freed memory (mmap threshold 32 MiB, trim "
                                 "threshold 2 GiB)")
    assert kept["mapped"] == 1  # by default a 200 MB block is mapped and unmapped
    assert kept["set"] and kept["mapped_kept"] == 0  # kept: from the heap
    assert kept["mapped_again"] == 1
    default = probe(HEAP_PROBE, TSCU_MALLOC="default")
    assert default["allocator"] == "TSCU_MALLOC=default: glibc's own settings"
    assert not default["set"] and default["mapped_kept"] == 1


@pytest.mark.parametrize(("available_gib", "kept"), [(1024, True), (0.5, False)])
def test_the_memory_plan_keeps_large_blocks_only_with_memory_to_spare(
        monkeypatch, available_gib, kept):
    from tscu_tui.engine.config import load_config
    from tscu_tui.engine.models import allocator, memory
    from tscu_tui.engine.models.checkpointing import plan_memory
    from tscu_tui.engine.models.load import EMBEDDED_MODEL, load_model

    calls: list[bool] = []
    monkeypatch.setattr(allocator, "keep_large_blocks", lambda keep: calls.append(keep) or True)
    monkeypatch.setattr(memory, "available_memory", lambda: int(available_gib * 2**30))
    model, _, _ = load_model(EMBEDDED_MODEL, None)
    config = load_config(None, [f'model.name="{EMBEDDED_MODEL}"', 'data.path="/nonexistent"',
                                'train.grad_checkpoint="false"'])
    plan = plan_memory(model, config, 8 * 127)
    assert calls == [kept] and plan.large_blocks_kept is kept
    assert ("large blocks kept for reuse" in plan.describe()) is kept
