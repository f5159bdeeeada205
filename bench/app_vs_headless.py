"""Benchmark: engine tokens/s inside the app against headless `tscu train`.

Runs the same training (embedded model, demo data, 8x128-token steps, T-SCU
governor off so no duty cycling, telemetry 'none') in one process, alternating
the two hosts: the Textual app (headless driver, the real train screen, started
by its key, drawing every event) and `tscu train`'s code path (`run_training`
with its Rich display). Tokens/s is each run's trained tokens over its compute
seconds (from mlx_training_summary.json), so both sides are measured the same
way. Prints per-run figures, medians and the ratio app / headless.

    python bench/app_vs_headless.py [--steps 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from tscu_tui.app import TscuApp
from tscu_tui.commands.train import run_training
from tscu_tui.engine.config import Config, load_config
from tscu_tui.engine.config.assets import DEMO_CORPUS
from tscu_tui.engine.data import PrepareOptions, prepare_dataset
from tscu_tui.engine.models.load import EMBEDDED_MODEL
from tscu_tui.screens.train import TrainScreen


def config_for(data: Path, out: Path, steps: int) -> Config:
    return load_config(None, [
        f'model.name="{EMBEDDED_MODEL}"', f'data.path="{data}"', f'output.dir="{out}"',
        "data.block_size=128", "lora.r=8", "lora.alpha=16.0", "lora.dropout=0.0",
        "train.batch_size=8", "train.gradient_accumulation_steps=1", f"train.max_steps={steps}",
        "train.warmup_steps=5", "train.eval_steps=20", "train.eval_batches=4",
        f"train.save_steps={steps}", "train.logging_steps=10", "tscu.enabled=false",
        'telemetry.source="none"', "output.overwrite=true"])


def tokens_per_s(run_dir: Path) -> float:
    summary = json.loads((run_dir / "mlx_training_summary.json").read_text())
    return summary["tokens"] / summary["train_seconds"]


def headless(config: Config) -> float:
    import tscu_tui.console_display as display

    quiet = Console(file=io.StringIO(), force_terminal=True, width=100)  # draw, off screen
    original = display.Console
    display.Console = lambda stderr=True: quiet  # type: ignore[assignment,misc]
    try:
        run_training(config)
    finally:
        display.Console = original  # type: ignore[misc]
    return tokens_per_s(Path(config.output.dir))


def in_app(config: Config) -> float:
    async def drive() -> None:
        app = TscuApp(config, Path(config.output.dir) / "tscu.toml")
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            assert isinstance(screen, TrainScreen)
            await pilot.press("s")
            while screen.state != "finished":  # plain sleeps: Pilot.pause would force
                assert screen.state != "failed", "training failed in the app"  # redraws
                await asyncio.sleep(0.5)

    asyncio.run(drive())
    return tokens_per_s(Path(config.output.dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare_dataset(PrepareOptions(dataset=str(DEMO_CORPUS), model=EMBEDDED_MODEL,
                                       output_dir=data, block_size=128,
                                       validation_fraction=0.02, max_tokens=200_000))
        results: dict[str, list[float]] = {"headless": [], "app": []}
        for repeat in range(args.repeats):
            for name, host in (("headless", headless), ("app", in_app)):
                started = time.perf_counter()
                rate = host(config_for(data, Path(tmp) / name, args.steps))
                results[name].append(rate)
                print(f"run {repeat + 1} {name:>8}: {rate:7.0f} tok/s "
                      f"({time.perf_counter() - started:.0f} s wall)", flush=True)
    head, app = (statistics.median(results[k]) for k in ("headless", "app"))
    print(f"median tokens/s: headless {head:.0f}, app {app:.0f}; app / headless = "
          f"{app / head:.3f}x (target >= 0.97x)")


if __name__ == "__main__":
    main()
