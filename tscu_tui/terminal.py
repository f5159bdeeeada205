"""Noticing that the app's terminal is gone, and leaving no process behind.

A terminal can vanish under a running app: its tmux session killed, its ssh
connection dropped, its window closed. The kernel then hangs it up: reads
return nothing, writes fail (EIO), and SIGHUP goes to the session's leader
alone. Started by `make` (`make demo`) the app is not that leader and hears
nothing, and Textual does not notice either: its input thread spins on a
descriptor that is always readable with nothing to read (measured: 55-85% of a
core, for as long as nobody killed it), and its output thread dies at the
first EIO, after which the app blocks.

So `TerminalWatch` asks the terminal itself, on a thread of its own, twice a
second, whether it still answers (`tcgetattr` fails once it is hung up), and
catches SIGHUP for when the app is the leader. When the terminal is gone it
points the standard descriptors at harmless ends (output to /dev/null; input to
a pipe nobody writes, so the input thread waits instead of spinning) and calls
`on_lost` once, on its thread.
"""

from __future__ import annotations

import os
import signal
import termios
import threading
from collections.abc import Callable

CHECK_EVERY_S = 0.5


def terminal_alive(fd: int) -> bool:
    """Whether `fd` is a terminal that still answers (a hung-up one gives EIO)."""
    try:
        termios.tcgetattr(fd)
    except (termios.error, OSError):
        return False
    return True


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr away from a terminal that is gone: writes succeed
    into /dev/null, reads wait forever on a pipe that nobody writes (a pipe at EOF or
    /dev/null would read as always ready, and the input thread would spin again)."""
    sink = os.open(os.devnull, os.O_WRONLY)
    quiet, _keep_open = os.pipe()  # the write end stays open: never EOF
    for fd, target in ((0, quiet), (1, sink), (2, sink)):
        os.dup2(target, fd)
    os.close(sink)
    os.close(quiet)


class TerminalWatch:
    """Calls `on_lost(why)` once when the terminal on `fd` hangs up or SIGHUP arrives."""

    def __init__(self, on_lost: Callable[[str], None], fd: int = 0,
                 period_s: float = CHECK_EVERY_S) -> None:
        self.on_lost, self.fd, self.period_s = on_lost, fd, period_s
        self._hangup = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TerminalWatch:
        """Watch (from the main thread: it installs the SIGHUP handler). A descriptor that
        is not a terminal to begin with has nothing to lose."""
        if not terminal_alive(self.fd):
            return self
        signal.signal(signal.SIGHUP, lambda *_: self._hangup.set())
        self._thread = threading.Thread(target=self._run, name="tscu-terminal", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._hangup.wait(self.period_s):
                why = "the terminal hung up (SIGHUP)"
            elif not terminal_alive(self.fd):
                why = "the terminal is gone"
            else:
                continue
            if self._stop.is_set():
                return
            detach_from_terminal()
            self.on_lost(why)
            return
