"""Samples while training: at each evaluation the model answers a few held-out prompts.

The prompts are `data.sample_prompts` (rendered as a user turn through the chat
template the dataset was prepared with, `data.chat_template_kwargs` included,
with its generation prompt), or else up to three prompts prepare kept from the
validation split (examples.py): a chat record up to its last answer, or the
opening of a text document to continue. Answers are greedy and short
(`data.sample_max_tokens`), cut at the template's end-of-turn marker, so they
show what the model will say when used as it was trained.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import mlx.nn as nn

from tscu_tui.engine.config import DataConfig
from tscu_tui.engine.data.chat import prompt_tokens, recorded_template
from tscu_tui.engine.data.store import DatasetMeta
from tscu_tui.engine.events import SampleEvent
from tscu_tui.engine.models.generate import greedy


@dataclass(frozen=True)
class Prompt:
    tokens: list[int]
    text: str
    reference: str | None = None


class TrainingSamples:
    """The prompts of a run, and a round of answers at each evaluation."""

    def __init__(self, data: DataConfig, meta: DatasetMeta, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = data.sample_max_tokens
        self.chat = recorded_template(meta.chat_template, tokenizer)
        self.stop_text = self.chat.end_marker.strip() if self.chat is not None else ""
        if data.sample_prompts:
            self.prompts = [Prompt(*prompt_tokens(p, tokenizer, self.chat))
                            for p in data.sample_prompts]
        else:
            self.prompts = [Prompt(list(p["tokens"]), str(p.get("text", "")),
                                   p.get("reference")) for p in meta.sample_prompts or []]
        if not self.max_tokens:
            self.prompts = []

    def __call__(self, model: nn.Module, step: int) -> SampleEvent | None:
        if not self.prompts:
            return None
        started = time.perf_counter()
        answers = [greedy(model, self.tokenizer, p.tokens, self.max_tokens,
                          stop_text=self.stop_text) for p in self.prompts]
        return SampleEvent(step=step, prompts=[p.text for p in self.prompts], answers=answers,
                           references=[p.reference for p in self.prompts],
                           sample_s=time.perf_counter() - started)
