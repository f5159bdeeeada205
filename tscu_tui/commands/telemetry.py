"""`tscu telemetry`: which power/temperature sources this machine has, and a few readings
(and, on the CPU backend, which BLAS and kernels a training step uses)."""

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
    from tscu_tui.engine.train.device import backend_problem, mlx_compute_device

    config_path = Path(args.config)
    config = load_config(config_path if config_path.exists() or args.config != "tscu.toml"
                         else None, [f'telemetry.source="{args.source}"'] if args.source else [])
    compute = mlx_compute_device()
    print(f"MLX computes on: {compute.describe()}")
    from tscu_tui.engine.models import native
    from tscu_tui.engine.models.cpu_fastpath import on_cpu
    from tscu_tui.engine.models.runtime import BLAS

    if on_cpu():
        print(f"CPU step: {BLAS.detail}; {native.describe()}")
    problem = backend_problem()
    if problem is not None:
        print(f"warning: {problem}")
    print("sources on this machine:")
    for name in (*AUTO_ORDER, "simulated"):
        try:
            source = build_source(name, config.telemetry, compute=compute)
        except SourceUnavailable as exc:
            print(f"  {name:<10} unavailable: {exc}")
            continue
        detail = source.describe()
        print(f"  {name:<10} available ({source.kind})"
              + (f": {detail}" if detail != source.name else ""))
        source.close()
    _print_actuators(config, compute)
    try:
        source, reason = pick_source(config.telemetry, compute=compute)
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
            temp = "n/a" if sample.temp_c is None else f"{sample.temp_c:5.1f} °C"
            if sample.cpu_temp_c is not None or sample.gpu_temp_c is not None:
                temp += (f" (CPU {_celsius(sample.cpu_temp_c)}, "
                         f"GPU {_celsius(sample.gpu_temp_c)})")
            energy = "n/a" if sample.energy_j is None else f"{sample.energy_j:9.2f} J"
            kind = "nothing measured" if sample.source == "none" else sample.kind
            print(f"  {watts:>10}  {temp:>8}  energy {energy}  [{sample.source}, {kind}]")
            if i + 1 < args.count:
                time.sleep(args.interval)
    finally:
        sampler.stop()
    return 0


def _celsius(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} °C"


def _print_actuators(config, compute) -> None:  # type: ignore[no-untyped-def]
    """What could lower clocks or power for the device MLX computes on, and why not
    (probing reads only: nothing is changed)."""
    from tscu_tui.engine.telemetry.actuators.pick import probe
    from tscu_tui.engine.telemetry.auto import build_source
    from tscu_tui.engine.telemetry.base import SourceUnavailable

    gpu = None
    if compute.kind == "gpu" and compute.backend == "cuda":
        try:
            gpu = build_source("nvidia", config.telemetry, compute=compute)
        except SourceUnavailable as exc:
            print(f"actuators: NVML unavailable for MLX's GPU ({exc})")
    print(f"actuators for {compute.describe()} (probed, nothing changed):")
    for found in probe(gpu).found:
        state = "available" if found.available else "unavailable"
        print(f"  {found.name:<14} {state}: {found.detail}")
    if gpu is not None:
        gpu.close()
