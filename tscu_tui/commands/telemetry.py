"""`tscu telemetry`: which power/temperature sources this machine has, and a few readings."""

from __future__ import annotations

import argparse
import time


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default=None,
                        help="source to read (default: telemetry.source from the config, "
                             "usually auto)")
    parser.add_argument("--count", type=int, default=5, help="readings to print (default 5)")
    parser.add_argument("--interval", type=float, default=0.5,
                        help="seconds between readings (default 0.5)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tscu_tui.engine.config import load_config
    from tscu_tui.engine.errors import TscuError
    from tscu_tui.engine.telemetry import Sampler
    from tscu_tui.engine.telemetry.auto import AUTO_ORDER, build_source, pick_source
    from tscu_tui.engine.telemetry.base import SourceUnavailable

    config_path = Path(args.config)
    config = load_config(config_path if config_path.exists() or args.config != "tscu.toml"
                         else None, [f'telemetry.source="{args.source}"'] if args.source else [])
    print("sources on this machine:")
    for name in (*AUTO_ORDER, "simulated"):
        try:
            source = build_source(name, config.telemetry)
        except SourceUnavailable as exc:
            print(f"  {name:<10} unavailable: {exc}")
            continue
        print(f"  {name:<10} available ({source.kind})")
        source.close()
    try:
        source, reason = pick_source(config.telemetry)
    except SourceUnavailable as exc:
        raise TscuError(f"telemetry.source = {config.telemetry.source!r}: {exc}") from None
    print(f"using {reason}")
    sampler = Sampler(source, period_s=args.interval,
                      on_warning=lambda message: print(f"warning: {message}"))
    try:
        for i in range(max(args.count, 0)):
            sample = sampler.poll_once()
            if sample is None:
                break
            watts = "n/a" if sample.power_w is None else f"{sample.power_w:7.2f} W"
            temp = "n/a" if sample.temp_c is None else f"{sample.temp_c:5.1f} C"
            energy = "n/a" if sample.energy_j is None else f"{sample.energy_j:9.2f} J"
            print(f"  {watts:>10}  {temp:>8}  energy {energy}  [{sample.source}, "
                  f"{sample.kind}]")
            if i + 1 < args.count:
                time.sleep(args.interval)
    finally:
        sampler.stop()
    return 0
