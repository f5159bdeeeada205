"""The process guard: every changed machine setting is put back however tscu ends.

Actuators register a restore callable when they first change a knob and
unregister once it is restored. `restore_all()` runs them: from the run's own
`finally` (end, stop, emergency stop, failure), from an atexit hook (an uncaught
exception, `sys.exit`, Ctrl+C's KeyboardInterrupt), and from handlers for SIGTERM,
SIGHUP and SIGINT, installed on first use from the main thread. A handler
restores first and then does what was there before it: Python's SIGINT handler
raises KeyboardInterrupt, a default SIGTERM still terminates the process (with
the default action re-raised, so the exit status says "killed by SIGTERM").
SIGKILL cannot be caught: the journal on disk covers it (`recover`).
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

#: the signals that end a process politely; SIGKILL cannot be handled
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                if hasattr(signal, name))

_lock = threading.RLock()  # re-entrant: a signal may arrive while the main thread holds it
_restores: dict[str, Callable[[], Any]] = {}
_previous: dict[int, Any] = {}
_atexit_installed = False


def register(key: str, restore: Callable[[], Any]) -> None:
    """Arm the guard for one knob (before it is changed)."""
    install()
    with _lock:
        _restores[key] = restore


def unregister(key: str) -> None:
    with _lock:
        _restores.pop(key, None)


def active() -> list[str]:
    """The knobs this process has changed and not yet restored."""
    with _lock:
        return list(_restores)


def restore_all() -> list[Any]:
    """Restore every knob this process changed; returns what each restore said."""
    with _lock:
        restores = list(_restores.values())
    results = []
    for restore in restores:
        try:
            results.append(restore())
        except Exception as err:  # one failing knob must not keep the others changed
            results.append(err)
    return [r for r in results if r is not None]


def install() -> None:
    """atexit always; signal handlers only from the main thread (Python's rule), which
    the command line's entry point is: `tscu` calls this at start."""
    global _atexit_installed
    with _lock:
        if not _atexit_installed:
            atexit.register(restore_all)
            _atexit_installed = True
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            if sig in _previous:
                continue
            _previous[sig] = signal.getsignal(sig)
            if _previous[sig] is signal.SIG_IGN:
                continue  # an ignored signal stays ignored (nohup)
            signal.signal(sig, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    restore_all()
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif previous is not signal.SIG_IGN:  # SIG_DFL (or unknown): die of the signal
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
