"""Everything downstream works on a real imported model: SmolLM2-135M from its GGUF.

prepare (pydoc, the built-in real corpus) -> train (held-out BPT falls) -> mlx_lm
generate with the adapter -> PEFT export applied by transformers + PEFT to the
transformers model read from the same GGUF -> fused export -> a model card that
names the GGUF. Short blocks and few steps keep it under a minute of training.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tscu_tui.cli import main
from tscu_tui.engine.data import PreparedDataset
from tscu_tui.engine.hub.export import export_run
from tscu_tui.engine.models import gguf_cache
from tscu_tui.engine.models.cpu_fastpath import prepare_for_cpu
from tscu_tui.engine.models.runtime import mx

MODEL = "smollm2-135m"  # pydoc_data and real_run (the trained run) are in conftest.py
# Float32 on both sides, so only summation order differs; relative to the largest
# logit (the adapter trained at lr 1e-3 makes them large): measured ~3e-5. A wrong
# alpha or layout is off by the adapter's whole effect, thousands of times more.
RELATIVE_TOLERANCE = 1e-4


def test_pydoc_is_real_english_prepared_with_the_real_tokenizer(pydoc_data):
    meta = PreparedDataset.open(pydoc_data).meta
    assert meta.model == MODEL and meta.vocab_size == 49152
    assert meta.source["dataset"] == "pydoc" and meta.source["topics"] > 50
    assert meta.split("train").tokens > 20_000


def test_training_lowers_heldout_bits_per_token(real_run):
    _, events = real_run
    bpts = [e.heldout_bpt for e in events if type(e).__name__ == "EvalEvent"]
    print("held-out BPT:", [round(b, 3) for b in bpts])
    assert len(bpts) == 3 and bpts[0] < 6.0  # a pretrained model: far below log2(49152)
    assert bpts[-1] < bpts[0] - 0.05


def test_mlx_lm_generates_with_the_adapter(real_run, smollm2_dir):
    run, _ = real_run
    result = subprocess.run(
        [sys.executable, "-m", "mlx_lm", "generate", "--model", str(smollm2_dir),
         "--adapter-path", str(run), "--prompt", "The assert statement", "--max-tokens", "8"],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Generation:" in result.stdout


def test_peft_export_matches_on_the_transformers_model_from_the_same_gguf(real_run,
                                                                          smollm2_dir):
    torch = pytest.importorskip("torch")
    from mlx_lm import load
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run, _ = real_run
    ids = np.random.default_rng(0).integers(0, 49152, size=(2, 32))

    def mlx_logits(adapter: Path | None) -> np.ndarray:
        model, _ = load(str(smollm2_dir), adapter_path=str(adapter) if adapter else None)
        prepare_for_cpu(model)
        return np.array(model(mx.array(ids)).astype(mx.float32))

    peft_dir = export_run(run, "peft")
    config = json.loads((peft_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    gguf = gguf_cache.gguf_file(MODEL)
    base = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(peft_dir)).eval()
    with torch.no_grad():
        got = model(torch.tensor(ids)).logits.numpy()
    expected = mlx_logits(run)
    effect = np.abs(expected - mlx_logits(None)).max()
    diff = np.abs(got - expected).max()
    tolerance = RELATIVE_TOLERANCE * np.abs(expected).max()
    print(f"PEFT on transformers-from-GGUF vs MLX base + adapter: {diff:.2g} (tolerance "
          f"{tolerance:.2g}); adapter effect {effect:.2g}")
    assert diff < tolerance and effect > 100 * tolerance


def test_fused_export_of_an_imported_model_loads_and_generates(real_run, tmp_path):
    from mlx_lm import generate, load

    run, _ = real_run
    out = export_run(run, "fused", output=tmp_path / "fused")
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"]["model.embed_tokens"]["bits"] == 8  # per-layer bits kept
    model, tokenizer = load(str(out))
    assert generate(model, tokenizer, prompt="The with statement", max_tokens=4)


def test_the_model_card_names_the_gguf_source(real_run):
    run, _ = real_run
    card = (run / "README.md").read_text()
    summary = json.loads((run / "mlx_training_summary.json").read_text())
    source = summary["base_model_source"]
    assert source["source"]["file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "**GGUF source**: `SmolLM2-135M-Instruct.Q4_1.gguf`" in card
    assert source["source"]["sha256"][:16] in card and "Q4_1 x210" in card
    assert 'license: "apache-2.0"' in card
    assert '"$(tscu import smollm2-135m)"' in card  # how to point mlx-lm at the base


def test_tscu_import_prints_the_cached_folder(smollm2_dir, capsys):
    assert main(["import", MODEL]) == 0
    assert capsys.readouterr().out.strip() == str(smollm2_dir)


def test_samples_of_the_real_model_answer_at_each_evaluation(real_run):
    run, events = real_run
    samples = [e for e in events if type(e).__name__ == "SampleEvent"]
    assert [s.step for s in samples] == [0, 5, 10]
    assert len(samples[-1].prompts) == 3 and all(a.strip() for a in samples[-1].answers)
    assert "## Samples" in (run / "README.md").read_text()
