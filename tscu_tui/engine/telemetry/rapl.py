"""Linux RAPL energy counters under /sys/class/powercap.

Only top-level package domains (`intel-rapl:N`) are summed: nested domains
(`intel-rapl:N:M`: core, uncore, dram) are already inside their package, and
`psys` overlaps the packages, so adding either double-counts. The counters are
microjoules that wrap at `max_energy_range_uj`. Since CVE-2020-8694 they are
usually root-only, and the error says so.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from tscu_tui.engine.telemetry.base import Clock, Source, SourceUnavailable, TemperatureReader
from tscu_tui.engine.telemetry.sample import Sample, SampleKind

DEFAULT_ROOT = Path("/sys/class/powercap")
TOP_LEVEL = re.compile(r"^intel-rapl:\d+$")  # AMD's kernel driver uses the same names


@dataclass(frozen=True)
class RaplDomain:
    path: Path
    name: str
    max_range_uj: int


def find_domains(root: Path = DEFAULT_ROOT) -> list[RaplDomain]:
    """Top-level package domains, or every top-level domain when none is a package."""
    domains: list[RaplDomain] = []
    for path in sorted(root.glob("intel-rapl:*")):
        if not TOP_LEVEL.match(path.name) or not (path / "energy_uj").exists():
            continue
        name = _read_text(path / "name", default=path.name)
        max_range = int(_read_text(path / "max_energy_range_uj", default="0") or 0)
        domains.append(RaplDomain(path=path, name=name, max_range_uj=max_range))
    packages = [d for d in domains if d.name.startswith("package")]
    return packages or domains


def _read_text(path: Path, default: str) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def _permission_message(root: Path) -> str:
    return (f"RAPL counters under {root} are readable by root only; run "
            f"`sudo chmod o+r {root}/intel-rapl:*/energy_uj` (resets at boot) or use "
            "telemetry.source = 'estimated'")


class RaplSource(Source):
    """Package power from RAPL energy counters; temperature from an optional reader."""

    name = "rapl"
    kind: SampleKind = "measured"

    def __init__(self, root: Path | str = DEFAULT_ROOT, clock: Clock = time.monotonic,
                 temperature: TemperatureReader | None = None) -> None:
        self.root = Path(root)
        self._clock = clock
        self._temperature = temperature
        self.domains = find_domains(self.root)
        if not self.domains:
            raise SourceUnavailable(f"no RAPL package domain under {self.root}")
        self._last_raw = self._read_raw()
        self._energy_j = 0.0
        self._last_t = self._clock()

    @classmethod
    def available(cls, root: Path | str = DEFAULT_ROOT) -> tuple[bool, str]:
        root = Path(root)
        domains = find_domains(root)
        if not domains:
            return False, f"no RAPL package domain under {root}"
        try:
            for domain in domains:
                (domain.path / "energy_uj").read_text()
        except PermissionError:
            return False, _permission_message(root)
        except OSError as err:
            return False, f"RAPL counter unreadable: {err}"
        names = ", ".join(d.name for d in domains)
        return True, f"RAPL energy counters readable ({names})"

    def _read_raw(self) -> list[int]:
        try:
            return [int((d.path / "energy_uj").read_text()) for d in self.domains]
        except PermissionError as err:
            raise SourceUnavailable(_permission_message(self.root)) from err

    def read(self) -> Sample:
        now = self._clock()
        raw = self._read_raw()
        delta_uj = 0
        for domain, before, after in zip(self.domains, self._last_raw, raw, strict=True):
            step = after - before
            if step < 0:  # the counter wrapped past max_energy_range_uj
                step += domain.max_range_uj
            delta_uj += max(step, 0)
        dt = now - self._last_t
        delta_j = delta_uj / 1e6
        self._energy_j += delta_j
        self._last_raw, self._last_t = raw, now
        power = delta_j / dt if dt > 0 else None
        temp = self._temperature() if self._temperature is not None else None
        return Sample(t_s=now, power_w=power, temp_c=temp, energy_j=self._energy_j,
                      source=self.name, kind=self.kind)
