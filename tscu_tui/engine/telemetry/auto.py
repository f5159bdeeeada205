"""Choose a telemetry source from `[telemetry]` and say why.

`auto` measures the device MLX computes on. It tries, best first: apple
(IOReport, the whole SoC), nvidia (NVML, the GPU MLX uses), rapl (+ hwmon
temperature), estimated (+ hwmon temperature). When MLX computes on the CPU,
NVML is skipped: it would measure an idle GPU. powermetrics is never picked
automatically because it needs sudo. The reason string lists what was skipped
and why, so the UI can show it next to the source name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tscu_tui.engine.config.schema import TelemetryConfig
from tscu_tui.engine.telemetry.apple import AppleSource, PowermetricsSource
from tscu_tui.engine.telemetry.apple_sensors import AppleTemperatures
from tscu_tui.engine.telemetry.base import Clock, NullSource, Source, SourceUnavailable
from tscu_tui.engine.telemetry.device import ComputeDevice
from tscu_tui.engine.telemetry.estimated import EstimatedSource
from tscu_tui.engine.telemetry.hwmon import read_temperature_c
from tscu_tui.engine.telemetry.nvidia import NvidiaSource
from tscu_tui.engine.telemetry.rapl import DEFAULT_ROOT, RaplSource
from tscu_tui.engine.telemetry.replay import ReplaySource
from tscu_tui.engine.telemetry.simulated import SimulatedSource

AUTO_ORDER = ("apple", "nvidia", "rapl", "estimated")


def build_source(name: str, config: TelemetryConfig, *, clock: Clock = time.monotonic,
                 duty: Callable[[], float] | None = None,
                 rapl_root: Path | str = DEFAULT_ROOT,
                 compute: ComputeDevice | None = None) -> Source:
    """Construct one named source; raises SourceUnavailable with the reason."""
    if name == "apple":
        return AppleSource.open(clock=clock)
    if name == "powermetrics":  # explicit only: it needs a passwordless sudo rule
        return PowermetricsSource(clock=clock, temperatures=_apple_temperatures())
    if name == "nvidia":
        return NvidiaSource(compute=compute, clock=clock)
    if name == "rapl":
        ok, why = RaplSource.available(rapl_root)
        if not ok:
            raise SourceUnavailable(why)
        return RaplSource(root=rapl_root, clock=clock, temperature=read_temperature_c)
    if name == "estimated":
        return EstimatedSource(tdp_watts=config.tdp_watts, clock=clock,
                               temperature=read_temperature_c)
    if name == "simulated":
        return SimulatedSource(duty=duty, clock=clock)
    if name == "replay":
        if not config.replay_path:
            raise SourceUnavailable("telemetry.replay_path is empty")
        return ReplaySource(config.replay_path)
    if name == "none":
        return NullSource(clock=clock)
    raise SourceUnavailable(f"unknown telemetry source {name!r}")


def _apple_temperatures() -> AppleTemperatures | None:
    try:
        return AppleTemperatures.open()
    except Exception:  # power without temperature is still worth having
        return None


def auto_order(compute: ComputeDevice | None) -> tuple[tuple[str, ...], list[str]]:
    """Sources `auto` tries for this compute device, and what it leaves out, why."""
    if compute is not None and compute.kind == "cpu":
        return (tuple(n for n in AUTO_ORDER if n != "nvidia"),
                ["nvidia: MLX computes on the CPU, NVML would measure an idle GPU"])
    return AUTO_ORDER, []


def pick_source(config: TelemetryConfig, *, clock: Clock = time.monotonic,
                duty: Callable[[], float] | None = None,
                rapl_root: Path | str = DEFAULT_ROOT,
                compute: ComputeDevice | None = None) -> tuple[Source, str]:
    """The configured source, or for `auto` the best available, with the reason.

    An explicitly named source that cannot run raises SourceUnavailable: the
    user asked for it, so silently measuring something else would mislead.
    `compute` is the device MLX computes on (None: unknown, try everything).
    """
    if config.source != "auto":
        source = build_source(config.source, config, clock=clock, duty=duty,
                              rapl_root=rapl_root, compute=compute)
        return source, f"{source.name}: configured (telemetry.source)"
    order, skipped = auto_order(compute)
    for name in order:
        try:
            source = build_source(name, config, clock=clock, duty=duty, rapl_root=rapl_root,
                                  compute=compute)
        except SourceUnavailable as err:
            skipped.append(f"{name}: {err}")
            continue
        why = f"{source.name}: best available"
        if compute is not None:
            why += f" for MLX on {compute.describe()}"
        return source, why + (f" (skipped {'; '.join(skipped)})" if skipped else "")
    # estimated always constructs, so this is reached only if psutil itself broke
    return NullSource(clock=clock), "none: " + "; ".join(skipped)
