"""Benchmark: how well the T-SCU governor holds a power budget in a real training run.

Trains the embedded model on the demo corpus on the simulated plant (5 W idle,
40 W flat out) with the budget at 0.6x full-load power (24 W), evaluations
included, and prints for each run:

- the run's average power (energy over wall time, what mlx_tscu_analysis.json
  reports) against the budget, in percent;
- the control factor's step-to-step variation: mean |c[k] - c[k-1]| over the
  steps after the first ten (the governor's start is a transient, not noise).

The plant's energy is exact whatever the machine's speed (busy time x 35 W +
wall time x 5 W), so the numbers mean the same under CPU contention.

    python bench/governor_tracking.py [--steps 60] [--runs 3] [--demo]
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import tempfile
from pathlib import Path

import tscu_tui.engine  # noqa: F401  (OpenBLAS before anything imports mlx)

BUSY_W = 40.0  # the simulated plant's full-load power (PlantParams.busy_w)
DEMO_SIZES = ("lora.r=8", "train.batch_size=8", "train.eval_steps=25", "train.eval_batches=8",
              "telemetry.interval_seconds=0.25")


def tracking_run(data: Path, out: Path, steps: int, *overrides: str) -> dict[str, float]:
    from tscu_tui.engine.config import load_config
    from tscu_tui.engine.events import StepEvent
    from tscu_tui.engine.models.load import EMBEDDED_MODEL
    from tscu_tui.engine.train.trainer import Trainer

    budget = 0.6 * BUSY_W
    config = load_config(None, [
        f'model.name="{EMBEDDED_MODEL}"', f"data.path={json.dumps(str(data))}",
        f"output.dir={json.dumps(str(out))}", "lora.r=4", "train.batch_size=4",
        "train.gradient_accumulation_steps=1", "train.warmup_steps=2",
        f"train.max_steps={steps}", "train.eval_steps=20", "train.eval_batches=4",
        "train.save_steps=100000", "train.logging_steps=1", 'telemetry.source="simulated"',
        "telemetry.interval_seconds=0.05", f"tscu.power_budget_watts={budget}",
        *overrides])
    events: list[object] = []
    Trainer(config, events.append, queue.Queue()).run()
    analysis = json.loads((out / "mlx_tscu_analysis.json").read_text())
    cs = [e.control_factor for e in events if isinstance(e, StepEvent)]
    jumps = [abs(b - a) for a, b in zip(cs[10:], cs[11:], strict=False)]
    return {"avg_power_w": analysis["avg_power_watts"], "budget_w": budget,
            "error_pct": 100 * (analysis["avg_power_watts"] / budget - 1),
            "c_mean_abs_change": statistics.mean(jumps) if jumps else 0.0,
            "c_last": cs[-1]}


def prepare(folder: Path) -> Path:
    from tscu_tui.engine.config.assets import DEMO_CORPUS
    from tscu_tui.engine.data import PrepareOptions, prepare_dataset
    from tscu_tui.engine.models.load import EMBEDDED_MODEL

    out = folder / "data"
    prepare_dataset(PrepareOptions(dataset=str(DEMO_CORPUS), model=EMBEDDED_MODEL,
                                   output_dir=out, block_size=64, validation_fraction=0.05,
                                   max_tokens=120_000))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--demo", action="store_true",
                        help="the demo preset's sizes: batch 8, rank 8, 8 evaluation batches "
                             "every 25 steps, telemetry every 0.25 s")
    args = parser.parse_args()
    extra = DEMO_SIZES if args.demo else ()
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare(Path(tmp))
        for i in range(args.runs):
            r = tracking_run(data, Path(tmp) / f"run{i}", args.steps, *extra)
            print(f"run {i + 1}: {r['avg_power_w']:.2f} W against {r['budget_w']:.1f} W "
                  f"({r['error_pct']:+.1f}%), mean |dc| {r['c_mean_abs_change']:.3f}, "
                  f"final c {r['c_last']:.2f}", flush=True)


if __name__ == "__main__":
    main()
