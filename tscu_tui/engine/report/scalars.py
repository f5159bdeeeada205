"""Which numbers each engine event becomes, under which tag, for every reporter.

Tags are grouped the way the app's charts are (`train/`, `eval/`, `scu/`, `power/`,
`speed/`). A reading the run does not have (None: no telemetry) is left out, never
written as 0.
"""

from __future__ import annotations

import json
from typing import Any

from tscu_tui.engine.events import EvalEvent, Event, RunStarted, StepEvent

#: what TensorBoard's HParams view and W&B's run table rank runs by
HPARAM_METRICS = ("eval/heldout_bpt", "eval/best_bpt")


def scalars(event: Event) -> dict[str, float]:
    """tag -> value for a step or an evaluation; {} for other events."""
    match event:
        case StepEvent():
            values: dict[str, float | None] = {
                "train/loss": event.loss, "train/data_bpt": event.data_bpt,
                "train/param_bpt": event.param_bpt, "train/lr": event.lr,
                "train/grad_norm": event.grad_norm, "scu/S": event.s,
                "scu/S_smoothed": event.s_smoothed, "scu/S_target": event.s_target,
                "scu/lambda": event.lambda_reg, "speed/tokens_per_s": event.tokens_per_s,
                "speed/step_s": event.step_s, "power/watts": event.power_w,
                "power/temp_c": event.temp_c, "power/control_factor": event.control_factor,
                "power/idle_s": event.idle_s, "power/energy_j": event.energy_j,
                "power/joules_per_token": (event.energy_j / event.tokens
                                           if event.energy_j is not None and event.tokens
                                           else None),
            }
        case EvalEvent():
            values = {"eval/heldout_bpt": event.heldout_bpt, "eval/perplexity": event.perplexity,
                      "eval/best_bpt": event.best_bpt, "eval/param_bpt": event.param_bpt,
                      "eval/bits_per_joule": event.eta_cumulative_bits_per_j,
                      "eval/marginal_bits_per_joule": event.eta_marginal_bits_per_j}
        case _:
            return {}
    return {tag: float(value) for tag, value in values.items()
            if value is not None and value == value}  # NaN (a skipped step) is no reading


def hyperparameters(config: dict[str, dict[str, Any]], started: RunStarted | None = None
                    ) -> dict[str, bool | int | float | str]:
    """The config flattened to `section.key` (lists as JSON text), minus the app's keys,
    plus what the run itself found out (parameters, tokens, ranks)."""
    flat: dict[str, bool | int | float | str] = {}
    for section, values in config.items():
        if section == "keys":
            continue
        for key, value in values.items():
            flat[f"{section}.{key}"] = (value if isinstance(value, bool | int | float | str)
                                        else json.dumps(value))
    if started is not None:
        flat.update({"run.trainable_params": started.trainable_params,
                     "run.total_params": started.total_params,
                     "run.train_tokens": started.train_tokens,
                     "run.tokens_per_step": started.tokens_per_step,
                     "run.world_size": started.world_size, "run.device": started.device})
    return flat
