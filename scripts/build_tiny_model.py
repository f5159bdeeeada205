#!/usr/bin/env python
"""Build the embedded default model: a tiny 4-bit Qwen3 trained on the Python stdlib.

    python scripts/build_tiny_model.py [--output DIR] [--demo-output DIR] [--steps N] [--quick]

Everything comes from the running Python's standard library, so the build
needs no network and no download:

1. a pretraining corpus of stdlib sources, docstrings and ``pydoc_data`` topics,
   with a held-out slice of source files (see ``scripts/stdlib_corpora.py``);
2. the demo fine-tuning corpus, from another domain: English records about
   Unicode characters (``unicodedata``), written as ``{"text": ...}`` JSONL;
3. a byte-level BPE tokenizer (vocabulary 4096, Qwen's pre-tokenizer regex and
   special tokens, a ChatML chat template);
4. a small Qwen3 (``mlx_lm.models.qwen3``) pretrained for a fixed number of
   steps, seeded, so that reruns give the same bytes;
5. 4-bit, group-size-64 affine quantization (``mlx_lm.utils.quantize_model``),
   saved in the layout ``mlx_lm.load`` reads, atomically;
6. held-out bits per token on code and on the demo corpus, before and after
   quantization, written with the other numbers to the model's README.md.

With no arguments it rebuilds ``tscu_tui/assets/tiny-qwen3-4bit`` and
``tscu_tui/assets/demo/unicode_chars.jsonl``. ``--quick`` builds a small model
in seconds (for tests) and needs ``--output``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
for _path in (str(REPO), str(SCRIPTS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# OpenBLAS must be loaded before anything imports mlx (see tscu_tui/engine/models/runtime.py).
from tscu_tui.engine.models.runtime import BLAS, mx  # noqa: E402

# isort: split
import mlx.nn as nn  # noqa: E402
import mlx.optimizers as optim  # noqa: E402
import numpy as np  # noqa: E402
import stdlib_corpora as corpora  # noqa: E402
from mlx.utils import tree_flatten  # noqa: E402

from tscu_tui.engine.fileio import atomic_directory, atomic_write_bytes  # noqa: E402

DEFAULT_OUTPUT = REPO / "tscu_tui" / "assets" / "tiny-qwen3-4bit"
DEFAULT_DEMO_OUTPUT = REPO / "tscu_tui" / "assets" / "demo"
DEMO_FILE = "unicode_chars.jsonl"

EOS = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [EOS, IM_START, IM_END]

#: Qwen2/Qwen3's pre-tokenizer split: single digits, letter runs, punctuation
#: runs, newlines and spaces (then GPT-2's byte-level mapping).
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
              r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

#: ChatML, as Qwen's template without tools or thinking.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class BuildConfig:
    # corpus
    corpus_chars: int = 4_400_000
    per_file_chars: int = 8_000
    heldout_chars: int = 200_000
    with_topics: bool = True
    # tokenizer
    vocab_size: int = 4096
    # model (every matrix dimension a multiple of 64, for group-size-64 quantization)
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 64
    intermediate_size: int = 768
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    # training
    seed: int = 0
    steps: int = 130
    batch_size: int = 16
    seq_len: int = 256
    learning_rate: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 15
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    log_every: int = 10
    # evaluation: bits per token on at most this many target tokens per corpus
    eval_tokens: int = 32_768
    eval_batch: int = 16
    # quantization
    bits: int = 4
    group_size: int = 64


QUICK = BuildConfig(corpus_chars=300_000, per_file_chars=3_000, heldout_chars=20_000,
                    with_topics=False, steps=4, batch_size=4, seq_len=128, warmup_steps=2,
                    log_every=1, eval_tokens=1024, eval_batch=8)


def log(message: str) -> None:
    print(message, flush=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- tokenizer

def train_tokenizer(docs: list[str], vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(docs, trainer=trainer, length=len(docs))
    return tokenizer


def tokenizer_config(max_length: int) -> dict:
    added = {
        str(i): {"content": tok, "lstrip": False, "normalized": False, "rstrip": False,
                 "single_word": False, "special": True}
        for i, tok in enumerate(SPECIAL_TOKENS)
    }
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "eos_token": EOS,
        "pad_token": EOS,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "model_max_length": max_length,
        "split_special_tokens": False,
        "chat_template": CHAT_TEMPLATE,
    }


def encode_docs(tokenizer, docs: list[str], eos_id: int) -> np.ndarray:
    """Token ids of `docs`, each followed by EOS, as one int32 stream."""
    ids: list[int] = []
    for enc in tokenizer.encode_batch(docs, add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(eos_id)
    return np.asarray(ids, dtype=np.int32)


# --------------------------------------------------------------------------- model

def model_config(cfg: BuildConfig, eos_id: int) -> dict:
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "intermediate_size": cfg.intermediate_size,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "rms_norm_eps": cfg.rms_norm_eps,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "torch_dtype": "float32",
    }


def build_model(config: dict):
    from mlx_lm.models.qwen3 import Model, ModelArgs

    model = Model(ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    return model


def count_parameters(model) -> int:
    return sum(v.size for _, v in tree_flatten(model.parameters()))


def batches(n_windows: int, batch_size: int, steps: int, rng: np.random.Generator):
    """Window indices for each step: successive random permutations (epochs)."""
    order = np.empty(0, dtype=np.int64)
    for step in range(steps):
        while order.size < batch_size:
            order = np.concatenate([order, rng.permutation(n_windows)])
        yield step, order[:batch_size]
        order = order[batch_size:]


def pretrain(model, tokens: np.ndarray, cfg: BuildConfig) -> list[float]:
    seq = cfg.seq_len
    n_windows = (tokens.size - 1) // seq
    if n_windows < cfg.batch_size:
        raise SystemExit(f"corpus too small: {n_windows} windows of {seq} tokens")
    starts = np.arange(n_windows) * seq
    offsets = np.arange(seq + 1)
    rng = np.random.default_rng(cfg.seed)

    warmup = max(1, min(cfg.warmup_steps, cfg.steps - 1))
    peak = cfg.learning_rate
    schedule = optim.join_schedules(
        [optim.linear_schedule(peak / warmup, peak, warmup),
         optim.cosine_decay(peak, max(1, cfg.steps - warmup), peak * cfg.min_lr_ratio)],
        [warmup],
    )
    optimizer = optim.AdamW(learning_rate=schedule, betas=[0.9, 0.95], eps=1e-8,
                            weight_decay=cfg.weight_decay)

    def loss_fn(model, inputs, targets):
        logits = model(inputs)
        return nn.losses.cross_entropy(logits, targets, reduction="mean")

    loss_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state, mx.random.state]

    def step(inputs, targets):
        loss, grads = loss_and_grad(model, inputs, targets)
        grads, _ = optim.clip_grad_norm(grads, cfg.grad_clip)
        optimizer.update(model, grads)
        return loss

    compiled = mx.compile(step, inputs=state, outputs=state)

    losses: list[float] = []
    t0 = time.perf_counter()
    seen = 0
    window_loss, window_steps = 0.0, 0
    for i, rows in batches(n_windows, cfg.batch_size, cfg.steps, rng):
        batch = mx.array(tokens[starts[rows][:, None] + offsets[None, :]])
        inputs, targets = batch[:, :-1], batch[:, 1:]
        if compiled is not None:
            try:
                loss = compiled(inputs, targets)
                mx.eval(state, loss)
            except Exception as exc:  # no C++ compiler for MLX's CPU JIT, say
                if i:
                    raise
                log(f"  mx.compile unavailable ({type(exc).__name__}); training uncompiled")
                compiled = None
        if compiled is None:
            loss = step(inputs, targets)
            mx.eval(state, loss)
        value = loss.item()
        losses.append(value)
        seen += inputs.size
        window_loss += value
        window_steps += 1
        if (i + 1) % cfg.log_every == 0 or i + 1 == cfg.steps:
            elapsed = time.perf_counter() - t0
            log(f"  step {i + 1:4d}/{cfg.steps}  loss {window_loss / window_steps:.3f}  "
                f"lr {schedule(mx.array(i)).item():.2e}  {seen / elapsed:,.0f} tok/s  "
                f"{elapsed:.0f}s")
            window_loss, window_steps = 0.0, 0
    return losses


def bits_per_token(model, tokens: np.ndarray, seq_len: int, max_tokens: int,
                   batch_size: int) -> tuple[float, int]:
    """Mean cross-entropy in bits per target token over non-overlapping windows."""
    n_windows = min((tokens.size - 1) // seq_len, max(1, max_tokens // seq_len))
    if n_windows < 1:
        raise ValueError("too few tokens to measure bits per token")
    total, count = 0.0, 0
    for first in range(0, n_windows, batch_size):
        rows = np.arange(first, min(first + batch_size, n_windows)) * seq_len
        batch = mx.array(tokens[rows[:, None] + np.arange(seq_len + 1)[None, :]])
        logits = model(batch[:, :-1]).astype(mx.float32)
        ce = nn.losses.cross_entropy(logits, batch[:, 1:], reduction="sum")
        total += ce.item()
        count += batch[:, 1:].size
    return total / count / math.log(2), count


def measure_quantized(qmodel, code_ids: np.ndarray, demo_ids: np.ndarray,
                      cfg: BuildConfig) -> dict:
    """Held-out bits/token of the 4-bit model as `mlx_lm.load` returns it.

    MLX's CPU `quantized_matmul` is ~80x slower than dequantizing and calling
    sgemm once more than a few rows go through it, so the full measurement runs
    on the exactly dequantized 4-bit weights (the same numbers up to float
    rounding); two windows are checked against the real quantized kernels.
    """
    from mlx_lm.utils import dequantize_model

    if not any(isinstance(m, nn.QuantizedLinear) for m in qmodel.modules()):
        raise SystemExit("the saved model did not load quantized")
    probe = 2 * cfg.seq_len
    kernel = bits_per_token(qmodel, code_ids, cfg.seq_len, probe, cfg.eval_batch)[0]
    dequantize_model(qmodel)
    exact = bits_per_token(qmodel, code_ids, cfg.seq_len, probe, cfg.eval_batch)[0]
    if abs(kernel - exact) > 1e-3:
        raise SystemExit(f"dequantized and quantized kernels disagree: {kernel} vs {exact}")
    result = {
        "code_4bit": bits_per_token(qmodel, code_ids, cfg.seq_len, cfg.eval_tokens,
                                    cfg.eval_batch)[0],
        "demo_4bit": bits_per_token(qmodel, demo_ids, cfg.seq_len, cfg.eval_tokens,
                                    cfg.eval_batch)[0],
        "kernel_check": abs(kernel - exact),
    }
    log(f"4-bit held-out bits/token:   code {result['code_4bit']:.3f}, "
        f"demo {result['demo_4bit']:.3f} (quantized kernels agree to "
        f"{result['kernel_check']:.1e} bits)")
    return result


# --------------------------------------------------------------------------- output

def save_weights(model, path: Path) -> None:
    weights = dict(sorted(tree_flatten(model.parameters())))
    mx.save_safetensors(str(path), weights, metadata={"format": "mlx"})


def human(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def readme(stats: dict) -> str:
    c = stats["config"]
    q = stats["quantization"]
    lines = [
        "# tscu-tiny-qwen3 (4-bit)",
        "",
        "The embedded default model of tscu: a tiny Qwen3-architecture language model,",
        f"4-bit quantized (affine, group size {q['group_size']}) in the layout of the",
        "mlx-community `*-4bit` models (e.g. `Qwen/Qwen3-4B-MLX-4bit`), so that",
        "`mlx_lm.load()` and the whole LoRA pipeline work offline on a first run.",
        "It is a demonstration model: it writes Python-looking text, nothing more.",
        "",
        "## Provenance",
        "",
        "Built from nothing but the Python standard library by",
        "",
        "    " + stats["command"],
        "",
        "(`scripts/build_tiny_model.py`, corpora in `scripts/stdlib_corpora.py`).",
        f"Python {stats['python']}, mlx {stats['versions']['mlx']}, "
        f"mlx-lm {stats['versions']['mlx_lm']}, tokenizers {stats['versions']['tokenizers']}, "
        f"{stats['machine']}.",
        "The build is seeded and runs a fixed number of steps: rerunning it on the same",
        "machine and Python gives byte-identical `model.safetensors` and `tokenizer.json`",
        "(another Python version has another stdlib, hence another corpus).",
        "",
        "* **Pretraining corpus**: the stdlib's `.py` sources (sorted by path; no",
        "  `site-packages`, `test`, `tests`, `idlelib`, `lib2to3`; each file cut to "
        f"{c['per_file_chars']:,}",
        "  characters), their docstrings and the `pydoc_data.topics` language reference:",
        f"  {stats['corpus']['train_docs']:,} documents, {stats['corpus']['train_chars']:,} "
        f"characters, {stats['corpus']['train_tokens']:,} tokens.",
        f"  Every {corpora.HOLDOUT_EVERY}th source file is held out of tokenizer and model "
        f"training ({stats['corpus']['heldout_files']} files, "
        f"{stats['corpus']['heldout_tokens']:,} tokens).",
        "* **Tokenizer**: byte-level BPE trained with `tokenizers` on the pretraining corpus,",
        f"  vocabulary {stats['tokenizer']['vocab_size']:,}, Qwen's pre-tokenizer regex, "
        "special tokens `<|endoftext|>` (EOS",
        "  and padding), `<|im_start|>`, `<|im_end|>`, a ChatML chat template.",
        "* **Demo corpus** (`tscu_tui/assets/demo/unicode_chars.jsonl`, another domain): one",
        "  `{\"text\": ...}` document per aligned run of 32 code points, one English record",
        "  per character from `unicodedata` (Unicode "
        f"{stats['demo']['unicode_version']}), in code point order:",
        f"  {stats['demo']['docs']:,} documents, {human(stats['demo']['bytes'])}. "
        "The model never saw this domain.",
        "",
        "## Model",
        "",
        f"Qwen3: hidden {c['hidden_size']}, {c['num_hidden_layers']} layers, "
        f"{c['num_attention_heads']} attention heads",
        f"({c['num_key_value_heads']} key/value heads) of dimension {c['head_dim']}, "
        f"MLP {c['intermediate_size']}, vocabulary {c['vocab_size']},",
        f"tied embeddings, RoPE theta {c['rope_theta']:g}, context {c['max_position_embeddings']}: "
        f"**{stats['parameters']:,} parameters**.",
        f"Pretrained for {c['steps']} steps of {c['batch_size']} x {c['seq_len']} tokens "
        f"({stats['train']['tokens']:,} tokens), AdamW",
        f"(peak learning rate {c['learning_rate']:g}, {c['warmup_steps']} warmup steps, cosine "
        f"decay to {c['min_lr_ratio']:g}x,",
        f"weight decay {c['weight_decay']:g}, gradient clipping {c['grad_clip']:g}), seed "
        f"{c['seed']}, float32 on the CPU: final loss",
        f"{stats['train']['final_loss']:.3f} nats/token (mean of the last 10 steps).",
        "",
        "## Measured",
        "",
        "Held-out bits per token (cross-entropy / ln 2 per target token, windows of "
        f"{c['seq_len']} tokens,",
        f"at most {c['eval_tokens']:,} targets):",
        "",
        "| slice | float32, before quantization | 4-bit, as saved (`mlx_lm.load`) |",
        "|---|---|---|",
        f"| stdlib code, held-out files | {stats['bpt']['code_fp32']:.3f} "
        f"| {stats['bpt']['code_4bit']:.3f} |",
        f"| demo corpus (Unicode records), every 20th document "
        f"| {stats['bpt']['demo_fp32']:.3f} | {stats['bpt']['demo_4bit']:.3f} |",
        "",
        "The gap between the two rows is what fine-tuning on the demo corpus closes.",
        "The 4-bit column is measured on the exact dequantization of the saved weights:",
        "MLX's CPU `quantized_matmul` is about 80x slower than float32 sgemm on many rows;",
        "on two windows the quantized kernels give the same value (difference "
        f"{stats['bpt']['kernel_check']:.1e} bits).",
        "Norms and the quantization scales and biases are float32 "
        f"({stats['bits_per_weight']:.2f} bits per weight",
        "in all): MLX's CPU backend runs bfloat16 several times slower than float32.",
        "",
        "| file | size | sha256 |",
        "|---|---|---|",
    ]
    for name, (size, digest) in stats["files"].items():
        lines.append(f"| {name} | {human(size)} | `{digest[:16]}` |")
    lines += [
        "",
        f"Wall time of the build: {stats['wall_s']:.0f} s (training "
        f"{stats['train']['wall_s']:.0f} s, {stats['train']['tok_per_s']:,.0f} tokens/s; "
        f"{stats['blas']}).",
        "",
    ]
    return "\n".join(lines)


def build(cfg: BuildConfig, output: Path, demo_output: Path | None, command: str) -> dict:
    import mlx_lm
    import tokenizers
    from mlx_lm import load as mlx_load
    from mlx_lm.utils import compute_bits_per_weight, quantize_model, save_config

    t_start = time.perf_counter()
    mx.random.seed(cfg.seed)
    log(f"BLAS: {BLAS.detail}")

    # 1-2. corpora
    code = corpora.code_corpus(max_chars=cfg.corpus_chars, per_file_chars=cfg.per_file_chars,
                               heldout_chars=cfg.heldout_chars, with_topics=cfg.with_topics)
    demo_docs = corpora.unicode_documents()
    demo_bytes = "".join(corpora.jsonl_line(d) for d in demo_docs).encode("utf-8")
    log(f"code corpus: {len(code.train)} documents, {code.train_chars:,} chars; held out "
        f"{len(code.heldout)} files; demo corpus: {len(demo_docs)} documents, "
        f"{len(demo_bytes):,} bytes")
    if demo_output is not None:
        atomic_write_bytes(demo_output / DEMO_FILE, demo_bytes)
        (demo_output / DEMO_FILE).chmod(0o644)  # mkstemp makes it 0600
        log(f"wrote {demo_output / DEMO_FILE}")

    # 3. tokenizer
    t0 = time.perf_counter()
    tok = train_tokenizer(code.train, cfg.vocab_size)
    eos_id = tok.token_to_id(EOS)
    log(f"tokenizer: {tok.get_vocab_size()} tokens in {time.perf_counter() - t0:.1f}s")
    if tok.get_vocab_size() > cfg.vocab_size:
        raise SystemExit("tokenizer vocabulary larger than the model's")
    train_ids = encode_docs(tok, code.train, eos_id)
    heldout_ids = encode_docs(tok, code.heldout, eos_id)
    demo_ids = encode_docs(tok, corpora.unicode_heldout(demo_docs), eos_id)
    log(f"tokens: train {train_ids.size:,}, held-out code {heldout_ids.size:,}, "
        f"held-out demo {demo_ids.size:,}")

    # 4. pretraining
    config = model_config(cfg, eos_id)
    model = build_model(config)
    n_params = count_parameters(model)
    log(f"model: qwen3, {n_params:,} parameters; training {cfg.steps} steps of "
        f"{cfg.batch_size}x{cfg.seq_len}")
    t0 = time.perf_counter()
    losses = pretrain(model, train_ids, cfg)
    train_s = time.perf_counter() - t0
    model.eval()

    def measure(m, ids):
        return bits_per_token(m, ids, cfg.seq_len, cfg.eval_tokens, cfg.eval_batch)[0]

    bpt = {"code_fp32": measure(model, heldout_ids), "demo_fp32": measure(model, demo_ids)}
    log(f"float32 held-out bits/token: code {bpt['code_fp32']:.3f}, "
        f"demo {bpt['demo_fp32']:.3f}")

    # 5. quantize and save
    model, config = quantize_model(model, config, cfg.group_size, cfg.bits)
    with atomic_directory(output, replace=True) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it 0700
        save_weights(model, tmp / "model.safetensors")
        save_config(config, tmp / "config.json")
        tok.save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(
            json.dumps(tokenizer_config(cfg.max_position_embeddings), indent=2,
                       ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "special_tokens_map.json").write_text(json.dumps({
            "eos_token": EOS, "pad_token": EOS,
            "additional_special_tokens": [IM_START, IM_END],
        }, indent=2) + "\n", encoding="utf-8")

        # 6. measure the saved model as mlx_lm loads it
        qmodel, qtok = mlx_load(str(tmp))
        for sample in (code.heldout[0][:2000], demo_docs[7][:2000]):
            if qtok.decode(qtok.encode(sample)) != sample:
                raise SystemExit("the saved tokenizer does not round-trip text")
        bpt.update(measure_quantized(qmodel, heldout_ids, demo_ids, cfg))
        files = {p.name: (p.stat().st_size, sha256(p)) for p in sorted(tmp.iterdir())}
        stats = {
            "command": command,
            "config": asdict(cfg),
            "quantization": {"bits": cfg.bits, "group_size": cfg.group_size},
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}",
            "blas": BLAS.detail.split(" from ")[0],
            "versions": {"mlx": mx.__version__, "mlx_lm": mlx_lm.__version__,
                         "tokenizers": tokenizers.__version__},
            "corpus": {"train_docs": len(code.train), "train_chars": code.train_chars,
                       "train_tokens": int(train_ids.size), "heldout_files": len(code.heldout),
                       "heldout_tokens": int(heldout_ids.size)},
            "tokenizer": {"vocab_size": tok.get_vocab_size()},
            "demo": {"docs": len(demo_docs), "bytes": len(demo_bytes),
                     "unicode_version": __import__("unicodedata").unidata_version},
            "parameters": n_params,
            "bits_per_weight": compute_bits_per_weight(model),
            "train": {"tokens": cfg.steps * cfg.batch_size * cfg.seq_len, "wall_s": train_s,
                      "tok_per_s": cfg.steps * cfg.batch_size * cfg.seq_len / train_s,
                      "final_loss": float(np.mean(losses[-10:]))},
            "bpt": bpt,
            "files": files,
            "wall_s": time.perf_counter() - t_start,
        }
        (tmp / "README.md").write_text(readme(stats), encoding="utf-8")
    log(f"wrote {output}")
    for name, (size, digest) in files.items():
        log(f"  {name:26s} {size:>10,} bytes  sha256 {digest[:16]}")
    log(f"parameters {n_params:,}; wall time {stats['wall_s']:.0f}s "
        f"(training {train_s:.0f}s)")
    return stats


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=None,
                        help=f"model folder to write (default: {DEFAULT_OUTPUT.relative_to(REPO)})")
    parser.add_argument("--demo-output", type=Path, default=None,
                        help="folder for the demo corpus (default: "
                             f"{DEFAULT_DEMO_OUTPUT.relative_to(REPO)}; with --quick, none)")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--quick", action="store_true",
                        help="small corpus and few steps: a working model in seconds")
    args = parser.parse_args(argv)
    if args.quick and args.output is None:
        parser.error("--quick needs --output (it must not replace the embedded model)")
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = QUICK if args.quick else BuildConfig()
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps, warmup_steps=min(cfg.warmup_steps, args.steps))
    output = args.output or DEFAULT_OUTPUT
    demo_output = args.demo_output or (None if args.quick else DEFAULT_DEMO_OUTPUT)
    command = "python scripts/build_tiny_model.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    build(cfg, output.resolve(), demo_output.resolve() if demo_output else None, command.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
