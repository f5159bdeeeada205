"""Starting after an emergency stop: wait for the chip to cool first, and say so.

A run stopped at `tscu.emergency_shutdown_temp` resumes once the temperature is
below `tscu.max_temperature_celsius` (the config's limits now, not the
checkpoint's). Until then it waits, saying every few seconds how hot the chip
is and how long it will still wait, for at most `tscu.cooldown_timeout_seconds`;
then it gives up (the run stops again, resumable later). Without a temperature
there is nothing to wait for: it says so and goes on.

The wait owns no clock or sleep: `wait(seconds)` is the trainer's (it answers
Stop while it waits), so a test runs it in simulated time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: seconds between two "still cooling" lines
REPORT_EVERY_S = 5.0


@dataclass(frozen=True)
class CooldownResult:
    cool: bool  # below the limit (or nothing measured): go on
    message: str  # the line that says what happened


def wait_until_cool(read_temp: Callable[[], float | None], limit_c: float, timeout_s: float,
                    period_s: float, wait: Callable[[float], None],
                    clock: Callable[[], float], say: Callable[[str], None]) -> CooldownResult:
    """Poll `read_temp` every `period_s` until it is below `limit_c`; `say` a countdown
    line every REPORT_EVERY_S while it is not."""
    started = clock()
    next_report = started
    while True:
        temp = read_temp()
        now = clock()
        left = timeout_s - (now - started)
        if temp is None:
            return CooldownResult(True, "no temperature is measured: resuming after the "
                                        "emergency stop without waiting")
        if temp < limit_c:
            waited = f" after {now - started:.0f} s" if now - started >= 1.0 else ""
            return CooldownResult(True, f"resuming after the emergency stop: {temp:.1f} °C is "
                                        f"below tscu.max_temperature_celsius ({limit_c:g} °C)"
                                        f"{waited}")
        if left <= 0:
            return CooldownResult(False, f"still {temp:.1f} °C after {timeout_s:g} s "
                                         f"(tscu.cooldown_timeout_seconds), above "
                                         f"tscu.max_temperature_celsius ({limit_c:g} °C): "
                                         "not resuming; --resume again once it has cooled")
        if now >= next_report:
            say(f"cooling before resuming: {temp:.1f} °C, resumes below {limit_c:g} °C; "
                f"gives up in {left:.0f} s")
            next_report = now + REPORT_EVERY_S
        wait(min(period_s, left))
