"""Replay a recorded telemetry JSONL (one Sample record per line).

Reads return the records in order, keeping their own source and kind, so a
replayed run is labelled as what was originally recorded. At the end the
source either loops or raises SourceUnavailable, which the Sampler turns into
"unavailable" rather than inventing data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tscu_tui.engine.telemetry.base import Source, SourceUnavailable
from tscu_tui.engine.telemetry.sample import Sample, SampleKind


def load_samples(path: Path | str) -> list[Sample]:
    samples: list[Sample] = []
    path = Path(path)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            samples.append(Sample.from_dict(json.loads(line)))
        except (ValueError, AttributeError) as err:
            raise ValueError(f"{path}:{number}: not a telemetry sample: {err}") from err
    return samples


def write_samples(path: Path | str, samples: Iterable[Sample]) -> None:
    with Path(path).open("w") as handle:
        for sample in samples:
            handle.write(json.dumps(sample.to_dict()) + "\n")


class ReplaySource(Source):
    name = "replay"

    def __init__(self, path: Path | str, loop: bool = False) -> None:
        self.path = Path(path)
        self.samples = load_samples(self.path)
        if not self.samples:
            raise SourceUnavailable(f"{self.path} holds no telemetry samples")
        self.kind: SampleKind = self.samples[0].kind
        self.loop = loop
        self._index = 0

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, "replays a recorded telemetry JSONL (needs telemetry.replay_path)"

    def read(self) -> Sample:
        if self._index >= len(self.samples):
            if not self.loop:
                raise SourceUnavailable(f"replay of {self.path} reached its end")
            self._index = 0
        sample = self.samples[self._index]
        self._index += 1
        return sample
