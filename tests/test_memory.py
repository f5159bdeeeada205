"""The peak-memory estimate: against a measured run of the embedded model, and the 4B table."""

from __future__ import annotations

from pathlib import Path

import pytest
from runs import tiny_config, train

import tscu_tui.engine.models.memory as memory
from tscu_tui.engine.config import load_config
from tscu_tui.engine.models.memory import GIB, estimate_memory, memory_warning, table_shape


@pytest.fixture(autouse=True)
def empty_hf_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(memory, "HF_CACHE_DIR", str(tmp_path / "hf-cache"))


def test_embedded_model_estimate_is_within_a_factor_of_two_of_measured_peak(demo_data, tmp_path):
    from tscu_tui.engine.models.runtime import mx

    config = tiny_config(demo_data, tmp_path / "run", "train.batch_size=8", "train.max_steps=2",
                         "data.block_size=64",  # as demo_data was prepared
                         "train.eval_batches=1")
    mx.reset_peak_memory()
    train(config)
    measured = mx.get_peak_memory()
    estimate = estimate_memory(config, available=64 * GIB)
    assert estimate is not None and estimate.source == "from config.json"
    assert 0.5 < estimate.arrays / measured < 2.0, (estimate.breakdown(), measured)


def test_qwen3_4b_from_the_built_in_table() -> None:
    config = load_config(None)  # the production defaults: Qwen3-4B-MLX-4bit, 2 x 1024
    on_gpu = estimate_memory(config, cpu=False, available=64 * GIB)
    on_cpu = estimate_memory(config, cpu=True, available=64 * GIB)
    assert on_gpu is not None and on_cpu is not None
    assert on_gpu.source == "from the built-in table"
    assert 2.0 * GIB < on_gpu.weights < 2.6 * GIB  # the 4-bit checkpoint is ~2.3 GB
    # CPU: float32 copies live one matmul each, and the 151,936 x 2,560 head (1.6 GB in
    # float32) is dequantized 256 MiB at a time by the chunked loss
    assert on_cpu.dequantized == 256 * 1024**2
    assert on_gpu.dequantized == 0 and on_gpu.total < on_cpu.total
    # 2 x 1,024 tokens x 151,936 logits would be 1.2 GB a copy: the loss is chunked
    assert 0 < on_cpu.loss_chunk_tokens < 2048 and on_cpu.logits < 1 * GIB
    small = load_config(None, ["train.batch_size=1", "data.block_size=256",
                               "lora.num_layers=16"])
    estimate = estimate_memory(small, cpu=False, available=64 * GIB)
    assert estimate is not None and 3 * GIB < estimate.total < 12 * GIB


def test_seed_defaults_fit_in_8_gib_only_with_gradient_checkpointing() -> None:
    config = load_config(None)
    without = estimate_memory(config, cpu=True, available=8 * GIB, grad_checkpoint=False)
    with_it = estimate_memory(config, cpu=True, available=8 * GIB, grad_checkpoint=True)
    assert without is not None and with_it is not None
    assert without.arrays > 30 * GIB and not without.fits  # 37 layers of activations
    # MLX's arrays (what bench/memory.py measures) within 8 GiB; the margin for the
    # runtime and the allocator comes on top
    assert with_it.arrays < 8 * GIB
    auto = estimate_memory(config, cpu=True, available=10 * GIB)  # grad_checkpoint=auto
    assert auto is not None and auto.grad_checkpoint and "with gradient" in auto.describe()
    roomy = estimate_memory(config, cpu=True, available=256 * GIB)
    assert roomy is not None and not roomy.grad_checkpoint  # fits: keep the faster path
    forced = estimate_memory(load_config(None, ["train.grad_checkpoint=false"]), cpu=True,
                             available=8 * GIB)
    assert forced is not None and not forced.grad_checkpoint and not forced.fits


def test_table_names_and_unknown_models() -> None:
    assert table_shape("mlx-community/Qwen3-0.6B-8bit").bits == 8  # type: ignore[union-attr]
    assert table_shape("Qwen/Qwen3-8B").tied_embeddings is False  # type: ignore[union-attr]
    assert table_shape("someone/llama-7b") is None
    assert estimate_memory(load_config(None, ['model.name="someone/llama-7b"'])) is None


def test_warning_only_when_it_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(None)
    monkeypatch.setattr(memory, "available_memory", lambda: 1 * GIB)
    warning = memory_warning(config)
    assert warning is not None and "only 1.0 GiB is free" in warning
    assert "train.batch_size" in warning
    monkeypatch.setattr(memory, "available_memory", lambda: 1024 * GIB)
    assert memory_warning(config) is None


def test_the_prepared_block_size_wins(demo_data) -> None:
    config = load_config(None, [f'data.path="{demo_data}"', "data.block_size=1024"])
    estimate = estimate_memory(config, available=64 * GIB)
    assert estimate is not None and (estimate.batch_size, estimate.block_size) == (2, 64)
