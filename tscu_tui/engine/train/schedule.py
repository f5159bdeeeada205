"""Learning-rate schedule: linear warmup, then cosine / linear decay or constant."""

from __future__ import annotations

import math

from tscu_tui.engine.config import TrainConfig


def lr_at(step: int, train: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based) of `train.max_steps`."""
    peak = train.learning_rate
    warmup = min(train.warmup_steps, train.max_steps - 1)
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    if train.lr_scheduler == "constant":
        return peak
    floor = peak * train.min_lr_ratio
    span = max(train.max_steps - 1 - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    if train.lr_scheduler == "linear":
        return peak - (peak - floor) * progress
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))
