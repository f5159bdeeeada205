"""`tscu check-config FILE`: validate a config and print it resolved."""

from __future__ import annotations

import argparse

from tscu_tui.engine.config import load_config, render_toml


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="TOML config to validate")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a field (repeatable)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.file, args.overrides)
    header = f"# {args.file}: valid. Resolved config (defaults filled in):\n"
    print(render_toml(config, header=header), end="")
    return 0
