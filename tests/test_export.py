"""Exports of a real tiny run: mlx-lm pair, PEFT (proved against transformers), fused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tscu_tui.engine.config.assets import EMBEDDED_MODEL_DIR
from tscu_tui.engine.hub import ExportError
from tscu_tui.engine.hub.export import export_run
from tscu_tui.engine.hub.peft_export import full_precision_base, peft_key
from tscu_tui.engine.models.runtime import mx

# The PEFT adapter must reproduce MLX's logits to float32 rounding (measured ~6e-6);
# a wrong lora_alpha or layout is off by a good fraction of the adapter's effect (~0.25).
LOGIT_TOLERANCE = 1e-3


@pytest.fixture
def run_dir(tiny_run: Path) -> Path:
    return tiny_run


@pytest.fixture(scope="module")
def token_ids() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4096, size=(2, 48))


def mlx_logits(ids: np.ndarray, adapter: Path | None = None, model_path: Path = EMBEDDED_MODEL_DIR
               ) -> np.ndarray:
    from mlx_lm import load

    model, _ = load(str(model_path), adapter_path=str(adapter) if adapter else None)
    return np.array(model(mx.array(ids)).astype(mx.float32))


def transformers_base(folder: Path) -> Path:
    """The tiny MLX base, dequantized to float32, as a transformers Qwen3 checkpoint."""
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.utils import dequantize_model

    model, _ = load(str(EMBEDDED_MODEL_DIR))
    weights = {k: v.astype(mx.float32)
               for k, v in tree_flatten(dequantize_model(model).parameters())}
    folder.mkdir(parents=True)
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "pt"})
    config = json.loads((EMBEDDED_MODEL_DIR / "config.json").read_text())
    for key in ("quantization", "quantization_config"):
        config.pop(key)
    (folder / "config.json").write_text(json.dumps({**config, "torch_dtype": "float32"}))
    return folder


def peft_logits(base: Path, adapter: Path, ids: np.ndarray) -> np.ndarray:
    torch = pytest.importorskip("torch")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.numpy()


def test_peft_export_matches_mlx_base_plus_adapter(run_dir, token_ids, tmp_path):
    peft_dir = export_run(run_dir, "peft")
    assert peft_dir == run_dir / "export" / "peft"
    hf_base = transformers_base(tmp_path / "hf-base")

    expected = mlx_logits(token_ids, adapter=run_dir)
    got = peft_logits(hf_base, peft_dir, token_ids)
    effect = np.abs(expected - mlx_logits(token_ids)).max()
    diff = np.abs(got - expected).max()
    print(f"max |logit diff| peft vs mlx: {diff:.3g}; adapter effect {effect:.3g}")
    assert diff < LOGIT_TOLERANCE
    assert effect > 20 * LOGIT_TOLERANCE  # the test could tell a missing adapter apart

    # A deliberately wrong export must not match: alpha as r (scale 1, not 2) ...
    wrong_alpha = tmp_path / "wrong-alpha"
    shutil.copytree(peft_dir, wrong_alpha)
    config = json.loads((wrong_alpha / "adapter_config.json").read_text())
    (wrong_alpha / "adapter_config.json").write_text(
        json.dumps({**config, "lora_alpha": config["r"]}))
    assert np.abs(peft_logits(hf_base, wrong_alpha, token_ids) - expected).max() \
        > 20 * LOGIT_TOLERANCE
    # ... or lora_a reshaped instead of transposed (same shape, wrong layout).
    wrong_layout = tmp_path / "wrong-layout"
    shutil.copytree(peft_dir, wrong_layout)
    mlx_weights = mx.load(str(run_dir / "adapters.safetensors"))
    tensors = dict(mx.load(str(peft_dir / "adapter_model.safetensors")))
    for key, value in mlx_weights.items():
        if key.endswith("lora_a"):
            tensors[peft_key(key)] = value.reshape(value.shape[1], value.shape[0])
    mx.save_safetensors(str(wrong_layout / "adapter_model.safetensors"), tensors,
                        metadata={"format": "pt"})
    assert np.abs(peft_logits(hf_base, wrong_layout, token_ids) - expected).max() \
        > 20 * LOGIT_TOLERANCE


def test_peft_export_config_and_keys(run_dir):
    peft_dir = export_run(run_dir, "peft", base_model="Qwen/Qwen3-4B")
    config = json.loads((peft_dir / "adapter_config.json").read_text())
    adapter = json.loads((run_dir / "adapter_config.json").read_text())["lora_parameters"]
    assert config["peft_type"] == "LORA" and config["use_rslora"] is False
    assert config["r"] == adapter["rank"] == 4
    assert config["lora_alpha"] / config["r"] == adapter["scale"] == 2.0
    assert config["base_model_name_or_path"] == "Qwen/Qwen3-4B"
    tensors = mx.load(str(peft_dir / "adapter_model.safetensors"))
    a = tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    b = tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]
    assert a.shape == (4, 256) and b.shape == (256, 4)
    card = (peft_dir / "README.md").read_text()
    assert "library_name: \"peft\"" in card and "base_model: \"Qwen/Qwen3-4B\"" in card
    assert "PeftModel.from_pretrained" in card


def test_full_precision_base_mapping():
    assert full_precision_base("Qwen/Qwen3-4B-MLX-4bit") == "Qwen/Qwen3-4B"
    assert full_precision_base("Qwen/Qwen3-1.7B-MLX-8bit") == "Qwen/Qwen3-1.7B"
    assert full_precision_base("mlx-community/Qwen3-8B-4bit-DWQ") == "Qwen/Qwen3-8B"
    assert full_precision_base("mlx-community/Mistral-7B-Instruct-v0.3-4bit") \
        == "mistralai/Mistral-7B-Instruct-v0.3"
    assert full_precision_base("mlx-community/SomethingElse-4bit") is None
    assert full_precision_base("tscu-tiny-qwen3") == "tscu-tiny-qwen3"


def test_mlx_export_copies_the_adapter_pair_with_a_card(run_dir, tmp_path):
    out = export_run(run_dir, "mlx", output=tmp_path / "mlx")
    assert (out / "adapters.safetensors").read_bytes() == \
        (run_dir / "adapters.safetensors").read_bytes()
    assert json.loads((out / "adapter_config.json").read_text())["fine_tune_type"] == "lora"
    assert "mlx_lm.generate" in (out / "README.md").read_text()


@pytest.mark.parametrize("dequantize", [False, True])
def test_fused_export_loads_and_matches_base_plus_adapter(run_dir, token_ids, tmp_path,
                                                          dequantize):
    out = export_run(run_dir, "fused", output=tmp_path / "fused", dequantize=dequantize)
    config = json.loads((out / "config.json").read_text())
    assert ("quantization" in config) is not dequantize
    diff = np.abs(mlx_logits(token_ids, model_path=out)
                  - mlx_logits(token_ids, adapter=run_dir)).max()
    print(f"fused (dequantize={dequantize}) max |logit diff|: {diff:.3g}")
    # Dequantized is exact to float32 rounding. Re-quantizing after fusing (mlx-lm's
    # default for a quantized base) rounds weights and delta to 4 bits again: for this
    # short run that error (0.2 on data packed across documents, 0.57 packed by document)
    # is as large as the adapter's effect, so only a bound that catches a broken fuse.
    assert diff < (1e-3 if dequantize else 1.0)
    from mlx_lm import generate, load

    model, tokenizer = load(str(out))
    assert generate(model, tokenizer, prompt="def ", max_tokens=4)


def test_bad_run_dirs_are_one_line_errors(tmp_path, run_dir):
    with pytest.raises(ExportError, match="does not exist"):
        export_run(tmp_path / "missing", "peft")
    with pytest.raises(ExportError, match="not a tscu run directory"):
        export_run(tmp_path, "peft")
    with pytest.raises(ExportError, match="format 'onnx'"):
        export_run(run_dir, "onnx")
    no_adapter = tmp_path / "no-adapter"
    no_adapter.mkdir()
    (no_adapter / "events.jsonl").write_text("")
    with pytest.raises(ExportError, match="no adapter_config.json"):
        export_run(no_adapter, "peft")
    assert not (no_adapter / "export").exists() or not any((no_adapter / "export").iterdir())


def test_export_cli_writes_peft_and_reports_bad_input_in_one_line(run_dir, tmp_path):
    tscu = [sys.executable, "-m", "tscu_tui.cli"]
    ok = subprocess.run([*tscu, "export", str(run_dir), "--format", "peft", "--output",
                         str(tmp_path / "p")], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "p" / "adapter_model.safetensors").is_file()
    bad = subprocess.run([*tscu, "export", str(tmp_path / "nope"), "--format", "peft"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "does not exist" in bad.stderr


def test_every_run_ends_with_a_model_card_built_from_its_files(run_dir):
    card = (run_dir / "README.md").read_text()
    analysis = json.loads((run_dir / "mlx_tscu_analysis.json").read_text())
    header = card.split("---\n")[1]
    assert 'library_name: "mlx"' in header and 'license: "agpl-3.0"' in header
    assert '- "tscu"' in header and "base_model" not in header  # no Hub id for a local base
    assert f"| before training | {analysis['heldout_bpt_initial']:.4f} |" in card
    assert f"| after training | {analysis['heldout_bpt_final']:.4f} |" in card
    energy = card.split("## Energy and temperature")[1].split("\n## ")[0]
    assert "**not measured**" in energy and " W" not in energy and " J" not in energy
    assert "As recorded by the run" in card and "Device(cpu" in card
    assert "mode `pi`" in card and "None" not in card
    assert "mlx_lm.generate" in card and "@software{tscu" in card


def test_model_card_reports_measured_energy_with_units(run_dir):
    from dataclasses import replace

    from tscu_tui.engine.hub.model_card import render_card
    from tscu_tui.engine.hub.run import open_run

    run = open_run(run_dir)
    measured = {**run.analysis, "telemetry_source": "rapl", "telemetry_kind": "measured",
                "total_energy_joules": 123.4, "total_energy_wh": 123.4 / 3600,
                "avg_power_watts": 17.25, "avg_temperature_celsius": 61.5,
                "max_temperature_celsius": 70.0}
    card = render_card(replace(run, analysis=measured), target="run")
    assert "123.4 J (0.0343 Wh)" in card and "17.25 W" in card
    assert "average 61.5 C, max 70.0 C" in card and "source `rapl`, kind `measured`" in card
    card = render_card(replace(run, analysis={**measured, "telemetry_kind": "simulated"}))
    assert "simulated readings, not a hardware measurement" in card


def test_a_failed_export_leaves_nothing_and_never_replaces_other_folders(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("export", "checkpoints"))
    config = json.loads((run / "adapter_config.json").read_text())
    (run / "adapter_config.json").write_text(
        json.dumps({**config, "model": "mlx-community/Unknown-Model-4bit"}))
    with pytest.raises(ExportError, match="--base-model"):
        export_run(run, "peft")
    assert not (run / "export" / "peft").exists()
    assert not list((run / "export").glob(".*"))  # no staging folder left behind

    with pytest.raises(ExportError, match="not an earlier tscu export"):
        export_run(run_dir, "mlx", output=run)  # would have swapped out the run itself
    assert (run / "mlx_config.json").is_file()
    out = export_run(run_dir, "mlx", output=tmp_path / "again")
    assert export_run(run_dir, "mlx", output=out) == out  # an earlier export is replaced
