"""Each engine event as the line a person reads: in the run's log file, on the console
of `tscu train` and in the train screen's log.

One formatter for the three, so a field added to an event is written once. The
three readers want different amounts, so `voice` picks the wording:

- `"log"`: the run's log file, read back later: every number, the checkpoint's path;
- `"console"`: `tscu train`'s plain lines, short enough for a terminal;
- `"screen"`: the train screen's log pane, beside charts that carry the numbers.

None means that voice does not write the event (the log has no state line, the console
no failure line: the command prints the one-line error). Which events to write at all
(every `logging_steps`-th step, info messages only without a live panel) stays with the
caller.
"""

from __future__ import annotations

from typing import Literal

from tscu_tui.engine.events import (
    CheckpointEvent,
    EvalEvent,
    Event,
    LogEvent,
    RunFailed,
    RunFinished,
    RunStarted,
    SampleEvent,
    StateEvent,
    StepEvent,
    TestEvent,
)
from tscu_tui.engine.formatting import duration, fmt, information

Voice = Literal["log", "console", "screen"]


def event_line(event: Event, voice: Voice) -> str | None:
    """`event` as `voice` writes it (several lines joined by newlines for samples on the
    console), or None where that voice says nothing about it."""
    match event:
        case StepEvent():
            return _step(event, voice)
        case EvalEvent():
            return _eval(event, voice)
        case TestEvent():
            return (f"test split, {event.adapter} adapter (step {event.step}): "
                    f"{event.test_bpt:.4f} bits/token"
                    + (f", perplexity {event.perplexity:.2f}" if voice == "log" else ""))
        case SampleEvent():
            return _samples(event, voice)
        case CheckpointEvent():
            return (f"checkpoint ({event.reason}) at step {event.step}"
                    + (f": {event.path}" if voice == "log" else ""))
        case LogEvent():
            return f"{event.level}: {event.message}"
        case StateEvent():
            return None if voice == "log" else f"{event.state} at step {event.step}"
        case RunStarted():
            return _started(event, voice)
        case RunFinished():
            return _finished(event, voice)
        case RunFailed():
            if voice == "console":
                return None
            return f"{'run ' if voice == 'log' else ''}failed at step {event.step}: {event.reason}"
    return None


def governor_line(control_before: float, event: StepEvent) -> str:
    """The governor moved the control factor c: from what, to what, and why."""
    why = (f"{fmt(event.power_w, '.1f', ' W')}, {fmt(event.temp_c, '.1f', ' °C')}"
           + (", over budget" if event.over_budget else ""))
    return f"governor: c {control_before:.2f} -> {event.control_factor:.2f} ({why})"


def _target(value: float | None) -> str:
    return "auto" if value is None else f"{value:.4f}"


def _oneline(text: str) -> str:
    return " ".join(text.split())


def _step(event: StepEvent, voice: Voice) -> str | None:
    if voice == "screen":
        return None  # the charts and the progress line show every step
    if voice == "console":
        return (f"step {event.step}/{event.max_steps} loss {event.loss:.4f} "
                f"S {event.s:.4f} lambda {event.lambda_reg:.4g} "
                f"tok/s {event.tokens_per_s:.0f} "
                f"{fmt(event.power_w, '.1f')} W {fmt(event.temp_c, '.1f')} °C "
                f"c {fmt(event.control_factor, '.2f')}"
                + (f" telemetry FAILED, {event.telemetry_status}"
                   if event.telemetry_status else ""))
    text = (f"step {event.step}/{event.max_steps} loss {event.loss:.4f} "
            f"data_bpt {event.data_bpt:.4f} param_bpt {event.param_bpt:.5f} "
            f"S {event.s:.4f} (target {_target(event.s_target)}) lambda "
            f"{event.lambda_reg:.4g} lr {event.lr:.3g} tok/s {event.tokens_per_s:.0f}")
    if event.power_w is not None:
        text += f" {event.power_w:.1f} W"
    if event.temp_c is not None:
        text += f" {event.temp_c:.1f} °C"
    if event.control_factor is not None:
        text += f" c {event.control_factor:.2f} idle {event.idle_s or 0.0:.2f}s"
    return text + (" [update skipped: non-finite loss]" if event.skipped else "")


def _eval(event: EvalEvent, voice: Voice) -> str:
    best = " (best)" if event.is_best else ""
    if voice == "log":
        return (f"eval step {event.step}: held-out {event.heldout_bpt:.4f} bits/token, "
                f"perplexity {event.perplexity:.2f}{best}")
    text = information(event)
    if voice == "console":
        return (f"eval at step {event.step}: held-out {event.heldout_bpt:.4f} "
                f"bits/token{best}" + (f"; {text}" if text else ""))
    return (f"eval step {event.step}: held-out {event.heldout_bpt:.4f} bits/token, "
            f"ppl {event.perplexity:.2f}{best}" + (f", {text}" if text else ""))


def _samples(event: SampleEvent, voice: Voice) -> str | None:
    pairs = zip(event.prompts, event.answers, strict=True)
    if voice == "log":
        return f"samples at step {event.step}: " + " | ".join(
            f"{_oneline(p)[-40:]} -> {_oneline(a)[:80]}" for p, a in pairs)
    if voice == "console":
        return "\n".join(f"  sample: ...{_oneline(p)[-50:]} -> {_oneline(a)[:100]}"
                         for p, a in pairs)
    return None  # the screen shows the answers in their own panel


def _started(event: RunStarted, voice: Voice) -> str:
    if voice == "log":
        return (f"run started at step {event.start_step}: model {event.model}, dataset "
                f"{event.dataset}, {event.trainable_params:,} trainable of "
                f"{event.total_params:,} parameters, {event.blas}")
    counts = (f"{event.trainable_params:,} trainable parameters, "
              f"{event.train_tokens:,} training tokens")
    if voice == "console":
        where = f"resuming at step {event.start_step}" if event.start_step else "starting"
        return f"{where}: {event.model}, {counts}; {event.blas}"
    where = f"resumed at step {event.start_step}" if event.start_step else "started"
    return f"{where}: {counts}, {event.blas}"


def _finished(event: RunFinished, voice: Voice) -> str:
    if voice == "log":
        return f"run finished at step {event.step}: {event.reason}"
    best = ";"
    if voice == "screen":
        best = (f": best held-out {fmt(event.best_bpt, '.4f')} bits/token, "
                f"{duration(event.duration_s)};")
    return f"finished ({event.reason}) at step {event.step}{best} outputs in {event.run_dir}"
