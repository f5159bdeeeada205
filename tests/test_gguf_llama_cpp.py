"""The GGUF exports, proved in llama.cpp itself (llama-cpp-python, which compiles it).

The reference is what tscu trained: MLX's base + adapter in float32. llama.cpp reads
the base GGUF with the exported LoRA GGUF (`--format gguf-lora`), or the merged GGUF
(`--format gguf`), and must give the same logits on the same tokens and the same
greedy continuation; a wrong q/k row permutation must fail the same checks.

Two kinds of base, two kinds of bound:
- F32 bases (synthetic llama and qwen2): llama.cpp multiplies in float32 too, so the
  LoRA GGUF must match to float rounding (measured ~3e-6; bound 1e-3).
- Quantized bases (SmolLM2's Q4_1, synthetic 4-bit qwen3): llama.cpp's CPU kernels
  multiply quantized weights by activations rounded to 8 bits, so even the bare base
  GGUF is off MLX by a noise floor, `gap` (SmolLM2: mean |logit diff| 0.17, max 1.2).
  The exports must stay within 1.5 x that floor (mean over all logits), where a wrong
  permutation lands at 2.6 x (measured on SmolLM2).
Greedy generation is compared where llama.cpp's rounding stays below MLX's top-1 margins
(the F32 base with the LoRA GGUF, SmolLM2's F16 merge); on a 4-bit base near-ties may
swap, which says nothing about the export.
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


def mlx_greedy(model, prompt: list[int], n: int) -> tuple[list[int], float]:  # type: ignore[no-untyped-def]
    """n greedy tokens from an MLX model, and the smallest top-1 margin on the way."""
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


def _mean(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def exact_check(label: str, got: np.ndarray, expected: np.ndarray, base_mlx: np.ndarray,
                bound: float) -> None:
    """Against an F32 base: within `bound`, and the adapter's effect far above it."""
    diff, effect = _diff(got, expected), _diff(expected, base_mlx)
    print(f"{label}: max |logit diff| {diff:.3g} (bound {bound:.3g}); adapter effect "
          f"{effect:.3g}")
    assert diff < bound and effect > 20 * bound


def noisy_bound(base_llama: np.ndarray, base_mlx: np.ndarray, factor: float = 1.5) -> float:
    """`factor` x llama.cpp's mean |logit diff| from MLX on the bare quantized base."""
    return factor * _mean(base_llama, base_mlx)


def noisy_check(label: str, got: np.ndarray, expected: np.ndarray, base_mlx: np.ndarray,
                bound: float) -> None:
    diff, effect = _mean(got, expected), _mean(expected, base_mlx)
    print(f"{label}: mean |logit diff| {diff:.3g} (bound {bound:.3g}, from llama.cpp's own on "
          f"the bare base; max {_diff(got, expected):.3g}); adapter effect {effect:.3g}")
    assert diff < bound and effect > 4 * bound


# ---------------------------------------------------------------- synthetic llama/qwen2/qwen3

@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_lora_gguf_is_exact_in_llama_cpp_on_an_f32_base(gguf_run, arch, tmp_path):
    base, run = gguf_run(arch)
    folder = gguf_cache.imported_model_dir(str(base))
    ids = _ids(4096)
    out = export_run(run, "gguf-lora", output=tmp_path / "lora")
    exact_check(f"{arch} LoRA GGUF", llama_logits(base, ids, out / "adapter.gguf"),
                mlx_logits(folder, ids, run), mlx_logits(folder, ids), bound=1e-3)
    prompt = [int(i) for i in ids[:12]]
    want, margin = mlx_greedy(_mlx_model(folder, run), prompt, 8)
    assert margin > 1e-3  # no near-tie that float rounding could swap
    assert llama_greedy(base, prompt, 8, out / "adapter.gguf") == want


@pytest.mark.parametrize(("arch", "quant", "bound"), [
    ("llama", "f16", 0.005), ("qwen2", "q8_0", 0.1)])
def test_merged_gguf_matches_in_llama_cpp_on_an_f32_base(gguf_run, arch, quant, bound,
                                                          tmp_path):
    """Merged and rounded once to F16 or Q8_0 (and, in llama.cpp, F16 or 8-bit
    activations): the bound is that rounding's, measured 0.0018 (f16) and 0.053 (q8_0)."""
    base, run = gguf_run(arch)
    folder = gguf_cache.imported_model_dir(str(base))
    ids = _ids(4096)
    out = export_run(run, "gguf", output=tmp_path / quant, quant=quant)
    exact_check(f"{arch} merged {quant}", llama_logits(out / "model.gguf", ids),
                mlx_logits(folder, ids, run), mlx_logits(folder, ids), bound=bound)


@pytest.mark.parametrize("wrong", ["none", "inverse"])
def test_a_wrong_q_k_permutation_fails_in_llama_cpp(gguf_run, wrong, tmp_path, monkeypatch):
    """lora_b's q/k rows left in Hugging Face order, or permuted the wrong way round
    (the import's inverse), fail the bounds the right export passes (LoRA: 0.027 against
    1e-3; merged f16: 0.027 against 0.005; the random model's attention barely uses q/k,
    SmolLM2's below does)."""
    base, run = gguf_run("llama")
    folder = gguf_cache.imported_model_dir(str(base))
    ids = _ids(4096)
    expected = mlx_logits(folder, ids, run)
    mistake = {"none": lambda rows, heads: rows,
               "inverse": lambda rows, heads: np.array(unpermute_rows(mx.array(rows), heads))}
    monkeypatch.setattr(gguf_base, "permute_rows", mistake[wrong])
    lora = export_run(run, "gguf-lora", output=tmp_path / "lora")
    merged = export_run(run, "gguf", output=tmp_path / "f16", quant="f16")
    for label, got, bound in (("LoRA", llama_logits(base, ids, lora / "adapter.gguf"), 1e-3),
                              ("merged f16", llama_logits(merged / "model.gguf", ids), 0.005)):
        diff = _diff(got, expected)
        print(f"permutation '{wrong}', {label}: max |logit diff| {diff:.3g} (bound {bound})")
        assert diff > 3 * bound


