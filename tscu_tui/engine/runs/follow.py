"""Follow a run another process is writing: replay its events.jsonl, then tail it.

`tscu watch RUN_DIR` and the results screen use this; it reads only complete
lines, so a line the trainer is still writing is picked up on the next poll.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.events import Event, EventSink, RunFailed, RunFinished, from_record
from tscu_tui.engine.runs.files import EVENTS_FILE


def events_file(run_dir: Path) -> Path:
    path = run_dir / EVENTS_FILE
    if not run_dir.is_dir():
        raise TscuError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise TscuError(f"{run_dir}: not a tscu run (no {EVENTS_FILE})")
    return path


def parse_events(lines: list[str], origin: str, first_line: int = 1) -> Iterator[Event]:
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            yield from_record(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise TscuError(f"{origin}:{number}: not a tscu event ({exc})") from None


def read_events(run_dir: Path) -> list[Event]:
    """Every event recorded so far (complete lines only)."""
    path = events_file(run_dir)
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]
    return list(parse_events(complete.splitlines(), str(path)))


def follow_events(run_dir: Path, sink: EventSink, stop: threading.Event,
                  poll_s: float = 0.25) -> None:
    """Send every event to `sink`, old and new, until the run ends or `stop` is set.

    A resumed run appends to the same file, so a follower keeps going after a
    RunFinished only if more lines arrive; it returns on the last one seen.
    """
    path = events_file(run_dir)
    position, line_number, ended = 0, 1, False
    while not stop.is_set():
        with path.open("rb") as handle:
            handle.seek(position)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        position += len(complete)
        lines = complete.decode("utf-8").splitlines()
        for event in parse_events(lines, str(path), line_number):
            sink(event)
            ended = isinstance(event, RunFinished | RunFailed)
        line_number += len(lines)
        if ended and not lines:
            return
        if ended:
            continue  # one more look for lines written after the end (a resume)
        stop.wait(poll_s)
