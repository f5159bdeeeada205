"""Greedy samples from a base model and from the same model with a run's adapter.

The results screen shows both side by side, so a person sees what training
changed. Greedy decoding makes the two directly comparable and repeatable. The
prompt goes through the chat template the run's data was prepared with (its
variables included, `data.chat_template_kwargs`), as a user turn with the
generation prompt, so the model answers as it was trained to; a run on plain
text continues the prompt as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tscu_tui.engine.data import PreparedDataset
from tscu_tui.engine.data.chat import ChatTemplate, prompt_tokens, recorded_template
from tscu_tui.engine.errors import ModelError, TscuError, first_line
from tscu_tui.engine.models.cpu_fastpath import prepare_for_cpu
from tscu_tui.engine.models.generate import greedy
from tscu_tui.engine.models.load import load_model
from tscu_tui.engine.runs.files import ADAPTER_CONFIG, ADAPTER_WEIGHTS, SUMMARY_FILE

DEFAULT_PROMPT = "U+00E9 is"  # fits the demo corpus (Unicode character descriptions)
DEFAULT_TOKENS = 24


@dataclass(frozen=True)
class Samples:
    prompt: str  # as the model saw it (through the chat template where the run used one)
    base: str
    adapted: str


def check_adapter(run_dir: Path) -> None:
    missing = [name for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
               if not (run_dir / name).is_file()]
    if missing:
        raise ModelError(f"{run_dir}: no adapter to sample from (missing {', '.join(missing)})")


def run_template(run_dir: Path, tokenizer: Any) -> ChatTemplate | None:
    """The chat template the run trained through: its dataset's, read from the dataset's
    meta.json (a custom template's text included), else from the run's summary."""
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        return recorded_template(PreparedDataset.open(summary["dataset"]).meta.chat_template,
                                 tokenizer)
    except (KeyError, TypeError, TscuError):
        recorded = (summary.get("data") or {}).get("chat_template")
        if not recorded:
            return None
        return recorded_template({**recorded, "text": None}, tokenizer)  # the tokenizer's


def generate_samples(base_model: str, run_dir: Path, prompt: str,
                     max_tokens: int = DEFAULT_TOKENS) -> Samples:
    """Greedy answers to `prompt`: the base model, then base + the run's adapter.

    Runs MLX on the calling thread; a worker thread must call `runtime.release_streams()`
    when it is done with MLX.
    """
    from mlx_lm.tuner.utils import load_adapters

    check_adapter(run_dir)
    model, tokenizer, _ = load_model(base_model)
    # on the CPU: float32 and the training's fast path (packed-weight matmuls a token at a
    # time), so the answers are computed as the run's own samples were; elsewhere a no-op
    prepare_for_cpu(model)
    chat = run_template(run_dir, tokenizer)
    tokens, shown = prompt_tokens(prompt, tokenizer, chat)
    stop = chat.end_marker.strip() if chat is not None else ""
    base = greedy(model, tokenizer, tokens, max_tokens, stop_text=stop)
    try:
        load_adapters(model, str(run_dir))
    except (ValueError, OSError) as exc:
        raise ModelError(f"cannot apply the adapter of {run_dir} to {base_model}: "
                         f"{first_line(exc)}") from None
    adapted = greedy(model, tokenizer, tokens, max_tokens, stop_text=stop)
    return Samples(prompt=shown, base=base, adapted=adapted)
