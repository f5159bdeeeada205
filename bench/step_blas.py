"""Benchmark: every BLAS call of a real LoRA step, counted and timed, and what is left.

bench/step_profile.py times each part of a step alone. This script looks inside the
step itself: it interposes `cblas_sgemm` (a 40-line C shim, compiled here, put in
front of OpenBLAS with LD_PRELOAD; Linux only) and, for the steps it records, sums
each call's wall time by shape. MLX's CPU stream runs one primitive at a time, so
the calls never overlap and their times add up. The calls are put in three classes:

- projections and head: the base matmuls the bound counts (forward and input
  gradient of the seven projections and of the output head);
- attention: the score and value products (head_dim = 64 against the block);
- LoRA: every product with the adapters' rank on one side.

The step's time outside BLAS is the step (recorded with the shim on) minus the
calls' sum. The same process then times the bound's matmuls alone (as
step_profile.py does) through the same shim, so the in-step and isolated rates of
the very same shapes are compared in one run. The last lines work out the share of
the bound the step would reach if a class took no time at all: what any kernel for
that class could give at most. It runs the attention as matmuls around the native
softmax (TSCU_FUSED_ATTENTION=0): the fused kernel calls sgemm from several threads at
once, which neither the shim's table nor "calls never overlap" allows; that kernel's
gain is step_profile.py's (`--sides unfused-attention,after`).

    python bench/step_blas.py [--steps 4] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from step_profile import spread

import tscu_tui.engine  # noqa: F401  (loads OpenBLAS; must come before anything imports mlx)

SHIM_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
typedef void (*sgemm_t)(int, int, int, int, int, int, float, const float*, int,
                        const float*, int, float, float*, int);
static sgemm_t real_sgemm;
enum { SLOTS = 4096 };
static struct { int ta, tb, m, n, k; long calls; double seconds; } table[SLOTS];
static int used, recording;
static double now(void) {
  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9;
}
void shim_record(int on) { recording = on; }
void shim_clear(void) { memset(table, 0, sizeof table); used = 0; }
int shim_dump(const char* path) {
  FILE* f = fopen(path, "w");
  if (!f) return 1;
  for (int i = 0; i < used; i++)
    fprintf(f, "%d %d %d %d %d %ld %.9f\n", table[i].ta, table[i].tb, table[i].m,
            table[i].n, table[i].k, table[i].calls, table[i].seconds);
  return fclose(f);
}
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb, float beta, float* c,
                 int ldc) {
  if (!real_sgemm) {
    void* lib = dlopen(getenv("TSCU_SHIM_BLAS"), RTLD_NOW | RTLD_GLOBAL);
    real_sgemm = lib ? (sgemm_t)dlsym(lib, "cblas_sgemm") : 0;
    if (!real_sgemm) { fprintf(stderr, "shim: no cblas_sgemm in TSCU_SHIM_BLAS\n"); abort(); }
  }
  double t0 = recording ? now() : 0.0;
  real_sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (!recording) return;
  double dt = now() - t0;
  int i = 0;
  while (i < used && !(table[i].ta == ta && table[i].tb == tb && table[i].m == m &&
                       table[i].n == n && table[i].k == k)) i++;
  if (i == used) {
    if (used == SLOTS) return;
    table[i].ta = ta; table[i].tb = tb; table[i].m = m; table[i].n = n; table[i].k = k;
    used++;
  }
  table[i].calls++; table[i].seconds += dt;
}
"""

CLASSES = ["projections and head", "attention", "LoRA"]


