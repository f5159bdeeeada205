"""`tscu watch RUN_DIR`: the train screen, following a run started elsewhere (read-only).

The screen shows the watched run's own settings (its model, data, budget and
limits, from the mlx_config.json the trainer writes as it starts), not those of
the tscu.toml where `watch` was typed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tscu_tui.commands.app import app_config
from tscu_tui.engine.config import Config


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="run directory of a `tscu train` (its events.jsonl is followed)")


def run_config(run_dir: Path) -> Config | None:
    """The watched run's config, or None (with a note) when it has none readable."""
    from tscu_tui.engine.config import config_from_dict
    from tscu_tui.engine.errors import ConfigError
    from tscu_tui.engine.fileio import read_json_object
    from tscu_tui.engine.runs.files import CONFIG_FILE

    data = read_json_object(run_dir / CONFIG_FILE)
    if data is None:
        return None
    try:
        return config_from_dict(data, str(run_dir / CONFIG_FILE))
    except ConfigError as exc:
        print(f"tscu: note: {exc.problems[0]}; showing the local config's settings",
              file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    from tscu_tui.engine.runs.follow import events_file

    run_dir = Path(args.run_dir)
    events_file(run_dir)  # a clear one-line error before the app opens
    config, path = app_config(args)
    watched = run_config(run_dir)
    if watched is not None:
        config = watched
    from tscu_tui.app import TscuApp

    TscuApp(config=config, config_path=path, watch_dir=run_dir).run()
    return 0
