"""Benchmark: the two CPU slow paths tscu fixes, both sides measured in one run.

1. fp32 matmul on MLX's bundled reference BLAS vs OpenBLAS loaded by tscu
   (a BLAS is fixed at import time, so each side runs in its own subprocess).
2. 4-bit `quantized_matmul` vs tscu's dequantize-then-matmul, for the shapes of
   the embedded tiny model and of Qwen3-4B.

    python bench/cpu_paths.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

MATMUL_CHILD = """
import json, time
from tscu_tui.engine.models.runtime import mx, BLAS
n = 1024
a = mx.random.normal((n, n)); b = mx.random.normal((n, n)); mx.eval(a, b)
mx.eval(a @ b)
reps = 5
t = time.perf_counter()
for _ in range(reps):
    mx.eval(a @ b)
dt = (time.perf_counter() - t) / reps
print(json.dumps({"blas": BLAS.detail, "ms": dt * 1e3, "gflops": 2 * n**3 / dt / 1e9}))
"""


def matmul_side(blas: str) -> dict[str, float]:
    env = {**os.environ, "TSCU_BLAS": blas}
    out = subprocess.run([sys.executable, "-c", MATMUL_CHILD], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def timed(fn, reps: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e3


def quantized_paths() -> None:
    from tscu_tui.engine.models.runtime import mx

    shapes = {"tiny q_proj (x 256 -> 256)": (1024, 256, 256),
              "tiny down_proj (768 -> 256)": (1024, 768, 256),
              "Qwen3-4B q_proj (2560 -> 4096)": (256, 2560, 4096),
              "Qwen3-4B up_proj (2560 -> 9728)": (256, 2560, 9728)}
    print("\n4-bit linear, tokens x in -> out    quantized_matmul  dequant+matmul  speed-up")
    for name, (m, k, n) in shapes.items():
        w = mx.random.normal((n, k)) * 0.02
        wq, scales, biases = mx.quantize(w, group_size=64, bits=4)
        x = mx.random.normal((m, k))
        mx.eval(x, wq, scales, biases)
        q = timed(lambda: mx.eval(mx.quantized_matmul(  # noqa: B023
            x, wq, scales, biases, transpose=True, group_size=64, bits=4)))  # noqa: B023
        d = timed(lambda: mx.eval(x @ mx.dequantize(  # noqa: B023
            wq, scales, biases, group_size=64, bits=4).T))  # noqa: B023
        print(f"{name:<36} {q:>12.1f} ms {d:>12.1f} ms {q / d:>8.1f}x")


def main() -> None:
    ref, fast = matmul_side("reference"), matmul_side("")
    print("fp32 matmul 1024^3")
    print(f"  reference BLAS  {ref['ms']:8.1f} ms  {ref['gflops']:7.1f} GFLOP/s  ({ref['blas']})")
    print(f"  tscu OpenBLAS   {fast['ms']:8.1f} ms  {fast['gflops']:7.1f} GFLOP/s  "
          f"({fast['blas']})")
    print(f"  speed-up        {ref['ms'] / fast['ms']:8.1f}x")
    quantized_paths()


if __name__ == "__main__":
    main()
