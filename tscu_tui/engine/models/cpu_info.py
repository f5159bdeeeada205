"""What this CPU is and which instruction-set extensions its kernel lets programs use.

The native kernels are compiled for one CPU (`-march=native` by default); run on
a CPU without one of the extensions they were compiled for, the first vector
instruction kills the process with SIGILL. scripts/build_native.py records the
extensions in the module's build stamp, in /proc/cpuinfo's names, and
`native.status()` compares them with `cpu_flags()` here before importing it.
"""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str] | None:
    """The first processor's feature flags ("flags" on x86, "Features" on Arm); None
    where the file is unreadable (not Linux)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def cpu_name(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name, for messages ("this CPU" when unknown)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return "this CPU"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return "this CPU"
