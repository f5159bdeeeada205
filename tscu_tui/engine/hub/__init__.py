"""Share a finished run: adapter exports, a model card and a Hugging Face Hub upload.

- `run.open_run`: a run folder checked once, its files read once
- `peft_export`: the mlx-lm adapter as a PEFT adapter for the full-precision base
- `fused`: base and adapter fused into one model (mlx-lm's fuse)
- `gguf_base`: the checked base GGUF, tensor names, llama's q/k row order, LoRA pairs
- `gguf_lora`: the adapter as a llama.cpp LoRA GGUF, an Ollama Modelfile
- `gguf_merged`, `gguf_meta`: base + adapter merged into one GGUF (F16, Q8_0, Q4_0)
- `export.export_run`: one entry point for `--format mlx|peft|fused|gguf-lora|gguf`
- `model_card`: README.md generated from the run's files, its sections in `card_training`,
  `card_results` (results, test split, samples, energy, hardware) and `card_usage`
  (usage, limitations, citation), its numbers through `card_text.card_value`
- `push`: upload to the Hub; the token is read from the environment, never stored

Modules import mlx, numpy, gguf or huggingface_hub only when a function needs them.
It reads runs (`runs`) and models (`models`) and may import `config` and the
shared vocabulary; `train` imports it for the model card, never the reverse.
"""

from __future__ import annotations

from tscu_tui.engine.errors import TscuError


class ExportError(TscuError):
    """A run cannot be exported (missing folder, no adapter, unsupported layout)."""


class HubError(TscuError):
    """An upload to the Hugging Face Hub failed: token, repo id, network or permission."""
