"""What every Linux sysfs knob shares: a set of files, their original text, the check
that they can be written, and the one-line hand restore.

The files are machine-wide and usually root-only (mode 0644); `os.access` answers
"may this process write them" without writing anything (EROFS too, as in a
container whose /sys is read-only). Writing is the kernel's business: it refuses
out-of-range values with EINVAL, which reaches the user as the actuator's message.
"""

from __future__ import annotations

import os
from pathlib import Path

from tscu_tui.engine.telemetry.actuators.base import ActuatorUnavailable, FrequencyActuator

KIND = "sysfs"  # the journal's kind for every knob restored by writing files back


def read_text(path: Path) -> str:
    return path.read_text().strip()


def read_int(path: Path, default: int | None = None) -> int:
    try:
        return int(read_text(path))
    except (OSError, ValueError):
        if default is None:
            raise
        return default


def may_write(path: Path) -> bool:
    """Whether this process may write `path` (asked of the kernel, nothing written)."""
    return os.access(path, os.W_OK)


def require_writable(files: list[Path], what: str) -> None:
    """Raise ActuatorUnavailable naming the first file this process may not write."""
    for path in files:
        if not may_write(path):
            mode = _mode(path)
            raise ActuatorUnavailable(
                f"{what}: {path} is not writable by this process ({mode}); run tscu as "
                "root, or give a group write access to it (a udev rule or a boot-time "
                "`chgrp`/`chmod g+w`)")


def _mode(path: Path) -> str:
    try:
        st = path.stat()
    except OSError as err:
        return str(err)
    ro = ""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            ro = ", on a read-only mount"
    except OSError:
        pass
    return f"mode {st.st_mode & 0o777:o}, owner uid {st.st_uid}{ro}"


def snapshot(files: list[Path]) -> dict[str, str]:
    """The files' text now: the original the journal records."""
    return {str(path): read_text(path) for path in files}


def write_back(original: object) -> None:
    """Restore a snapshot (also used by `recover` for a dead process's record)."""
    if not isinstance(original, dict):
        raise RuntimeError(f"not a sysfs snapshot: {original!r}")
    failed = []
    for path, text in original.items():
        try:
            Path(path).write_text(str(text))
        except OSError as err:
            failed.append(f"{path}: {err.strerror or err}")
    if failed:
        raise OSError("; ".join(failed))


def shown(original: object) -> str:
    """A snapshot as a message shows it: its values, once each (`3000000/2000000`)."""
    if not isinstance(original, dict):
        return str(original)
    return "/".join(dict.fromkeys(str(v) for v in original.values()))


def hand_restore(original: object) -> str:
    if not isinstance(original, dict):
        return "restore it by hand"
    return "; ".join(f"echo {text} | sudo tee {path}" for path, text in original.items())


class SysfsActuator(FrequencyActuator):
    """A knob made of sysfs files: snapshot, write back, hand restore."""

    files: list[Path]

    @classmethod
    def journal_kind(cls) -> str:
        return KIND

    def _original(self) -> object:
        return snapshot(self.files)

    def _put_back(self, original: object) -> None:
        write_back(original)

    def _restore_hint(self, original: object) -> str:
        return hand_restore(original)

    def _shown(self, original: object) -> str:
        return shown(original)
