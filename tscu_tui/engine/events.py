"""Typed, frozen events the engine emits, and the commands it accepts.

Units are in field names (`power_w`, `temp_c`, `lambda_reg`). The engine hands
events to a sink (any callable); the UI wraps them in Textual messages, the
CLI draws a progress display, and `events.jsonl` records them for followers.
Telemetry fields are None where the run has no such reading; never invented.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol


class Command(enum.Enum):
    """What a UI may ask of a running trainer (drained once per step)."""

    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"  # saves a checkpoint first
    SAVE = "save"


@dataclass(frozen=True)
class RunStarted:
    run_dir: str
    model: str
    dataset: str
    max_steps: int
    start_step: int  # > 0 when resumed
    tokens_per_step: int
    trainable_params: int
    total_params: int
    train_tokens: int
    validation_tokens: int
    scu_mode: str
    s_target: float | None  # None: "auto", not resolved yet
    s_initial: float | None
    blas: str
    device: str
    telemetry: str = ""  # source and why it was chosen
    world_size: int = 1  # ranks of a distributed run
    backend: str = "none"  # its mx.distributed backend
    steps_per_epoch: float | None = None  # optimizer steps a pass over the training blocks
    test_tokens: int = 0  # the test split's (0: the dataset has none)


@dataclass(frozen=True)
class StepEvent:
    step: int
    max_steps: int
    loss: float  # optimised objective, nats/token (CE + penalty)
    data_bpt: float
    param_bpt: float
    s: float
    s_smoothed: float  # the EMA the controller acts on
    s_target: float | None  # None: "auto", not resolved yet
    lambda_reg: float
    scu_p: float
    scu_i: float
    lr: float
    grad_norm: float
    tokens: int  # tokens trained so far
    tokens_per_s: float
    step_s: float  # compute seconds of this step
    elapsed_s: float
    eta_s: float
    skipped: bool = False  # non-finite loss: update skipped
    power_w: float | None = None
    temp_c: float | None = None
    control_factor: float | None = None
    idle_s: float | None = None
    energy_j: float | None = None
    telemetry_source: str | None = None
    telemetry_kind: str | None = None
    telemetry_status: str | None = None  # why the telemetry is not measuring; None while it is
    over_budget: bool | None = None
    peak_memory_bytes: int | None = None  # MLX's peak allocation so far this run
    # Distributed runs: one entry per node (rank); power_w is their sum, temp_c the hottest.
    node_power_w: list[float | None] | None = None
    node_temp_c: list[float | None] | None = None
    node_energy_j: list[float | None] | None = None
    frequency: str | None = None  # the clock knob and its setting (frequency first)


@dataclass(frozen=True)
class EvalEvent:
    step: int
    heldout_bpt: float
    perplexity: float
    best_bpt: float
    is_best: bool
    eval_s: float
    param_bpt: float | None = None
    # Information gained: N x drop in held-out BPT (N = training-set tokens), and per joule
    eta_marginal_bits_per_j: float | None = None  # since the last evaluation
    eta_cumulative_bits_per_j: float | None = None  # since the run's first
    tokens_per_j: float | None = None
    landauer_efficiency: float | None = None  # cumulative eta * k_B T ln 2
    energy_j: float | None = None
    bits_marginal: float | None = None
    bits_cumulative: float | None = None
    # The MDL view (data bits - change in N x ParamBPT): only with the penalty on
    mdl_bits_cumulative: float | None = None
    mdl_eta_marginal_bits_per_j: float | None = None
    mdl_eta_cumulative_bits_per_j: float | None = None


@dataclass(frozen=True)
class TestEvent:
    """The test split (never trained on, never selected on) under one adapter."""

    __test__ = False  # not a pytest class

    adapter: str  # base (step 0) | final | best (the best validation evaluation's)
    step: int  # the step whose weights were measured
    test_bpt: float
    perplexity: float
    tokens: int
    eval_s: float


@dataclass(frozen=True)
class SampleEvent:
    """The model's greedy answers to a few held-out prompts at an evaluation."""

    step: int
    prompts: list[str]  # as the model saw them (chat template and generation prompt)
    answers: list[str]
    references: list[str | None] | None = None  # the held-out answers, where known
    sample_s: float = 0.0


@dataclass(frozen=True)
class CheckpointEvent:
    step: int
    path: str
    reason: str  # periodic | requested | stop | final | emergency | sensor_lost


@dataclass(frozen=True)
class LogEvent:
    level: str  # info | warning | error
    message: str
    step: int | None = None


@dataclass(frozen=True)
class StateEvent:
    state: str  # running | paused
    step: int


@dataclass(frozen=True)
class RunFinished:
    step: int
    # completed | stopped | early_stopping | emergency_stop | sensor_lost | diminishing_returns
    reason: str
    best_bpt: float | None
    final_bpt: float | None
    duration_s: float
    run_dir: str


@dataclass(frozen=True)
class RunFailed:
    step: int
    reason: str  # one line
    rank: int | None = None  # distributed runs: the rank that failed or was lost
    reported_elsewhere: bool = False  # that rank printed the line itself: stay quiet


Event = (RunStarted | StepEvent | EvalEvent | TestEvent | SampleEvent | CheckpointEvent
         | LogEvent | StateEvent | RunFinished | RunFailed)
EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    RunStarted, StepEvent, EvalEvent, TestEvent, SampleEvent, CheckpointEvent, LogEvent,
    StateEvent,
    RunFinished, RunFailed)}


class EventSink(Protocol):
    def __call__(self, event: Event) -> None: ...


def to_record(event: Event) -> dict[str, Any]:
    """A JSON-ready dict with the event's type name under 'event'."""
    return {"event": type(event).__name__, **asdict(event)}


def from_record(record: dict[str, Any]) -> Event:
    """Rebuild an event from `to_record` output (unknown keys are ignored)."""
    cls = EVENT_TYPES[record["event"]]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in record.items() if k in names})
