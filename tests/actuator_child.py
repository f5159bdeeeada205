"""A real child process that changes a clock knob on a fake sysfs tree, then ends the
way the test asks: waits for a signal, raises, or is killed. Run as
`python tests/actuator_child.py CPU_ROOT MODE`; TSCU_STATE_DIR names the journal.

It arms the guard the way `tscu` does (`cli._guard_machine_settings`, from the main
thread) and prints "changed" once the knob holds the new value."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from tscu_tui.cli import _guard_machine_settings
from tscu_tui.engine.telemetry.actuators.cpufreq import CpufreqMaxFreq


def main() -> None:
    root, mode = Path(sys.argv[1]), sys.argv[2]
    # Python leaves SIGINT ignored when it starts ignored, as it does under a test run
    # started in the background of a shell: Ctrl-C from a terminal is what this stands for
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _guard_machine_settings()
    actuator = CpufreqMaxFreq(root)
    change = actuator.set_level(0.25)
    assert change.applied, change.message
    print("changed", flush=True)
    if mode == "raise":
        raise RuntimeError("a bug in the training loop")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a training loop, until a signal ends it
        time.sleep(0.05)
    sys.exit("no signal came")


if __name__ == "__main__":
    main()
