"""GGUF files written for tests the way llama.cpp's converter writes them.

An independent writer (llama.cpp's own `gguf` package): Hugging Face names ->
`blk.N.*`, llama-family `attn_q`/`attn_k` rows permuted per head exactly as
`convert_hf_to_gguf.py` does, block-quantized tensors from `gguf.quants`, and the
embedded tiny model's BPE vocabulary as tokenizer metadata. tscu's importer
(and transformers' GGUF loader) must read these back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

from tscu_tui.engine.config.assets import EMBEDDED_MODEL_DIR

_BLOCK = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
          "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
          "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
          "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
          "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
_TOP = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}


def gguf_name(hf: str) -> str:
    module, _, kind = hf.rpartition(".")
    if module in _TOP:
        return f"{_TOP[module]}.{kind}"
    parts = module.split(".")
    layer, rest = parts[2], ".".join(parts[3:])
    return f"blk.{layer}.{_BLOCK[rest]}.{kind}"


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's `LlamaModel.permute` (HF rotary layout -> GGML's)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def add_tiny_tokenizer(writer: gguf.GGUFWriter) -> None:
    """The embedded model's byte-level BPE as GGUF tokenizer metadata (gpt2 model)."""
    data = json.loads((EMBEDDED_MODEL_DIR / "tokenizer.json").read_text())
    vocab: dict[str, int] = dict(data["model"]["vocab"])
    special = {t["content"]: t["id"] for t in data.get("added_tokens", [])}
    vocab.update(special)
    tokens = [""] * (max(vocab.values()) + 1)
    for token, index in vocab.items():
        tokens[index] = token
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    config = json.loads((EMBEDDED_MODEL_DIR / "config.json").read_text())
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in special else 1 for t in tokens])
    writer.add_token_merges(merges)
    eos = config.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    writer.add_eos_token_id(int(eos))
    writer.add_bos_token_id(int(eos))
    writer.add_add_bos_token(False)


def write_gguf(path: Path, arch: str, config: dict[str, Any], weights: dict[str, np.ndarray],
               quant: dict[str, Q]) -> Path:
    """Write `weights` (HF names, float32) as a GGUF of architecture `arch`.

    `quant` maps a substring of a tensor's HF name to its GGML type (first match
    wins; 2-D weights only); everything else is F32."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"tscu test {arch}")
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config["rope_theta"])
    if "head_dim" in config:
        writer.add_key_length(config["head_dim"])
        writer.add_value_length(config["head_dim"])
    writer.add_vocab_size(config["vocab_size"])
    add_tiny_tokenizer(writer)
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    for name, value in sorted(weights.items()):
        array = np.ascontiguousarray(value, dtype=np.float32)
        if arch == "llama" and ".q_proj." in name:
            array = permute(array, heads)
        elif arch == "llama" and ".k_proj." in name:
            array = permute(array, kv_heads)
        qtype = next((q for key, q in quant.items() if key in name), Q.F32)
        if array.ndim != 2 or qtype == Q.F32:
            writer.add_tensor(gguf_name(name), array)
        elif qtype == Q.F16:
            writer.add_tensor(gguf_name(name), array.astype(np.float16))
        elif qtype in (Q.Q4_0, Q.Q4_1, Q.Q8_0):
            writer.add_tensor(gguf_name(name), gguf.quants.quantize(array, qtype),
                              raw_dtype=qtype)
        else:  # types gguf-py cannot quantize (K-quants): zero blocks of the right size
            shape = gguf.quants.quant_shape_to_byte_shape(array.shape, qtype)
            writer.add_tensor(gguf_name(name), np.zeros(shape, np.uint8), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def random_model(arch: str, seed: int = 0) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A small randomly initialised mlx-lm model of `arch` with the tiny model's vocab."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import _get_classes

    config: dict[str, Any] = {
        "model_type": arch, "hidden_size": 64, "num_hidden_layers": 2,
        "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6, "vocab_size": 4096, "rope_theta": 10000.0,
        "max_position_embeddings": 2048, "tie_word_embeddings": arch != "llama",
    }
    if arch == "qwen3":
        # 128, not hidden / heads = 16: the import must read attention.key_length. (Also
        # transformers' GGUF loader ignores key_length for qwen3 and assumes 128.)
        config["head_dim"] = 128
    mx.random.seed(seed)
    model_class, args_class = _get_classes(config)
    model = model_class(args_class.from_dict(config))
    weights = {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(model.parameters())}
    rng = np.random.default_rng(seed)
    for name in weights:  # non-trivial norms (and biases), so a misplaced one shows
        if name.endswith("norm.weight"):
            weights[name] = 1.0 + 0.2 * rng.standard_normal(weights[name].shape).astype(
                np.float32)
        elif name.endswith(".bias"):
            weights[name] = 0.2 * rng.standard_normal(weights[name].shape).astype(np.float32)
    return config, weights
