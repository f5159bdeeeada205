"""The GGUF exports, proved in llama.cpp itself (llama-cpp-python, which compiles it).

The reference is what tscu trained: MLX's base + adapter, float32. llama.cpp reads
the base GGUF with the exported LoRA GGUF (`--format gguf-lora`), or the merged
GGUF (`--format gguf`), and must give the same logits on the same tokens, and the
same greedy continuation. A wrong q/k row permutation must fail the same checks.

Tolerances (max |logit difference|, logits of magnitude 3-40), from what llama.cpp
does differently, not from what the export does: its CPU kernels multiply quantized
weights by activations quantized to 8 bits (Q8_0/Q8_1 blocks), F16 weights by F16
activations. So the base GGUF alone is already off MLX by `gap`, measured per file
below; the exports must add no more than that gap's order again. Measured on this
machine (2 cores, AVX2 build): see each assertion's printout.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tscu_tui.engine.hub import gguf_base
from tscu_tui.engine.hub.export import export_run
from tscu_tui.engine.models import gguf_cache
from tscu_tui.engine.models.cpu_fastpath import prepare_for_cpu
from tscu_tui.engine.models.gguf import unpermute_rows
from tscu_tui.engine.models.runtime import mx

llama_cpp = pytest.importorskip(
    "llama_cpp", reason="llama_cpp (llama-cpp-python) is not importable, so the GGUF "
    "exports are not proved in llama.cpp here; `make test` installs it "
    "(pip install -e '.[llama-cpp]', which compiles llama.cpp)")

THREADS = min(2, os.cpu_count() or 1)


def llama_logits(model: Path, ids: np.ndarray, lora: Path | None = None) -> np.ndarray:
    """llama.cpp's logits for every position (F32 KV cache: no rounding of its own there)."""
    llm = llama_cpp.Llama(model_path=str(model), lora_path=str(lora) if lora else None,
                          n_ctx=max(64, len(ids) + 16), logits_all=True, verbose=False,
                          n_threads=THREADS, type_k=0, type_v=0, flash_attn=False)
    try:
        llm.eval([int(i) for i in ids])
        return np.array(llm.scores[:len(ids)], dtype=np.float32)
    finally:
        llm.close()


def llama_greedy(model: Path, prompt: list[int], n: int, lora: Path | None = None
                 ) -> list[int]:
    """n tokens from llama.cpp's own greedy sampler."""
    llm = llama_cpp.Llama(model_path=str(model), lora_path=str(lora) if lora else None,
                          n_ctx=len(prompt) + n + 16, verbose=False, n_threads=THREADS,
                          type_k=0, type_v=0, flash_attn=False)
    try:
        out = []
        for token in llm.generate(prompt, temp=0.0, repeat_penalty=1.0):
            out.append(int(token))
            if len(out) == n:
                return out
        return out
    finally:
        llm.close()


def _mlx_model(folder: Path, adapter: Path | None):  # type: ignore[no-untyped-def]
    from mlx_lm import load

    model, _ = load(str(folder), adapter_path=str(adapter) if adapter else None)
    prepare_for_cpu(model)  # float32, as tscu trains
    return model


def mlx_logits(folder: Path, ids: np.ndarray, adapter: Path | None = None) -> np.ndarray:
    model = _mlx_model(folder, adapter)
    return np.array(model(mx.array(ids)[None]).astype(mx.float32))[0]


def mlx_greedy(folder: Path, prompt: list[int], n: int, adapter: Path | None = None
               ) -> tuple[list[int], float]:
    """n greedy tokens from MLX, and the smallest top-1 margin on the way."""
    model = _mlx_model(folder, adapter)
    tokens, margin = list(prompt), float("inf")
    for _ in range(n):
        logits = np.array(model(mx.array(tokens)[None]).astype(mx.float32))[0, -1]
        top2 = np.sort(logits)[-2:]
        margin = min(margin, float(top2[1] - top2[0]))
        tokens.append(int(logits.argmax()))
    return tokens[len(prompt):], margin


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def _ids(vocab: int, n: int = 40, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, vocab, size=n)


def check(label: str, got: np.ndarray, expected: np.ndarray, base_llama: np.ndarray,
          base_mlx: np.ndarray, slack: float) -> float:
    """llama.cpp with the export vs MLX base + adapter: within `slack` times llama.cpp's own
    gap on the bare base (plus a floor for a float32-exact base), and the adapter's effect
    far above that bound, so a missing or misplaced adapter cannot pass."""
    gap = _diff(base_llama, base_mlx)
    bound = slack * gap + 2e-3
    diff, effect = _diff(got, expected), _diff(expected, base_mlx)
    print(f"{label}: max |logit diff| {diff:.3g} (bound {bound:.3g}; llama.cpp's gap on the "
          f"bare base {gap:.3g}); adapter effect {effect:.3g}")
    assert diff < bound
    assert effect > 5 * bound
    return bound


# ---------------------------------------------------------------- synthetic llama/qwen2/qwen3

@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_lora_gguf_gives_mlx_logits_in_llama_cpp(gguf_run, arch, tmp_path):
    base, run = gguf_run(arch)
    folder = gguf_cache.imported_model_dir(str(base))
    ids = _ids(4096)
    out = export_run(run, "gguf-lora", output=tmp_path / "lora")
    check(f"{arch} LoRA GGUF", llama_logits(base, ids, out / "adapter.gguf"),
          mlx_logits(folder, ids, run), llama_logits(base, ids), mlx_logits(folder, ids),
          slack=2.0)


@pytest.mark.parametrize(("arch", "quant"), [
    ("llama", "f16"), ("llama", "q8_0"), ("qwen2", "q8_0"), ("qwen3", "q4_0")])
