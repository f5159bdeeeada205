"""GGUF exports read back with llama.cpp's own `gguf` reader: the LoRA file's layout,
the merged file's tensors, and bad input (one line, exit 1, nothing written).

That llama.cpp computes the right thing with these files is proved in
tests/test_gguf_llama_cpp.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest

from tscu_tui.cli import main
from tscu_tui.engine.hub.export import export_run
from tscu_tui.engine.models.gguf import unpermute_rows
from tscu_tui.engine.models.runtime import mx


def _tensors(path: Path) -> dict[str, gguf.ReaderTensor]:
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def _field(reader: gguf.GGUFReader, key: str):  # type: ignore[no-untyped-def]
    return reader.fields[key].contents()


def test_lora_gguf_has_llama_cpp_s_adapter_layout(gguf_run, tmp_path):
    base, run = gguf_run("llama")
    out = export_run(run, "gguf-lora", output=tmp_path / "lora")
    reader = gguf.GGUFReader(out / "adapter.gguf")
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "general.type") == "adapter"
    assert _field(reader, "adapter.type") == "lora"
    params = json.loads((run / "adapter_config.json").read_text())["lora_parameters"]
    assert _field(reader, "adapter.lora.alpha") == pytest.approx(params["scale"] * params["rank"])

    ours, theirs = _tensors(out / "adapter.gguf"), _tensors(base)
    assert len(ours) == 2 * 7 * 2  # 7 projections x 2 layers, a and b each
    mlx = mx.load(str(run / "adapters.safetensors"))
    for name, tensor in ours.items():
        stem, _, half = name.rpartition(".")
        assert stem in theirs and half in ("lora_a", "lora_b")
        assert tensor.tensor_type == gguf.GGMLQuantizationType.F32
        n_in, n_out = (int(d) for d in theirs[stem].shape)  # ggml ne: [in, out]
        rank = params["rank"]
        assert [int(d) for d in tensor.shape] == ([n_in, rank] if half == "lora_a"
                                                   else [rank, n_out])
    # lora_b rows of attn_q/attn_k follow llama.cpp's per-head order, the others do not move
    heads = 4
    b_q = np.array(ours["blk.0.attn_q.weight.lora_b"].data)
    mlx_b_q = np.array(mlx["model.layers.0.self_attn.q_proj.lora_b"]).T
    assert not np.array_equal(b_q, mlx_b_q)
    assert np.array_equal(np.array(unpermute_rows(mx.array(b_q), heads)), mlx_b_q)
    assert np.array_equal(np.array(ours["blk.1.attn_v.weight.lora_b"].data),
                          np.array(mlx["model.layers.1.self_attn.v_proj.lora_b"]).T)
    assert np.array_equal(np.array(ours["blk.1.attn_q.weight.lora_a"].data),
                          np.array(mlx["model.layers.1.self_attn.q_proj.lora_a"]).T)

    modelfile = (out / "Modelfile").read_text().splitlines()
    assert f"FROM {base.resolve()}" in modelfile and "ADAPTER ./adapter.gguf" in modelfile
    card = (out / "README.md").read_text()
    assert f"llama-cli -m {base.resolve()} --lora adapter.gguf" in card
    assert "ollama create my-tscu-model -f Modelfile" in card


def test_merged_gguf_holds_base_plus_delta_and_keeps_the_rest(gguf_run, tmp_path):
    base, run = gguf_run("llama")
    out = export_run(run, "gguf", output=tmp_path / "q8", quant="q8_0")
    merged, stored = _tensors(out / "model.gguf"), _tensors(base)
    assert set(merged) == set(stored)
    reader = gguf.GGUFReader(out / "model.gguf")
    assert _field(reader, "general.file_type") == gguf.LlamaFileType.MOSTLY_Q8_0
    assert _field(reader, "tokenizer.ggml.tokens") == \
        _field(gguf.GGUFReader(base), "tokenizer.ggml.tokens")
    # untouched Q8_0 embedding: the very bytes of the base
    assert stored["token_embd.weight"].tensor_type.name == "Q8_0"
    assert bytes(merged["token_embd.weight"].data) == bytes(stored["token_embd.weight"].data)
    # an adapted weight: base + scale * B A, rounded to Q8_0 once
    params = json.loads((run / "adapter_config.json").read_text())["lora_parameters"]
    adapter = mx.load(str(run / "adapters.safetensors"))
    a = np.array(adapter["model.layers.1.mlp.up_proj.lora_a"])
    b = np.array(adapter["model.layers.1.mlp.up_proj.lora_b"])
    up = stored["blk.1.ffn_up.weight"]
    expected = gguf.quants.dequantize(up.data, up.tensor_type) + params["scale"] * (a @ b).T
    got = gguf.quants.dequantize(merged["blk.1.ffn_up.weight"].data,
                                 merged["blk.1.ffn_up.weight"].tensor_type)
    assert merged["blk.1.ffn_up.weight"].tensor_type.name == "Q8_0"
    step = np.abs(expected).max() / 127  # one Q8_0 step at the largest block scale
    assert np.abs(got - expected).max() <= 0.6 * step  # half a step, and the f16 scale
    assert np.abs(params["scale"] * (a @ b)).max() > 4 * step  # the delta is not rounded away


def test_q4_0_keeps_every_unadapted_tensor_bit_for_bit(gguf_run, tmp_path):
    base, run = gguf_run("qwen3")
    out = export_run(run, "gguf", output=tmp_path / "q4", quant="q4_0")
    merged, stored = _tensors(out / "model.gguf"), _tensors(base)
    projections = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                   "ffn_down")
    adapted = {n for n in merged if n.startswith("blk.") and n.split(".")[2] in projections}
    assert len(adapted) == 14
    for name, tensor in merged.items():
        if name in adapted:
            assert tensor.tensor_type.name == "Q4_0"
            assert bytes(tensor.data) != bytes(stored[name].data)
        else:
            assert tensor.tensor_type == stored[name].tensor_type
            assert bytes(tensor.data) == bytes(stored[name].data), name
    assert "requantizing changes the weights" in (out / "README.md").read_text()


def test_an_mlx_folder_base_gets_llama_cpp_metadata(tiny_run, tmp_path):
    out = export_run(tiny_run, "gguf", output=tmp_path / "f16", quant="f16")
    reader = gguf.GGUFReader(out / "model.gguf")
    config = json.loads((Path(_tiny_dir()) / "config.json").read_text())
    assert _field(reader, "general.architecture") == "qwen3"
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    assert _field(reader, "tokenizer.ggml.pre") == "qwen2"
    assert len(_field(reader, "tokenizer.ggml.tokens")) == config["vocab_size"]
    assert _field(reader, "qwen3.attention.key_length") == config["head_dim"]
    assert _field(reader, "qwen3.block_count") == config["num_hidden_layers"]
    assert _field(reader, "tokenizer.ggml.eos_token_id") == config["eos_token_id"]
    tensors = _tensors(out / "model.gguf")
    assert "output.weight" not in tensors  # tied embeddings, as llama.cpp expects them
    assert tensors["blk.0.attn_q.weight"].tensor_type.name == "F16"
    assert tensors["blk.0.attn_q_norm.weight"].tensor_type.name == "F32"


def _tiny_dir() -> Path:
    from tscu_tui.engine.config.assets import EMBEDDED_MODEL_DIR

    return EMBEDDED_MODEL_DIR


# ---------------------------------------------------------------------------- bad input

def _copy_run(run: Path, to: Path, **changes: object) -> Path:
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("export", "checkpoints"))
    summary_file = to / "mlx_training_summary.json"
    summary = json.loads(summary_file.read_text())
    if "model" in changes:
        config = json.loads((to / "adapter_config.json").read_text())
        (to / "adapter_config.json").write_text(json.dumps({**config,
                                                            "model": str(changes["model"])}))
    if "recorded_path" in changes:
        summary["base_model_source"]["source"]["path"] = str(changes["recorded_path"])
    if changes.get("no_summary"):
        summary_file.unlink()
    else:
        summary_file.write_text(json.dumps(summary))
    return to


def _fails(capsys, argv: list[str], *expected: str) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for part in expected:
        assert part in err, err


def _nothing_written(run: Path) -> None:
    export = run / "export"
    assert not export.exists() or not any(export.iterdir()), list(export.iterdir())


def test_a_moved_or_changed_base_gguf_is_refused(gguf_run, tmp_path, capsys):
    base, run = gguf_run("llama")
    gone = tmp_path / "gone.gguf"
    moved = _copy_run(run, tmp_path / "moved", model=gone, recorded_path=gone)
    for fmt in ("gguf-lora", "gguf"):
        _fails(capsys, ["export", str(moved), "--format", fmt], "gone.gguf",
               "moved or deleted", "--base-model")
    _nothing_written(moved)

    changed_file = tmp_path / "changed.gguf"
    data = bytearray(base.read_bytes())
    data[-100] ^= 0xFF  # one byte of the last tensor
    changed_file.write_bytes(bytes(data))
    changed = _copy_run(run, tmp_path / "changed", model=changed_file,
                        recorded_path=changed_file)
    for fmt in ("gguf-lora", "gguf"):
        _fails(capsys, ["export", str(changed), "--format", fmt], "changed.gguf", "SHA-256",
               "changed since training")
    _nothing_written(changed)
    # the original bytes, wherever they are now, are accepted
    copy = tmp_path / "elsewhere.gguf"
    shutil.copy(base, copy)
    assert main(["export", str(moved), "--format", "gguf-lora", "--base-model",
                 str(copy)]) == 0
    assert f"FROM {copy.resolve()}" in (moved / "export/gguf-lora/Modelfile").read_text()

    unrecorded = _copy_run(run, tmp_path / "unrecorded", no_summary=True)
    _fails(capsys, ["export", str(unrecorded), "--format", "gguf-lora"], "no SHA-256")
    _nothing_written(unrecorded)


def test_what_llama_cpp_or_the_base_cannot_take_is_refused(gguf_run, tiny_run, tmp_path,
                                                           capsys):
    _, llama_run = gguf_run("llama")  # its projections are F32: no 4-bit merge
    _fails(capsys, ["export", str(llama_run), "--format", "gguf", "--quant", "q4_0",
                    "--output-dir", str(tmp_path / "q4")], "q4_0 needs a 4-bit base")
    assert not (tmp_path / "q4").exists()
    _fails(capsys, ["export", str(tiny_run), "--format", "gguf-lora", "--output-dir",
                    str(tmp_path / "lora")], "not imported from a GGUF", "--format gguf")
    assert not (tmp_path / "lora").exists()
    _fails(capsys, ["export", str(tiny_run), "--format", "peft", "--quant", "f16"],
           "--quant applies only to --format gguf")

    mistral = tmp_path / "mistral-base"
    shutil.copytree(_tiny_dir(), mistral)
    config = json.loads((mistral / "config.json").read_text())
    (mistral / "config.json").write_text(json.dumps({**config, "model_type": "mistral"}))
    run = _copy_run(tiny_run, tmp_path / "mistral-run", model=mistral)
    _fails(capsys, ["export", str(run), "--format", "gguf"], "architecture 'mistral'",
           "llama, qwen2, qwen3")
    _nothing_written(run)
    assert not [p for p in tmp_path.rglob(".*partial")]  # no staging folder left anywhere
