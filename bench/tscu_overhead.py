"""Benchmark: what the T-SCU bookkeeping costs per optimizer step.

Measures, in one run, a real optimizer step of the embedded model (the tiny
model is the worst case: its steps are the shortest) and the per-step T-SCU
work the trainer does after it (`ThermalControl.after_step`: a fresh sensor
read, the power window average, the governor update, the idle plan), plus
the sampler thread's load (one poll's cost over the sampling period). Prints
the cost as a share of step time.

    python bench/tscu_overhead.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from tscu_tui.engine.config import load_config
from tscu_tui.engine.config.assets import DEMO_CORPUS
from tscu_tui.engine.data import PrepareOptions, prepare_dataset
from tscu_tui.engine.events import StepEvent
from tscu_tui.engine.models.load import EMBEDDED_MODEL
from tscu_tui.engine.train.thermal import ThermalControl
from tscu_tui.engine.train.trainer import Trainer


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare_dataset(PrepareOptions(dataset=str(DEMO_CORPUS), model=EMBEDDED_MODEL,
                                       output_dir=data, block_size=128,
                                       validation_fraction=0.02, max_tokens=200_000))
        results = {}
        for source in ("estimated", "simulated"):
            config = load_config(None, [
                f'model.name="{EMBEDDED_MODEL}"', f'data.path="{data}"',
                f'output.dir="{Path(tmp) / source}"', "data.block_size=128",
                "lora.r=8", "lora.alpha=16.0", "train.batch_size=8", "train.max_steps=30",
                "train.gradient_accumulation_steps=1",
                "train.eval_steps=1000", "train.save_steps=1000",
                f'telemetry.source="{source}"', "tscu.power_budget_watts=1000.0"])
            steps: list[float] = []
            Trainer(config, lambda e: steps.append(e.step_s)  # noqa: B023
                    if isinstance(e, StepEvent) else None).run()
            step_s = statistics.median(steps[3:])
            control = ThermalControl(config, on_warning=print)
            control.start()
            calls = 500
            started = time.perf_counter()
            for _ in range(calls):
                control.after_step(step_s)
            per_step = (time.perf_counter() - started) / calls
            started = time.perf_counter()
            for _ in range(calls):
                control.sampler.poll_once()
            per_poll = (time.perf_counter() - started) / calls
            control.stop()
            results[source] = (step_s, per_step, per_poll / config.telemetry.interval_seconds)
        print("source        step time   T-SCU work/step   share of step   sampler thread load")
        for source, (step_s, per_step, load) in results.items():
            print(f"  {source:<10} {step_s * 1e3:8.1f} ms  {per_step * 1e6:10.1f} us "
                  f"  {per_step / step_s:12.3%}   {load:12.3%} of a core")


if __name__ == "__main__":
    main()
