"""Greedy answers from a model: the same text every time for the same weights.

Used by the samples a run takes at each evaluation (train/samples.py) and by the
results screen's sampler (runs/sample.py), so both answer alike: a prompt's tokens
in, greedy decoding, stopped at an EOS token or at the chat template's end-of-turn
marker, the answer's text out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import mlx.nn as nn

from tscu_tui.engine.models.runtime import mx


def greedy(model: nn.Module, tokenizer: Any, prompt: Sequence[int], max_tokens: int,
           stop_ids: Iterable[int] = (), stop_text: str = "") -> str:
    """The greedy continuation of `prompt` (token ids), at most `max_tokens` tokens,
    cut at the first of `stop_ids` or at `stop_text`. The model runs in eval mode (no
    dropout) and is put back as it was."""
    from mlx_lm.generate import generate_step

    if max_tokens <= 0 or not prompt:
        return ""
    stops = set(stop_ids) | set(getattr(tokenizer, "eos_token_ids", None) or ())
    was_training = model.training
    model.eval()
    out: list[int] = []
    text = ""
    try:
        for token, _ in generate_step(mx.array(list(prompt)), model, max_tokens=max_tokens):
            token = int(token)
            if token in stops:
                break
            out.append(token)
            text = tokenizer.decode(out)
            if stop_text and stop_text in text:
                text = text[:text.index(stop_text)]
                break
    finally:
        if was_training:
            model.train()
    return text
