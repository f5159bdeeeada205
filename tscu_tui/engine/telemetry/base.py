"""The Source interface every telemetry backend implements.

Hardware lives behind this interface (as in ml-energy/zeus) so the sampler,
governor and tests never care where a watt came from. `available()` is a
class-level probe: it answers "can this machine use me, and if not why" without
constructing anything expensive, so `auto` can explain its choice.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from tscu_tui.engine.telemetry.sample import Sample, SampleKind

Clock = Callable[[], float]
TemperatureReader = Callable[[], "float | None"]


class SourceUnavailable(RuntimeError):
    """A source cannot run here; the message says why, in words a user can act on."""


class Source(ABC):
    """A telemetry backend: `read()` returns one Sample, `close()` releases handles."""

    name: ClassVar[str] = "source"
    kind: SampleKind = "measured"

    @classmethod
    @abstractmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this source can run on this machine, and why (not)."""

    @abstractmethod
    def read(self) -> Sample:
        """One reading now. May raise; the Sampler turns failures into 'unavailable'."""

    def describe(self) -> str:
        """What exactly is measured (device, sensors), for `tscu telemetry` and the logs."""
        return self.name

    def close(self) -> None:  # most sources hold nothing worth releasing
        return None


class NullSource(Source):
    """The do-nothing source for `source = "none"`: every value is n/a.

    Its kind is "estimated" only because a Sample must carry one of the three
    kinds; with power and temperature both None nothing is claimed.
    """

    name = "none"
    kind: SampleKind = "estimated"

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, "no telemetry requested"

    def read(self) -> Sample:
        return Sample(t_s=self._clock(), power_w=None, temp_c=None, energy_j=None,
                      source=self.name, kind=self.kind)
