"""Benchmark: training throughput alone and beside a competing CPU-bound process.

Runs the demo preset (embedded model, demo corpus, T-SCU off so no idle is
added) six times, one after the other, each in a fresh process: with tscu's
BLAS thread policy (`TSCU_BLAS_THREADS=auto`, the default) and with OpenBLAS's
own fixed two threads (`TSCU_BLAS_THREADS=2`, what tscu did before), each alone
and with one busy-looping process started beside it (the runs alone twice, in
ABBA order around the loaded ones, averaged). Prints steady-state
tokens/s (median over the steps after the first few) and the ratios the policy
is judged by: loaded / alone (target >= 0.8) and auto / fixed alone (target:
no more than 5% slower).

    python bench/under_load.py [--steps 60] [--competitors 1]
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

import tscu_tui.engine  # noqa: F401  (OpenBLAS before anything imports mlx)

BUSY_LOOP = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    pass\n"


def child(steps: int, data_dir: str, out_dir: str) -> None:
    import queue

    from tscu_tui.commands.demo import demo_config
    from tscu_tui.engine.events import LogEvent, StepEvent
    from tscu_tui.engine.train.trainer import Trainer

    config = demo_config(None, [f"data.path={json.dumps(data_dir)}",
                                f"output.dir={json.dumps(out_dir)}",
                                f"train.max_steps={steps}", "train.eval_steps=100000",
                                "train.save_steps=100000", "tscu.enabled=false",
                                'telemetry.source="none"'])
    rates: list[float] = []
    changes: list[str] = []

    def sink(event: object) -> None:
        if isinstance(event, StepEvent):
            rates.append(config.train.batch_size * (config.data.block_size - 1) / event.step_s)
        elif isinstance(event, LogEvent) and event.message.startswith("BLAS threads"):
            changes.append(event.message)

    Trainer(config, sink, queue.Queue()).run()
    skip = min(10, len(rates) // 3)
    print("RESULT " + json.dumps({"tokens_per_s": statistics.median(rates[skip:]),
                                  "changes": changes}))


def run(policy: str, competitors: int, args: argparse.Namespace, data_dir: str) -> dict:
    env = {**os.environ, "TSCU_BLAS_THREADS": policy, **dict(
        kv.split("=", 1) for kv in os.environ.get("UNDER_LOAD_ENV", "").split() if kv)}
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(competitors)]
    try:
        time.sleep(0.5 if competitors else 0.0)
        with tempfile.TemporaryDirectory() as out:
            done = subprocess.run([sys.executable, __file__, "--child", "--steps",
                                   str(args.steps), "--data", data_dir, "--out", out],
                                  env=env, capture_output=True, text=True, check=False)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"run failed ({policy}, {competitors} competing):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--competitors", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.steps, args.data, args.out)
        return
    from tscu_tui.commands.demo import demo_config, ensure_demo_data

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "data")
        ensure_demo_data(demo_config(None, [f"data.path={json.dumps(data_dir)}"]))
        # ABBA: alone runs before and after the loaded ones, in mirrored order, so a
        # drift of the machine's speed over the bench (measured: up to 10% between
        # consecutive runs) falls on both policies alike; each alone figure is the mean.
        order = [("auto", 0), ("2", 0), ("auto", args.competitors),
                 ("2", args.competitors), ("2", 0), ("auto", 0)]
        runs: dict[tuple[str, int], list[dict]] = {}
        for policy, n in order:
            runs.setdefault((policy, n), []).append(run(policy, n, args, data_dir))
        results = {key: {"tokens_per_s": statistics.mean(r["tokens_per_s"] for r in rs),
                         "each": [r["tokens_per_s"] for r in rs],
                         "changes": [c for r in rs for c in r["changes"]]}
                   for key, rs in runs.items()}
    print(f"\ndemo preset (embedded model, 8 x 128 tokens), {os.cpu_count()} cores, "
          f"{args.competitors} competing busy loop(s); tokens/s")
    for (policy, n), r in results.items():
        label = f"{'auto policy' if policy == 'auto' else 'fixed 2 threads'}, " + (
            f"{n} competing" if n else "alone")
        each = " (" + ", ".join(f"{x:.0f}" for x in r["each"]) + ")" if len(r["each"]) > 1 \
            else ""
        print(f"  {label:28s} {r['tokens_per_s']:8.0f}{each}   "
              f"{'; '.join(dict.fromkeys(r['changes'][:3]))}")
    for policy in ("auto", "2"):
        ratio = results[(policy, args.competitors)]["tokens_per_s"] / results[(policy, 0)][
            "tokens_per_s"]
        print(f"  loaded / alone, {policy:4s}            {ratio:8.2f}x")
    alone = results[("auto", 0)]["tokens_per_s"] / results[("2", 0)]["tokens_per_s"]
    print(f"  auto / fixed, alone              {alone:8.2f}x")


if __name__ == "__main__":
    main()
