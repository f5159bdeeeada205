"""The on-disk record of every machine setting a tscu process has changed.

Written before the change (atomically, under a file lock, since several tscu
processes may run), removed after the restore. What remains belongs to a process
that died without restoring (SIGKILL, power loss): the next `tscu` start finds
it (`recover.recover_pending`) and puts the original back.

One entry per knob (`key`): its kind (which restorer to use), the original
setting, what it is in words, and the owner (pid and the process's start time,
so a recycled pid is not mistaken for the owner). A knob that a live tscu
process owns is refused to the others: two governors on one clock would fight,
and the second would record the first one's setting as the "original".

Where: `$TSCU_STATE_DIR`, else `$XDG_STATE_HOME/tscu`, else `~/.local/state/tscu`
(the tests point it at a temp folder). The settings are machine-wide but the
journal is the user's: a run as root restores as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tscu_tui.engine.fileio import atomic_write_json

JOURNAL_FILE = "actuators.json"
LOCK_FILE = "actuators.lock"


class JournalBusy(RuntimeError):
    """Another live tscu process owns this knob."""


def state_dir() -> Path:
    if os.environ.get("TSCU_STATE_DIR"):
        return Path(os.environ["TSCU_STATE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "tscu"


def journal_path() -> Path:
    return state_dir() / JOURNAL_FILE


def process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), None if it is gone."""
    if pid <= 0:
        return None
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # gone, or not ours to see: treat as gone only if kill(0) agrees
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return -1.0  # alive, start time unknown
        return -1.0


def owner_alive(entry: dict[str, Any]) -> bool:
    started = process_started(int(entry.get("pid", -1)))
    if started is None:
        return False
    recorded = entry.get("pid_started")
    # A recycled pid started after the owner recorded the entry.
    return started < 0 or recorded is None or abs(started - float(recorded)) < 1.0


@contextlib.contextmanager
def _locked() -> Iterator[dict[str, dict[str, Any]]]:
    """The journal's entries, read and written back under an exclusive lock."""
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as lock:
        try:
            import fcntl

            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        except ImportError:  # not POSIX: tscu's platforms all are
            pass
        entries = read_entries()
        before = json.dumps(entries, sort_keys=True)
        yield entries
        if json.dumps(entries, sort_keys=True) != before:
            if entries:
                atomic_write_json(folder / JOURNAL_FILE, {"entries": entries})
            else:
                (folder / JOURNAL_FILE).unlink(missing_ok=True)


def read_entries() -> dict[str, dict[str, Any]]:
    """Every recorded change (an unreadable journal reads as a problem, not as empty)."""
    path = journal_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        entries = json.loads(text)["entries"]
    except (ValueError, KeyError, TypeError) as err:
        raise RuntimeError(f"{path}: not a tscu actuator journal ({err}); restore the "
                           "settings it names by hand, then delete it") from None
    return dict(entries)


def record(key: str, kind: str, original: Any, description: str) -> Any:
    """Write down `original` before `key` is changed, and return the original to restore:
    an entry a dead process left keeps its own (the knob still holds that process's
    change); one a live process owns raises JournalBusy."""
    pid = os.getpid()
    with _locked() as entries:
        entry = entries.get(key)
        if entry is not None and int(entry.get("pid", -1)) != pid and owner_alive(entry):
            raise JournalBusy(f"tscu process {entry['pid']} is using it")
        kept = entry is not None and int(entry.get("pid", -1)) != pid
        entries[key] = {"kind": kind, "original": entry["original"] if kept else original,
                        "description": description, "pid": pid,
                        "pid_started": process_started(pid), "written_at": time.time()}
        return entries[key]["original"]


def forget(key: str) -> None:
    """The knob is back to its original: drop its entry (ours only)."""
    with _locked() as entries:
        entry = entries.get(key)
        if entry is not None and int(entry.get("pid", -1)) == os.getpid():
            del entries[key]


def orphans() -> dict[str, dict[str, Any]]:
    """Entries whose owner has died: settings nobody will restore but us."""
    return {k: e for k, e in read_entries().items() if not owner_alive(e)}


def drop(key: str) -> None:
    """Remove an orphan's entry once it has been restored."""
    with _locked() as entries:
        entry = entries.get(key)
        if entry is not None and not owner_alive(entry):
            del entries[key]
