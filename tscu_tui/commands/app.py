"""`tscu` with no command: the terminal app."""

from __future__ import annotations

import argparse
from pathlib import Path

from tscu_tui.engine.config import Config, load_config


def add_parser(parser: argparse.ArgumentParser) -> None:  # the app has no subparser
    pass


def app_config(args: argparse.Namespace) -> tuple[Config, Path]:
    path = Path(args.config)
    # A missing default config is fine (built-in defaults); a missing named one is not.
    if path.exists() or args.config != "tscu.toml":
        return load_config(path), path
    return load_config(None), path


def run(args: argparse.Namespace) -> int:
    config, path = app_config(args)
    from tscu_tui.app import TscuApp

    TscuApp(config=config, config_path=path).run()
    return 0
