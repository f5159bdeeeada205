"""`tscu` with no command: the terminal app."""

from __future__ import annotations

import argparse
from pathlib import Path

from tscu_tui.engine.config import Config, load_config


def add_parser(parser: argparse.ArgumentParser) -> None:  # the app has no subparser
    pass


def run(args: argparse.Namespace) -> int:
    path = Path(args.config)
    # A missing default config is fine (built-in defaults); a missing named one is not.
    config: Config = load_config(path) if path.exists() or args.config != "tscu.toml" \
        else load_config(None)
    from tscu_tui.app import TscuApp

    TscuApp(config=config, config_path=path).run()
    return 0