def build_shim(folder: Path) -> Path:
    """Compile the interposer; exit with one line when it cannot be."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        sys.exit("step_blas: no C compiler (cc) found; `make setup` installs one")
    source, library = folder / "shim.c", folder / "libtscu_blas_shim.so"
    source.write_text(SHIM_SOURCE)
    done = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(library),
                           str(source), "-ldl"], capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"step_blas: the shim did not compile: {done.stderr.strip()[-300:]}")
    return library


def load_table(path: Path) -> list[dict[str, float]]:
    rows = []
    for line in path.read_text().splitlines():
        ta, tb, m, n, k, calls, seconds = line.split()
        rows.append({"trans": f"{'NT'[int(ta) == 112]}{'NT'[int(tb) == 112]}", "m": int(m),
                     "n": int(n), "k": int(k), "calls": int(calls),
                     "seconds": float(seconds)})
    return rows


def classify(row: dict[str, float], rank: int, head_dim: int, block: int,
             group: int) -> str:
    dims = {row["m"], row["n"], row["k"]}
    if rank in dims:
        return "LoRA"
    if head_dim in dims and ({block, block * group} & dims):
        return "attention"
    return "projections and head"


def child(args: argparse.Namespace) -> None:
    """Inside the shimmed process: the real preset's trainer, its steps, the bound."""
    import ctypes
    import time

    import mlx.nn as nn
    from real_preset import real_trainer

    from tscu_tui.engine.models.runtime import mx

    shim = ctypes.CDLL(os.environ["TSCU_SHIM_LIBRARY"])
    out = Path(args.out)
    trainer = real_trainer(Path(args.data), out / "run")
    config = trainer.config
    model = trainer.session.model
    model.train()
    batch = config.train.batch_size
    lam, scale = mx.array(0.5), mx.array(1.0)
    blocks = trainer.session.train_blocks

    def step() -> float:
        start = time.perf_counter()
        arrays = blocks.batch(slice(0, batch)).arrays
        loss, _, _, grads = trainer.step.micro_step(arrays, lam, None)
        mx.eval(loss, grads)
        trainer.step.update(grads, scale)
        mx.eval(model.parameters(), trainer.session.optimizer.state)
        return time.perf_counter() - start

    step(), step()  # compile, settle
    plain = [step() for _ in range(args.steps)]
    shim.shim_clear()
    shim.shim_record(1)
    shimmed = [step() for _ in range(args.steps)]
    shim.shim_record(0)
    shim.shim_dump(str(out / "step.txt").encode())

    # the bound's matmuls alone, as step_profile.py measures them, through the same shim
    margs = model.args
    n = batch * (config.data.block_size - 1)
    shapes = [(m.scales.shape[0], m.scales.shape[1] * m.group_size)
              for _, m in model.layers[0].named_modules() if isinstance(m, nn.QuantizedLinear)]
    weights = {s: mx.random.normal(s) * 0.02 for s in set(shapes)}
    acts = {d: mx.random.normal((n, d)) for s in shapes for d in s}
    head = mx.random.normal((margs.vocab_size, margs.hidden_size)) * 0.02
    g_head = mx.random.normal((n, margs.vocab_size))
    mx.eval(weights, acts, head, g_head)

    def bound_matmuls() -> None:
        outs = []
        for out_dim, in_dim in shapes:
            outs += [acts[in_dim] @ weights[(out_dim, in_dim)].T,
                     acts[out_dim] @ weights[(out_dim, in_dim)]]
        mx.eval(outs)
        mx.eval(acts[margs.hidden_size] @ head.T, g_head @ head)

    bound_matmuls()
    shim.shim_clear()
    shim.shim_record(1)
    for _ in range(args.steps):
        for _ in range(margs.num_hidden_layers - 1):  # one layer's shapes per layer ...
            mx.eval([acts[i] @ weights[(o, i)].T for o, i in shapes]
                    + [acts[o] @ weights[(o, i)] for o, i in shapes])
        bound_matmuls()  # ... and the head once
    shim.shim_record(0)
    shim.shim_dump(str(out / "alone.txt").encode())
    heads, kv = margs.num_attention_heads, margs.num_key_value_heads
    print("RESULT " + json.dumps({
        "plain": plain, "shimmed": shimmed, "steps": args.steps, "tokens": n,
        "rank": config.lora.r, "block": config.data.block_size - 1,
        "head_dim": getattr(margs, "head_dim", None) or margs.hidden_size // heads,
        "group": heads // kv,
        "flops_per_token": 4 * (margs.num_hidden_layers * sum(o * i for o, i in shapes)
                                + margs.vocab_size * margs.hidden_size)}), flush=True)


def run_once(library: Path, blas: str, data: str, steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="tscu-step-blas-") as out:
        env = {**os.environ, "LD_PRELOAD": str(library), "TSCU_SHIM_BLAS": blas,
               "TSCU_SHIM_LIBRARY": str(library), "TSCU_FUSED_ATTENTION": "0"}
        done = subprocess.run([sys.executable, __file__, "--child", "--steps", str(steps),
                               "--data", data, "--out", out],
                              env=env, capture_output=True, text=True, check=False)
        lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode or not lines:
            sys.exit(f"step_blas: the measured run failed:\n{done.stderr[-2000:]}")
        result = json.loads(lines[-1].removeprefix("RESULT "))
        result["step_table"] = load_table(Path(out) / "step.txt")
        result["alone_table"] = load_table(Path(out) / "alone.txt")
        return result


