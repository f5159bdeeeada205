"""After a SIGKILL: put back what a dead tscu process changed and could not restore.

The next `tscu` start calls `recover_pending()` (cheap when the journal is absent,
which is always, unless a process died holding a knob). Each orphaned entry is
restored by its kind's restorer, then dropped; one that cannot be restored (this
user lacks the privilege, the GPU is gone) stays in the journal and the message
says how to restore it by hand, so nothing is forgotten silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tscu_tui.engine.telemetry.actuators import journal, nvidia_clocks, sysfs
from tscu_tui.engine.telemetry.actuators.apple_lowpower import Runner, run_command

NvmlLoader = Callable[[], Any]


def _load_nvml() -> Any:
    import pynvml  # optional: only a record NVML wrote can need it

    pynvml.nvmlInit()
    return pynvml


def _restore(kind: str, original: Any, nvml: NvmlLoader, run: Runner) -> None:
    if kind == sysfs.KIND:
        sysfs.write_back(original)
    elif kind == nvidia_clocks.KIND:
        nvidia_clocks.reset_clocks(nvml(), original)
    elif kind == nvidia_clocks.POWER_KIND:
        nvidia_clocks.set_power_limit(nvml(), original)
    elif kind == "pmset-lowpowermode":
        from tscu_tui.engine.telemetry.actuators.apple_lowpower import set_lowpowermode

        set_lowpowermode(run, bool(original["lowpowermode"]))
    else:
        raise RuntimeError(f"unknown kind {kind!r} (written by a newer tscu?)")


def _hint(kind: str, original: Any) -> str:
    if kind == sysfs.KIND:
        return sysfs.hand_restore(original)
    if kind == "nvml-clocks":
        return f"run `sudo nvidia-smi -i {original.get('uuid')} -rgc`"
    if kind == "nvml-power":
        return (f"run `sudo nvidia-smi -i {original.get('uuid')} -pl "
                f"{original.get('milliwatts', 0) / 1000:g}`")
    if kind == "pmset-lowpowermode":
        return f"run `sudo pmset -a lowpowermode {original.get('lowpowermode')}`"
    return "restore it by hand"


def recover_pending(nvml: NvmlLoader = _load_nvml, run: Runner = run_command) -> list[str]:
    """Restore every orphaned setting; one line per entry, saying what happened."""
    if not journal.journal_path().exists():
        return []
    messages = []
    for key, entry in journal.orphans().items():
        kind, original = entry.get("kind", "?"), entry.get("original")
        what = f"{entry.get('description', key)} (changed by tscu process {entry.get('pid')}, " \
               "which ended without restoring it)"
        try:
            _restore(kind, original, nvml, run)
        except Exception as err:
            messages.append(f"could not restore {what}: {err}; {_hint(kind, original)}, then "
                            f"delete {journal.journal_path()}")
            continue
        journal.drop(key)
        shown = sysfs.shown(original) if kind == sysfs.KIND else str(original)
        messages.append(f"restored {what} to {shown}")
    return messages
