"""What meta.json shows of a prepared dataset's documents: one rendered example with
its trained tokens marked (the dataset screen), and held-out prompts that training
samples answers to (trainer, samples.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tscu_tui.engine.data.encoding import TRAINED, Encoder

#: Tokens of the example shown; prompts longer than PROMPT_TOKENS are not sampled.
EXAMPLE_TOKENS = 400
PROMPT_TOKENS = 1024
#: A plain-text document's opening that the model continues, and the reference kept.
TEXT_PROMPT_TOKENS = 16
REFERENCE_TOKENS = 64

Doc = tuple[np.ndarray, np.ndarray]  # tokens, flags


def _runs(trained: np.ndarray) -> list[tuple[int, int, bool]]:
    """[start, end) runs of equal values."""
    cuts = np.flatnonzero(np.diff(trained.astype(np.int8))) + 1
    bounds = [0, *cuts.tolist(), trained.size]
    return [(a, b, bool(trained[a])) for a, b in zip(bounds, bounds[1:], strict=False)]


def _is_chat(flags: np.ndarray) -> bool:
    """Some target after the first token carries no loss: a prompt was masked."""
    return bool(flags.size > 1 and not np.all(flags[1:] & TRAINED))


def example_pieces(encoder: Encoder, docs: Sequence[Doc]) -> list[list[Any]] | None:
    """The first chat document (else the first) as [[text, trained], ...] pieces."""
    if not docs:
        return None
    tokens, flags = next(((t, f) for t, f in docs if _is_chat(f)), docs[0])
    tokens, flags = tokens[:EXAMPLE_TOKENS], flags[:EXAMPLE_TOKENS]
    trained = (flags & TRAINED).astype(bool)
    return [[encoder.decode(tokens[a:b].tolist()), on] for a, b, on in _runs(trained)]


def sample_prompts(encoder: Encoder, docs: Sequence[Doc]) -> list[dict[str, Any]]:
    """Held-out prompts: a chat document up to its last trained turn (the template's
    generation prompt included), or a text document's opening; with the reference."""
    prompts = []
    for tokens, flags in docs:
        trained = (flags & TRAINED).astype(bool)
        if _is_chat(flags):
            runs = [(a, b) for a, b, on in _runs(trained) if on]
            if not runs:
                continue
            cut = runs[-1][0]
        else:
            cut = min(TEXT_PROMPT_TOKENS, tokens.size // 2)
        if not 0 < cut <= PROMPT_TOKENS:
            continue
        reference = tokens[cut:cut + REFERENCE_TOKENS].tolist()
        if reference and reference[-1] == encoder.eos_token_id:
            reference = reference[:-1]
        prompts.append({"tokens": tokens[:cut].tolist(),
                        "text": encoder.decode(tokens[:cut].tolist()),
                        "reference": encoder.decode(reference)})
    return prompts
