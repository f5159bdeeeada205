"""GGUF metadata for a base that was not a GGUF: an mlx-lm folder's config.json and
tokenizer written the way llama.cpp's `convert_hf_to_gguf.py` writes them.

Hyperparameters go under `{arch}.*`; the tokenizer is byte-level BPE
(`tokenizer.ggml.model = gpt2`) with llama.cpp's name for the pre-tokenizer,
told from tokenizer.json's own pre-tokenizer (llama.cpp tells it from a hash of
sample tokenizations; a tokenizer that matches none of ours is refused, since a
wrong guess would tokenize differently without any error). Merges, special token
ids and the chat template come through gguf-py's `SpecialVocab`, as in llama.cpp.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tscu_tui.engine.hub import ExportError

_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_LLAMA3 = _QWEN2.replace(r"\p{N}|", r"\p{N}{1,3}|")
#: tokenizer.json Split regex -> llama.cpp's `tokenizer.ggml.pre`
_PRE_BY_REGEX = {_QWEN2: "qwen2", _LLAMA3: "llama-bpe"}


def write_hparams(writer: Any, config: dict[str, Any], where: str) -> Any:
    """The architecture keys llama.cpp's llama/qwen2/qwen3 loaders read; returns llama 3's
    `rope_freqs` factors (numpy) when the config has llama 3 rope scaling, else None."""
    import gguf

    def need(key: str) -> Any:
        if key not in config:
            raise ExportError(f"{where}: config.json has no {key}")
        return config[key]

    hidden, heads = int(need("hidden_size")), int(need("num_attention_heads"))
    head_dim = int(config.get("head_dim") or hidden // heads)
    writer.add_context_length(int(config.get("max_position_embeddings", 4096)))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(need("num_hidden_layers")))
    writer.add_feed_forward_length(int(need("intermediate_size")))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads", heads)))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(int(need("vocab_size")))
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type") or scaling.get("type")
    if kind in (None, "default"):
        return None
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(scaling["factor"]))
        return None
    if kind == "llama3":
        return llama3_rope_freqs(scaling, float(config.get("rope_theta", 10000.0)), head_dim)
    raise ExportError(f"{where}: rope scaling '{kind}' cannot be written as GGUF by tscu "
                      "(none, linear and llama3 can)")


def llama3_rope_freqs(scaling: dict[str, Any], base: float, dims: int) -> Any:
    """llama.cpp's per-frequency factors for llama 3 rope scaling (convert_hf_to_gguf.py,
    `LlamaModel.generate_extra_tensors`); the import recovers the parameters from them."""
    import numpy as np

    factor = float(scaling["factor"])
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    original = float(scaling["original_max_position_embeddings"])
    factors = []
    for i in range(dims // 2):
        wavelen = 2 * math.pi * base ** (2 * i / dims)
        if wavelen < original / high:
            factors.append(1.0)
        elif wavelen > original / low:
            factors.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def _pre_tokenizer(data: dict[str, Any], where: str) -> str:
    pre = data.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    for step in steps:
        regex = (step.get("pattern") or {}).get("Regex")
        if step.get("type") == "Split" and regex in _PRE_BY_REGEX:
            return _PRE_BY_REGEX[regex]
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    raise ExportError(f"{where}: its pre-tokenizer ({' + '.join(map(str, kinds))}) is not one "
                      "tscu can name for llama.cpp (Qwen2/3, Llama 3, SmolLM, GPT-2 can)")


def write_tokenizer(writer: Any, folder: Path, vocab_size: int) -> None:
    """Byte-level BPE vocabulary, merges, special tokens and chat template."""
    import gguf

    where = str(folder / "tokenizer.json")
    try:
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{where}: cannot read the tokenizer ({exc})") from None
    model = data.get("model") or {}
    byte_level = "ByteLevel" in json.dumps(data.get("pre_tokenizer") or {}) \
        or (data.get("decoder") or {}).get("type") == "ByteLevel"
    if model.get("type") != "BPE" or not byte_level:
        raise ExportError(f"{where}: a {model.get('type', 'unknown')} tokenizer without "
                          "byte-level BPE cannot be written as GGUF by tscu (Qwen, Llama 3 "
                          "and SmolLM tokenizers can)")
    pre = _pre_tokenizer(data, where)
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = {t["content"]: t for t in data.get("added_tokens", [])}
    vocab.update({content: int(t["id"]) for content, t in added.items()})
    by_id = {index: token for token, index in vocab.items()}
    size = max(vocab_size, max(by_id) + 1)
    tokens, types = [], []
    for index in range(size):
        token = by_id.get(index)
        if token is None:  # config's vocab_size pads the embedding past the tokenizer
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if added[token].get("special")
                         else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens)).add_to_gguf(
        writer, quiet=True)
