"""`tscu demo`: prepare the demo corpus and fine-tune the embedded model, offline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tscu_tui.engine.config import Config, load_config
from tscu_tui.engine.config.assets import DEMO_CORPUS, PRESETS_DIR
from tscu_tui.engine.errors import TscuError

PRESET = PRESETS_DIR / "demo.toml"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="demo_output",
                        help="folder for the demo's data and run (default: demo_output)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a preset field (repeatable)")


def demo_config(output_dir: str, overrides: list[str]) -> Config:
    base = [f"data.dataset={json.dumps(str(DEMO_CORPUS))}",
            f"data.path={json.dumps(str(Path(output_dir) / 'data'))}",
            f"output.dir={json.dumps(str(Path(output_dir) / 'run'))}"]
    return load_config(PRESET, base + list(overrides))


def ensure_demo_data(config: Config) -> None:
    """Prepare the demo corpus unless an identical preparation is already there."""
    from tscu_tui.commands.prepare import prepare_with_progress
    from tscu_tui.engine.data import PreparedDataset, PrepareOptions

    options = PrepareOptions(dataset=config.data.dataset, model=config.model.name,
                             output_dir=Path(config.data.path),
                             block_size=config.data.block_size,
                             validation_fraction=config.data.validation_fraction,
                             overwrite=True)
    try:
        meta = PreparedDataset.open(options.output_dir).meta
    except TscuError:
        meta = None
    if meta is None or (meta.block_size, meta.model, meta.validation_source,
                        meta.source.get("dataset")) != (
            options.block_size, options.model, f"fraction {options.validation_fraction:g}",
            options.dataset):
        prepare_with_progress(options)


def run(args: argparse.Namespace) -> int:
    from tscu_tui.commands.train import run_training

    config = demo_config(args.output_dir, args.overrides)
    ensure_demo_data(config)
    outcome, display = run_training(config)
    first, last = display.first_heldout, display.heldout
    if first is not None and last is not None:
        change = (last - first) / first * 100
        print(f"held-out bits per token: {first:.3f} -> {last:.3f} ({change:+.1f}%) after "
              f"{outcome.step} steps; run in {config.output.dir}")
    return 0
