"""Greedy samples from a base model and from the same model with a run's adapter.

The results screen shows both side by side, so a person sees what training
changed. Greedy decoding makes the two directly comparable and repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tscu_tui.engine.errors import ModelError, first_line
from tscu_tui.engine.models.load import load_model
from tscu_tui.engine.runs.files import ADAPTER_CONFIG, ADAPTER_WEIGHTS

DEFAULT_PROMPT = "U+00E9 is"  # fits the demo corpus (Unicode character descriptions)
DEFAULT_TOKENS = 24


@dataclass(frozen=True)
class Samples:
    prompt: str
    base: str
    adapted: str


def check_adapter(run_dir: Path) -> None:
    missing = [name for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
               if not (run_dir / name).is_file()]
    if missing:
        raise ModelError(f"{run_dir}: no adapter to sample from (missing {', '.join(missing)})")


def generate_samples(base_model: str, run_dir: Path, prompt: str,
                     max_tokens: int = DEFAULT_TOKENS) -> Samples:
    """Greedy continuations of `prompt`: the base model, then base + the run's adapter.

    Runs MLX on the calling thread; a worker thread must call `runtime.release_streams()`
    when it is done with MLX.
    """
    from mlx_lm import generate
    from mlx_lm.tuner.utils import load_adapters

    check_adapter(run_dir)
    model, tokenizer, _ = load_model(base_model)
    base = generate(model, tokenizer, prompt, max_tokens=max_tokens, verbose=False)
    try:
        load_adapters(model, str(run_dir))
    except (ValueError, OSError) as exc:
        raise ModelError(f"cannot apply the adapter of {run_dir} to {base_model}: "
                         f"{first_line(exc)}") from None
    adapted = generate(model, tokenizer, prompt, max_tokens=max_tokens, verbose=False)
    return Samples(prompt=prompt, base=base, adapted=adapted)