def test_a_4_bit_base_in_llama_cpp(gguf_run, tmp_path):
    """qwen3 with Q4_0 weights: the LoRA GGUF within llama.cpp's own noise floor; the Q4_0
    merge read by llama.cpp as tscu's importer reads the same file (so the file says what
    it should), and how much requantizing to 4 bits moved it off the trained model."""
    from tscu_tui.engine.models.gguf import import_gguf

    base, run = gguf_run("qwen3")
    folder = gguf_cache.imported_model_dir(str(base))
    ids = _ids(4096)
    expected, base_mlx = mlx_logits(folder, ids, run), mlx_logits(folder, ids)
    # 3 x: this random model's adapter sharpens attention, which amplifies llama.cpp's
    # activation rounding (measured 1.0-1.6 x the bare base's); qwen3's layout is held to
    # float rounding nowhere else, so the merge below is checked file-against-file too
    bound = noisy_bound(llama_logits(base, ids), base_mlx, factor=3.0)
    lora = export_run(run, "gguf-lora", output=tmp_path / "lora") / "adapter.gguf"
    noisy_check("qwen3 Q4_0 LoRA GGUF", llama_logits(base, ids, lora), expected, base_mlx,
                bound)
    merged = export_run(run, "gguf", output=tmp_path / "q4", quant="q4_0") / "model.gguf"
    import_gguf(merged, tmp_path / "merged-mlx")
    as_read = mlx_logits(tmp_path / "merged-mlx", ids)
    got = llama_logits(merged, ids)
    diff = _mean(got, as_read)
    print(f"qwen3 merged q4_0: llama.cpp vs MLX on the same file, mean |logit diff| {diff:.3g} "
          f"(bound {bound:.3g}); vs the trained base + adapter {_mean(as_read, expected):.3g}"
          f" (adapter effect {_mean(expected, base_mlx):.3g})")
    assert diff < bound


# ---------------------------------------------------------------- SmolLM2-135M

def test_smollm2_exports_match_mlx_and_generate_the_same_in_llama_cpp(real_run, smollm2_dir,
                                                                      tmp_path, monkeypatch):
    from pydoc_data.topics import topics

    from mlx_lm.utils import load_tokenizer

    run, _ = real_run
    base = gguf_cache.gguf_file("smollm2-135m")
    tokenizer = load_tokenizer(smollm2_dir)
    ids = np.array(tokenizer.encode(topics["assert"])[:48])
    trained = _mlx_model(smollm2_dir, run)
    expected = np.array(trained(mx.array(ids)[None]).astype(mx.float32))[0]
    base_mlx = mlx_logits(smollm2_dir, ids)
    bound = noisy_bound(llama_logits(base, ids), base_mlx)
    lora = export_run(run, "gguf-lora", output=tmp_path / "lora") / "adapter.gguf"
    noisy_check("SmolLM2 LoRA GGUF", llama_logits(base, ids, lora), expected, base_mlx, bound)
    merged = {q: export_run(run, "gguf", output=tmp_path / q, quant=q) / "model.gguf"
              for q in ("q8_0", "f16")}
    noisy_check("SmolLM2 merged q8_0", llama_logits(merged["q8_0"], ids), expected, base_mlx,
                bound)
    f16_logits = llama_logits(merged["f16"], ids)
    noisy_check("SmolLM2 merged f16", f16_logits, expected, base_mlx, bound / 5)
    # Greedy decoding in llama.cpp's own sampler, on the F16 merge, from the prompt whose
    # top-1 margins in MLX are widest: they must exceed twice the F16 file's largest logit
    # error, so agreement is owed, not luck. (On the 4-bit base llama.cpp's 8-bit
    # activations move logits by up to ~1, enough to swap near-tied tokens.)
    candidates = ["The pass statement is a null operation;", "The with statement",
                  "The assert statement is", "The return statement"]
    runs = [(mlx_greedy(trained, tokenizer.encode(text), 8), text) for text in candidates]
    (want, margin), text = max(runs, key=lambda r: r[0][1])
    error = _diff(f16_logits, expected)
    print(f"SmolLM2 greedy from {text!r}, MLX: {tokenizer.decode(want)!r} (smallest top-1 "
          f"margin {margin:.3g}; f16 merge's largest logit error {error:.3g})")
    assert margin > 2 * error
    assert llama_greedy(merged["f16"], tokenizer.encode(text), 8) == want

    monkeypatch.setattr(gguf_base, "permute_rows", lambda rows, heads: rows)
    wrong = export_run(run, "gguf-lora", output=tmp_path / "wrong") / "adapter.gguf"
    diff = _mean(llama_logits(base, ids, wrong), expected)
    print(f"SmolLM2 LoRA GGUF without the q/k permutation: mean |logit diff| {diff:.3g} "
          f"(bound {bound:.3g})")
    assert diff > bound


# ---------------------------------------------------------------- an mlx-lm folder base

def test_a_merged_mlx_folder_base_runs_in_llama_cpp(tiny_run, tmp_path):
    """The embedded tiny Qwen3 (a 4-bit MLX folder, no GGUF anywhere): the metadata and
    tokenizer tscu writes make llama.cpp tokenize and compute as MLX does."""
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
    # dequantized 4-bit weights + delta in F16, F16 activations: measured 0.002
    exact_check("tiny Qwen3 (MLX folder) merged f16", llama_logits(f16, ids), expected,
                base_mlx, bound=0.01)
