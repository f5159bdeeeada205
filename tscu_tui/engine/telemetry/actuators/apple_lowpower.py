"""Apple Silicon's Low Power Mode through `pmset`, only where the user has allowed it.

`pmset -a lowpowermode 1` needs root. tscu never asks for a password: it runs
`sudo -n` (non-interactive), and only after `sudo -n -l` has confirmed that this
exact command is allowed without one. The one sudoers line that allows it
(`sudo visudo -f /etc/sudoers.d/tscu`, replace USER):

    USER ALL=(root) NOPASSWD: /usr/bin/pmset -a lowpowermode 0, /usr/bin/pmset -a lowpowermode 1

Without it, only duty cycling is available on a Mac, and `tscu telemetry` says so.
Two steps: 0 = Low Power Mode on, 1 = off. Measured elsewhere (issue 22): an M4 Pro
GPU render at about a third of the power for 69% of the performance; no change on
an M3 Pro; so its speed is measured, never assumed (`controls = "hint"`).

The command runner is a parameter: tests give a fake `sudo`/`pmset` (no Mac here).
"""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from collections.abc import Callable, Sequence

from tscu_tui.engine.telemetry.actuators.base import ActuatorUnavailable, FrequencyActuator

KIND = "pmset-lowpowermode"
PMSET = "/usr/bin/pmset"
SUDOERS_LINE = (f"USER ALL=(root) NOPASSWD: {PMSET} -a lowpowermode 0, "
                f"{PMSET} -a lowpowermode 1")
ONLY_DUTY = ("only duty cycling is available: Low Power Mode needs root, and tscu never "
             "asks for a password; to allow it, add this line with `sudo visudo -f "
             f"/etc/sudoers.d/tscu` (USER = your login): {SUDOERS_LINE}")

Runner = Callable[[Sequence[str]], "tuple[int, str]"]


def run_command(argv: Sequence[str]) -> tuple[int, str]:
    """Run without a terminal for input, so nothing can prompt."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as err:
        return 127, str(err)
    return done.returncode, done.stdout + done.stderr


def _set_command(on: bool) -> list[str]:
    return ["sudo", "-n", PMSET, "-a", "lowpowermode", "1" if on else "0"]


def read_lowpowermode(run: Runner) -> int:
    rc, out = run([PMSET, "-g"])
    match = re.search(r"^\s*lowpowermode\s+(\d)", out, re.MULTILINE)
    if rc != 0 or match is None:
        raise ActuatorUnavailable("`pmset -g` shows no lowpowermode setting (macOS 12+ on "
                                  "a Mac that offers Low Power Mode has it)")
    return int(match.group(1))


class AppleLowPowerMode(FrequencyActuator):
    name = "apple-lowpower"
    unit = ""
    controls = "hint"

    def __init__(self, run: Runner = run_command, system: str | None = None,
                 machine: str | None = None) -> None:
        super().__init__()
        system = system or sys.platform
        machine = machine or platform.machine()
        if system != "darwin" or machine != "arm64":
            raise ActuatorUnavailable(f"not Apple Silicon ({system} {machine})")
        self._run = run
        self._mode = read_lowpowermode(run)
        for on in (True, False):  # both directions, or the restore could be refused
            rc, _ = run(["sudo", "-n", "-l", *_set_command(on)[2:]])
            if rc != 0:
                raise ActuatorUnavailable(ONLY_DUTY)

    @classmethod
    def journal_kind(cls) -> str:
        return KIND

    @property
    def key(self) -> str:
        return f"{KIND}:"

    @property
    def value_min(self) -> float:
        return 0.0

    @property
    def value_max(self) -> float:
        return 1.0

    @property
    def steps(self) -> tuple[float, ...]:
        return (0.0, 1.0)

    def read_value(self) -> float:
        return 0.0 if read_lowpowermode(self._run) else 1.0

    def _original(self) -> object:
        return {"lowpowermode": self._mode}

    def _write(self, value: float) -> None:
        set_lowpowermode(self._run, value < 0.5)

    def _put_back(self, original: object) -> None:
        assert isinstance(original, dict)
        set_lowpowermode(self._run, bool(original["lowpowermode"]))

    def _restore_hint(self, original: object) -> str:
        mode = original.get("lowpowermode", 0) if isinstance(original, dict) else 0
        return f"run `sudo pmset -a lowpowermode {mode}`"

    def describe(self) -> str:
        return "Apple Low Power Mode (pmset lowpowermode, via sudo -n)"


def set_lowpowermode(run: Runner, on: bool) -> None:
    """Also `recover`'s restorer for a dead process's record."""
    rc, out = run(_set_command(on))
    if rc != 0:
        raise RuntimeError(f"sudo -n pmset failed ({out.strip() or f'exit {rc}'})")
