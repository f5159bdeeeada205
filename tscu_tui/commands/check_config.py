"""`tscu check-config FILE`: validate a config and print it resolved."""

from __future__ import annotations

import argparse

from tscu_tui.engine.config import load_config, render_toml


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="TOML config to validate")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a field (repeatable)")


def run(args: argparse.Namespace) -> int:
    from tscu_tui.engine.train.run_plan import plan_of

    config = load_config(args.file, args.overrides)
    plan = plan_of(config)
    # The run's length in steps (and what scu.mode = "auto" becomes) needs the prepared
    # data: said when it is there, and why not when it is not.
    length = (f"# Run on {config.data.path}: {plan.describe()}.\n" if not isinstance(plan, str)
              else f"# Steps not resolved: {plan.rstrip('.')}.\n")
    header = f"# {args.file}: valid. Resolved config (defaults filled in):\n" + length
    print(render_toml(config, header=header), end="")
    return 0
