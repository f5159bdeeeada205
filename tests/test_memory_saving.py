"""Trading compute for memory changes nothing computed: checkpointed layers, recomputed
dequantized weights and the chunked loss give the same loss and gradients as without."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten, tree_unflatten
from runs import tiny_config, train

import tscu_tui.engine.models.fused_loss as fused_loss
import tscu_tui.engine.models.memory as memory
from tscu_tui.engine.config import load_config
from tscu_tui.engine.models import native
from tscu_tui.engine.models.checkpointing import (
    plan_memory,
    set_loss_chunking,
    use_grad_checkpoint,
    uses_grad_checkpoint,
)
from tscu_tui.engine.models.cpu_fastpath import prepare_for_cpu
from tscu_tui.engine.models.load import EMBEDDED_MODEL, load_model
from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train import lora
from tscu_tui.engine.train.objective import make_objective


def tiny_model(dropout: float = 0.0) -> nn.Module:
    config = load_config(None, [f'model.name="{EMBEDDED_MODEL}"', "lora.r=4",
                                f"lora.dropout={dropout}"])
    model, _, _ = load_model(EMBEDDED_MODEL, None)
    lora.apply_lora(model, config.lora)
    prepare_for_cpu(model)
    mx.random.seed(3)
    # B starts at zero: give it values so every adapter's gradient is non-trivial
    model.update(tree_unflatten([(k, mx.random.normal(v.shape) * 0.02)
                                 for k, v in tree_flatten(model.trainable_parameters())
                                 if k.endswith("lora_b")]))
    return model


def loss_and_grads(model: nn.Module, batch: mx.array, seed: int = 0
                   ) -> tuple[float, dict[str, mx.array]]:
    mx.random.seed(seed)
    (loss, _, _), grads = nn.value_and_grad(model, make_objective(1e-4))(
        model, batch, mx.array(0.5))
    mx.eval(loss, grads)
    return loss.item(), dict(tree_flatten(grads))


def max_diff(a: dict[str, mx.array], b: dict[str, mx.array]) -> float:
    assert a.keys() == b.keys()
    return max(mx.abs(a[k] - b[k]).max().item() for k in a)


def scale_of(grads: dict[str, mx.array]) -> float:
    return max(mx.abs(g).max().item() for g in grads.values())


@pytest.fixture
def batch() -> mx.array:
    mx.random.seed(7)
    return mx.random.randint(0, 4096, (4, 65))


def test_checkpointed_layers_give_the_same_loss_and_gradients(batch):
    model = tiny_model()
    loss, grads = loss_and_grads(model, batch)
    assert use_grad_checkpoint(model) == len(model.layers) and uses_grad_checkpoint(model)
    loss_ckpt, grads_ckpt = loss_and_grads(model, batch)
    assert loss_ckpt == pytest.approx(loss, rel=1e-6)
    assert max_diff(grads, grads_ckpt) <= 1e-5 * scale_of(grads)
    # only this model's layers changed class: a fresh model is not checkpointed
    assert not uses_grad_checkpoint(load_model(EMBEDDED_MODEL, None)[0])


def test_checkpointed_dropout_recomputes_the_same_masks(batch):
    """With dropout the gradient must still be the gradient of the loss the forward pass
    computed: check it against a central difference along the gradient itself."""
    model = tiny_model(dropout=0.3)
    model.train()
    use_grad_checkpoint(model)
    loss, grads = loss_and_grads(model, batch, seed=11)
    again, _ = loss_and_grads(model, batch, seed=11)
    assert again == loss  # the masks are a function of the seed
    other, _ = loss_and_grads(model, batch, seed=12)
    assert other != loss  # ... and dropout is really on
    params = dict(tree_flatten(model.trainable_parameters()))
    eps = 1e-3 / scale_of(grads)

    def loss_at(sign: float) -> float:
        model.update(tree_unflatten([(k, params[k] + sign * eps * grads[k])
                                     for k in params]))
        return loss_and_grads(model, batch, seed=11)[0]

    directional = (loss_at(1.0) - loss_at(-1.0)) / (2 * eps)
    model.update(tree_unflatten(list(params.items())))
    expected = sum(mx.sum(g * g).item() for g in grads.values())
    assert directional == pytest.approx(expected, rel=0.05)


def test_recomputed_dequantized_weights_match_stored_ones(batch, monkeypatch):
    model = tiny_model()
    monkeypatch.setenv("TSCU_DEQUANT_RECOMPUTE", "0")
    loss, grads = loss_and_grads(model, batch)
    monkeypatch.setenv("TSCU_DEQUANT_RECOMPUTE", "1")
    loss_r, grads_r = loss_and_grads(model, batch)
    assert loss_r == loss and max_diff(grads, grads_r) == 0.0


@pytest.mark.parametrize("kernels", ["native", "mlx-ops"])
@pytest.mark.parametrize("head_slices", [1, 3])
def test_chunked_loss_matches_the_whole_batch(batch, monkeypatch, head_slices, kernels):
    """Chunks of tokens, and (head_slices > 1) the output projection's float32 copy made
    a slice of the vocabulary at a time, as for Qwen3's 151,936-token head; on tscu's
    native kernels and on the pure-MLX ones."""
    if kernels == "mlx-ops":
        monkeypatch.setattr(native, "status", lambda: native.NativeStatus(None, "off"))
    else:
        assert native.available(), native.status().reason
    model = tiny_model()
    loss, grads = loss_and_grads(model, batch)
    head_bytes = 4096 * 256 * 4  # the tiny model's vocab x hidden in float32
    monkeypatch.setattr(fused_loss, "HEAD_SLICE_BYTES", head_bytes // head_slices + 1)
    assert fused_loss.supports(model.model.embed_tokens)
    # 1 MiB of logits: no chunking, unless the head's float32 copy is 'large'; then one
    # chunk of every token, the head made a slice at a time
    assert set_loss_chunking(model, 4 * 64) == (0 if head_slices == 1 else 4 * 64)
    if head_slices > 1:
        loss_s, grads_s = loss_and_grads(model, batch)
        assert loss_s == pytest.approx(loss, rel=1e-5)
        assert max_diff(grads, grads_s) <= 1e-5 * scale_of(grads)
    monkeypatch.setattr(fused_loss, "CHUNK_LOGITS_BYTES", 4096 * 4 * 48)
    assert set_loss_chunking(model, 4 * 64) == 48  # 256 tokens in 6 chunks, the last short
    loss_c, grads_c = loss_and_grads(model, batch)
    assert loss_c == pytest.approx(loss, rel=1e-5)
    assert max_diff(grads, grads_c) <= 1e-5 * scale_of(grads)


def test_auto_turns_checkpointing_on_only_when_the_run_would_not_fit(monkeypatch):
    config = load_config(None, [f'model.name="{EMBEDDED_MODEL}"'])
    monkeypatch.setattr(memory, "available_memory", lambda: 64 * memory.GIB)
    plan = plan_memory(tiny_model(), config, 2 * 1023)
    assert not plan.grad_checkpoint and "auto" in plan.describe()
    monkeypatch.setattr(memory, "available_memory", lambda: 1 * memory.MIB)
    model = tiny_model()
    plan = plan_memory(model, config, 2 * 1023)
    assert plan.grad_checkpoint and uses_grad_checkpoint(model)
    assert "gradient checkpointing on (auto: ~" in plan.describe()
    forced = load_config(None, [f'model.name="{EMBEDDED_MODEL}"',
                                "train.grad_checkpoint=false"])
    assert not plan_memory(tiny_model(), forced, 2 * 1023).grad_checkpoint


def test_bad_grad_checkpoint_value_is_one_line_naming_the_key():
    from tscu_tui.engine.config.load import ConfigError

    assert load_config(None, ["train.grad_checkpoint=true"]).train.grad_checkpoint == "true"
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.grad_checkpoint=sometimes"])
    message = str(err.value)
    assert "train.grad_checkpoint" in message and "'auto'" in message
    assert "\n" not in message.strip()


def test_a_run_records_its_peaks_and_its_plan(demo_data, tmp_path: Path):
    config = tiny_config(demo_data, tmp_path / "run", "train.max_steps=2",
                         "train.grad_checkpoint=true", "train.eval_steps=2")
    events, _ = train(config)
    summary = json.loads((tmp_path / "run" / "mlx_training_summary.json").read_text())
    assert summary["grad_checkpoint"] is True
    assert summary["cpu_kernels"].startswith("native CPU kernels (")  # built by make setup
    started = [e for e in events if type(e).__name__ == "RunStarted"]
    assert started and "native CPU kernels" in started[0].blas
    analysis = json.loads((tmp_path / "run" / "mlx_tscu_analysis.json").read_text())
    assert analysis["memory"]["peak_memory_bytes"] == summary["peak_memory_bytes"]
    assert 0 < summary["peak_memory_bytes"] < summary["peak_rss_bytes"]
    steps = [e for e in events if type(e).__name__ == "StepEvent"]
    assert steps and all(e.peak_memory_bytes and e.peak_memory_bytes > 0 for e in steps)
    logs = [e.message for e in events if type(e).__name__ == "LogEvent"]
    assert any("gradient checkpointing on (train.grad_checkpoint = true)" in m for m in logs)
