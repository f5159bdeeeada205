"""`tscu ablate`: one config under several SCU arms and seeds, compared in one report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DEFAULT_ARMS = "off,fixed:0.1,fixed:1,pi:0.01,pi:auto,default"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ablation_config", metavar="CONFIG",
                        help="config file; its data.path (prepared) is the data of every run")
    parser.add_argument("--arms", default=DEFAULT_ARMS,
                        help="comma-separated arms: off, default (the config's [scu]), "
                             "fixed:LAMBDA, pi:TARGET, pi:auto; each optionally @init or "
                             f"@zero for the prior's centre (default: {DEFAULT_ARMS})")
    parser.add_argument("--seeds", default="3", metavar="K",
                        help="seeds per arm: train.seed, +1, ... (default: 3)")
    parser.add_argument("--steps", metavar="N", help="optimizer steps per run "
                        "(default: train.max_steps)")
    parser.add_argument("--output-dir", default="ablation_output", metavar="DIR",
                        help="where runs/ and the report go (default: ablation_output)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE",
                        help="override a config field in every arm (repeatable)")
    from tscu_tui.commands.train import add_report_to

    add_report_to(parser)


def _steps(text: str | None) -> int | None:
    from tscu_tui.engine.train.ablation import parse_count

    return None if text is None else parse_count("--steps", text)


def run(args: argparse.Namespace) -> int:
    from tscu_tui.engine.data import PreparedDataset
    from tscu_tui.engine.train.ablation import parse_arms, parse_seeds, plan, run_all, summarize

    arms = parse_arms(args.arms)
    seeds = parse_seeds(args.seeds)
    steps = _steps(args.steps)
    output_dir = Path(args.output_dir)
    from tscu_tui.commands.train import report_override

    overrides = args.overrides + report_override(args.report_to)
    runs = plan(args.ablation_config, arms, seeds, output_dir, overrides, steps)
    data = runs[0].config.data.path
    PreparedDataset.open(Path(data))  # one clear line before anything is written
    print(f"ablation: {len(arms)} arms x {seeds} seeds = {len(runs)} runs of "
          f"{runs[0].config.train.max_steps} steps on {data}, in {output_dir}", flush=True)
    started = time.monotonic()
    run_all(runs, _train_one, lambda line: print(line, flush=True))
    from tscu_tui.engine.train.ablation_report import render_markdown, write_report

    report = summarize(runs, {
        "config": str(args.ablation_config), "data": data,
        "model": runs[0].config.model.name, "steps": runs[0].config.train.max_steps,
        "seeds": sorted({r.seed for r in runs}), "overrides": list(args.overrides)})
    write_report(output_dir, report)
    print(render_markdown(report).split("![")[0].rstrip())
    print(f"\nablation written to {output_dir} (ablation.json, ablation.md, ablation.png) "
          f"in {time.monotonic() - started:.0f} s")
    return 0


def _train_one(config: object, resume: bool) -> None:
    from tscu_tui.commands.train import run_training

    run_training(config, resume=resume)  # type: ignore[arg-type]