def summarise(result: dict) -> dict[str, float]:
    """Seconds per step by class, the isolated rate of the bound's shapes, and shares."""
    steps = result["steps"]
    dims = (result["rank"], result["head_dim"], result["block"], result["group"])
    by_class = dict.fromkeys(CLASSES, 0.0)
    flops = dict.fromkeys(CLASSES, 0.0)
    for row in result["step_table"]:
        cls = classify(row, *dims)
        by_class[cls] += row["seconds"] / steps
        flops[cls] += 2.0 * row["m"] * row["n"] * row["k"] * row["calls"] / steps
    alone_s = sum(r["seconds"] for r in result["alone_table"]) / steps
    alone_flops = sum(2.0 * r["m"] * r["n"] * r["k"] * r["calls"]
                      for r in result["alone_table"]) / steps
    step = statistics.median(result["shimmed"])
    blas = sum(by_class.values())
    bound_s = result["tokens"] * result["flops_per_token"] / (alone_flops / alone_s)
    out = {"step": step, "plain step": statistics.median(result["plain"]),
           "outside BLAS": step - blas, "bound step": bound_s,
           "alone gflops": alone_flops / alone_s / 1e9, "share": bound_s / step}
    for cls in CLASSES:
        out[cls] = by_class[cls]
        out[f"{cls} gflops"] = flops[cls] / by_class[cls] / 1e9 if by_class[cls] else 0.0
        out[f"share without {cls}"] = bound_s / (step - by_class[cls])
    out["share without attention and LoRA"] = bound_s / (
        step - by_class["attention"] - by_class["LoRA"])
    out["share without outside BLAS"] = bound_s / (step - out["outside BLAS"])
    out["share with the projections alone"] = bound_s / by_class["projections and head"]
    return out


def report(runs: list[dict[str, float]], result: dict) -> None:
    over = f"; median (min-max) of {len(runs)} runs" if len(runs) > 1 else "; one run"
    print(f"\nreal preset (SmolLM2-135M, 4 x 256, LoRA r=8): one step's BLAS calls{over}")
    col = lambda key, fmt=".2f": spread([r[key] for r in runs], fmt)  # noqa: E731
    print(f"  step, shim recording       {col('step')} s   (not recording: "
          f"{col('plain step')} s)")
    for cls in CLASSES:
        print(f"  {cls:26s} {col(cls)} s at {col(cls + ' gflops', '.0f')} GFLOP/s")
    print(f"  {'outside BLAS':26s} {col('outside BLAS')} s")
    print(f"  the bound's matmuls alone at {col('alone gflops', '.0f')} GFLOP/s: a "
          f"{col('bound step')} s step, {col('share', '.1%')} of it reached")
    print("  the share of the bound if a part took no time at all:")
    for key in ["share without attention", "share without LoRA",
                "share without attention and LoRA", "share without outside BLAS",
                "share with the projections alone"]:
        label = key.replace("share without ", "without ").replace(
            "share with the projections alone", "everything but the projections")
        print(f"    {label:40s} {col(key, '.1%')}")
    print("  the slowest shapes in the step (first run):")
    rows = sorted(result["step_table"], key=lambda r: -r["seconds"])[:12]
    for row in rows:
        per_step = row["seconds"] / result["steps"]
        rate = 2.0 * row["m"] * row["n"] * row["k"] * row["calls"] / row["seconds"] / 1e9
        cls = classify(row, result["rank"], result["head_dim"], result["block"],
                       result["group"])
        print(f"    {row['trans']} {row['m']:6d} x {row['n']:6d} x {row['k']:6d} "
              f"{row['calls'] // result['steps']:5d} calls {per_step:6.3f} s "
              f"{rate:5.0f} GFLOP/s  {cls}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="steps recorded per run")
    parser.add_argument("--repeat", type=int, default=1, help="runs (fresh processes)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.steps < 1 or args.repeat < 1:
        parser.error("--steps and --repeat: at least 1")
    from tscu_tui.engine.models.blas import BLAS

    if sys.platform != "linux" or BLAS.library is None:
        sys.exit(f"step_blas: needs Linux with OpenBLAS loaded by tscu ({BLAS.detail})")
    runs, first = [], None
    with tempfile.TemporaryDirectory(prefix="tscu-step-blas-") as folder:
        library = build_shim(Path(folder))
        data = str(Path(folder) / "data")
        for i in range(args.repeat):
            result = run_once(library, BLAS.library, data, args.steps)
            first = first or result
            runs.append(summarise(result))
            print(f"  run {i + 1}: step {runs[-1]['step']:.2f} s, "
                  f"{runs[-1]['share']:.1%} of the bound", flush=True)
    assert first is not None
    report(runs, first)


if __name__ == "__main__":
    main()
