"""Power and temperature telemetry, the T-SCU governor and efficiency accounting.

Sources sit behind one interface (base.Source); `auto.pick_source` chooses one.
The Sampler polls it on a thread and is the one owner of its reads; `health`
judges whether its readings are still current (a source that fails or falls
silent); the Governor and EfficiencyTracker are pure objects the trainer feeds;
`frequency_policy` maps the governor's demand onto a clock knob (`actuators`)
before the duty cycle, predicting power with `plant` (P_static + k f^3, also the
simulated plant's law). Nothing
here imports a UI library or MLX (the device MLX computes on arrives as a
`device.ComputeDevice`), optional hardware libraries (pynvml,
zeus_apple_silicon) are imported only when used, and IOKit (`apple_iokit`,
ctypes) is loaded only on macOS. It may import `config` and the shared
vocabulary only; `train.thermal` is where the training loop meets it.
"""

from tscu_tui.engine.telemetry.base import NullSource, Source, SourceUnavailable
from tscu_tui.engine.telemetry.efficiency import EfficiencyReading, EfficiencyTracker
from tscu_tui.engine.telemetry.governor import (
    Governor,
    GovernorGains,
    GovernorLimits,
    GovernorReading,
    duty_idle_seconds,
)
from tscu_tui.engine.telemetry.sample import Sample, SampleKind
from tscu_tui.engine.telemetry.sampler import Sampler

__all__ = ["EfficiencyReading", "EfficiencyTracker", "Governor", "GovernorGains",
           "GovernorLimits", "GovernorReading", "NullSource", "Sample", "SampleKind",
           "Sampler", "Source", "SourceUnavailable", "duty_idle_seconds"]