def test_merged_gguf_gives_mlx_logits_in_llama_cpp(gguf_run, arch, quant, tmp_path):
    base, run = gguf_run(arch)
    folder = gguf_cache.imported_model_dir(str(base))
    ids = _ids(4096)
    out = export_run(run, "gguf", output=tmp_path / quant, quant=quant)
    # requantizing adds its own rounding: Q4_0 steps are 1/8 of a block's range
    check(f"{arch} merged {quant}", llama_logits(out / "model.gguf", ids),
          mlx_logits(folder, ids, run), llama_logits(base, ids), mlx_logits(folder, ids),
          slack={"f16": 2.0, "q8_0": 3.0, "q4_0": 6.0}[quant])


@pytest.mark.parametrize("wrong", ["none", "inverse"])
def test_a_wrong_q_k_permutation_fails_in_llama_cpp(gguf_run, wrong, tmp_path, monkeypatch):
    """Leaving lora_b's q/k rows in Hugging Face order, or permuting them the wrong way
    round (the import's inverse), must be caught by the checks above."""
    base, run = gguf_run("llama")
    folder = gguf_cache.imported_model_dir(str(base))
    ids = _ids(4096)
    expected, base_mlx = mlx_logits(folder, ids, run), mlx_logits(folder, ids)
    bound = 2.0 * _diff(llama_logits(base, ids), base_mlx) + 2e-3
    mistake = {"none": lambda rows, heads: rows,
               "inverse": lambda rows, heads: np.array(unpermute_rows(mx.array(rows), heads))}
    monkeypatch.setattr(gguf_base, "permute_rows", mistake[wrong])
    lora = export_run(run, "gguf-lora", output=tmp_path / "lora")
    merged = export_run(run, "gguf", output=tmp_path / "f16", quant="f16")
    for label, got in (("LoRA", llama_logits(base, ids, lora / "adapter.gguf")),
                       ("merged", llama_logits(merged / "model.gguf", ids))):
        diff = _diff(got, expected)
        print(f"permutation '{wrong}', {label}: max |logit diff| {diff:.3g} (bound {bound:.3g})")
        assert diff > 3 * bound


# ---------------------------------------------------------------- SmolLM2-135M

def test_smollm2_exports_match_mlx_and_generate_the_same_in_llama_cpp(real_run, smollm2_dir,
                                                                      tmp_path):
    from pydoc_data.topics import topics

    from mlx_lm.utils import load_tokenizer

    run, _ = real_run
    base = gguf_cache.gguf_file("smollm2-135m")
    tokenizer = load_tokenizer(smollm2_dir)
    ids = np.array(tokenizer.encode(topics["assert"])[:48])
    expected, base_mlx = mlx_logits(smollm2_dir, ids, run), mlx_logits(smollm2_dir, ids)
    base_llama = llama_logits(base, ids)
    lora = export_run(run, "gguf-lora", output=tmp_path / "lora") / "adapter.gguf"
    check("SmolLM2 LoRA GGUF", llama_logits(base, ids, lora), expected, base_llama, base_mlx,
          slack=2.0)
    merged = {q: export_run(run, "gguf", output=tmp_path / q, quant=q) / "model.gguf"
              for q in ("q8_0", "q4_0")}
    check("SmolLM2 merged q8_0", llama_logits(merged["q8_0"], ids), expected, base_llama,
          base_mlx, slack=3.0)
    check("SmolLM2 merged q4_0", llama_logits(merged["q4_0"], ids), expected, base_llama,
          base_mlx, slack=6.0)

    prompt = tokenizer.encode("The assert statement is")
    want, margin = mlx_greedy(smollm2_dir, prompt, 8, run)
    print(f"SmolLM2 greedy, MLX: {tokenizer.decode(want)!r} (smallest top-1 margin "
          f"{margin:.3g})")
    assert llama_greedy(base, prompt, 8, lora) == want
    assert llama_greedy(merged["q8_0"], prompt, 8) == want


# ---------------------------------------------------------------- an mlx-lm folder base

def test_a_merged_mlx_folder_base_runs_in_llama_cpp(tiny_run, tmp_path):
    """The embedded tiny Qwen3 (4-bit MLX folder, no GGUF anywhere): metadata and tokenizer
    written by tscu, and llama.cpp tokenizes and computes as MLX does."""
    from mlx_lm.utils import load_tokenizer

    from tscu_tui.engine.config.assets import DEMO_CORPUS, EMBEDDED_MODEL_DIR

    tokenizer = load_tokenizer(EMBEDDED_MODEL_DIR)
    text = DEMO_CORPUS.read_text(encoding="utf-8")[:1500]
    ids = np.array(tokenizer.encode(text)[:48])
    expected = mlx_logits(EMBEDDED_MODEL_DIR, ids, tiny_run)
    base_mlx = mlx_logits(EMBEDDED_MODEL_DIR, ids)
    f16 = export_run(tiny_run, "gguf", output=tmp_path / "f16", quant="f16") / "model.gguf"
    llm = llama_cpp.Llama(model_path=str(f16), vocab_only=True, verbose=False)
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == tokenizer.encode(text)
    llm.close()
    got = llama_logits(f16, ids)
    diff, effect = _diff(got, expected), _diff(expected, base_mlx)
    print(f"tiny Qwen3 (MLX folder) merged f16: max |logit diff| {diff:.3g}; adapter effect "
          f"{effect:.3g}")
    assert diff < 0.05 and effect > 0.5
    q4 = export_run(tiny_run, "gguf", output=tmp_path / "q4", quant="q4_0") / "model.gguf"
    diff = _diff(llama_logits(q4, ids), expected)
    print(f"tiny Qwen3 (MLX folder) merged q4_0: max |logit diff| {diff:.3g}")
    assert diff < 0.5 * effect
