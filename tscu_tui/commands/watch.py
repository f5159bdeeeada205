"""`tscu watch RUN_DIR`: the train screen, following a run started elsewhere (read-only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tscu_tui.commands.app import app_config


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="run directory of a `tscu train` (its events.jsonl is followed)")


def run(args: argparse.Namespace) -> int:
    from tscu_tui.engine.runs.follow import events_file

    run_dir = Path(args.run_dir)
    events_file(run_dir)  # a clear one-line error before the app opens
    config, path = app_config(args)
    from tscu_tui.app import TscuApp

    TscuApp(config=config, config_path=path, watch_dir=run_dir).run()
    return 0
