"""Benchmark: one rank with 2 BLAS threads against 2 ranks with 1 thread each, this machine.

Runs the demo preset (embedded model, demo corpus, T-SCU off so no idle is
added, no telemetry) through the real CLI, one run after the other, each a
fresh set of processes and the same global batch:

- `tscu train` with TSCU_BLAS_THREADS=2: one process, each matmul split over
  two threads;
- `tscu train --launch 2` with TSCU_BLAS_THREADS=1: two ring ranks on
  localhost, each training on half of every batch, gradients averaged.

Prints steady-state tokens/s (median over the steps after the first few; a
step of the 2-rank run lasts until the slower rank is done, collectives
included) and the 2-rank / 1-rank ratio, plus each run's wall time from start
to exit (start-up, evaluation and writing included). Run it on an otherwise
idle machine: with other work on the cores the ratio means nothing.

    python bench/distributed.py [--steps 40] [--preset demo|real]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tscu_tui.engine  # noqa: F401  (OpenBLAS before anything imports mlx)


def run(label: str, config: Path, out: Path, threads: int, launch: int) -> dict:
    env = {**os.environ, "TSCU_BLAS_THREADS": str(threads)}
    command = [sys.executable, "-m", "tscu_tui", "train", "--config", str(config),
               "--output-dir", str(out)] + (["--launch", str(launch)] if launch > 1 else [])
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{label} failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    tokens = next(r["tokens_per_step"] for r in records if r["event"] == "RunStarted")
    rates = [tokens / r["step_s"] for r in records if r["event"] == "StepEvent"]
    skip = min(5, len(rates) // 3)
    return {"tokens_per_s": statistics.median(rates[skip:]), "wall_s": wall,
            "tokens_per_step": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--preset", choices=("demo", "real"), default="demo",
                        help="demo: the embedded model; real: SmolLM2-135M on pydoc")
    args = parser.parse_args()
    from tscu_tui.commands.demo import demo_config, ensure_demo_data
    from tscu_tui.engine.config import save_config

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = demo_config(str(root), [
            f"train.max_steps={args.steps}", "train.eval_steps=100000",
            "train.save_steps=100000", "tscu.enabled=false", 'telemetry.source="none"'],
            args.preset)
        ensure_demo_data(config)
        save_config(root / "bench.toml", config)
        one = run("1 rank x 2 threads", root / "bench.toml", root / "one", 2, 1)
        two = run("2 ranks x 1 thread", root / "bench.toml", root / "two", 1, 2)
    batch = config.train.batch_size * config.train.gradient_accumulation_steps
    print(f"\n{args.preset} preset ({config.model.name}, global batch {batch} x "
          f"{config.data.block_size} tokens), {args.steps} steps, {os.cpu_count()} cores; "
          "tokens/s (steady state)")
    print(f"  1 rank  x 2 BLAS threads   {one['tokens_per_s']:8.0f}   wall {one['wall_s']:.1f} s")
    print(f"  2 ranks x 1 BLAS thread    {two['tokens_per_s']:8.0f}   wall {two['wall_s']:.1f} s")
    print(f"  2 ranks / 1 rank           {two['tokens_per_s'] / one['tokens_per_s']:8.2f}x")


if __name__ == "__main__":
    main()
