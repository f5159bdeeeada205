"""The CPU path's kernels compute what MLX's own ops compute, values and gradients.

Each kernel is checked against the formula written with MLX's `exp`-based ops
(and mlx-lm's attention), in float32, on every path: the native kernels (csrc/),
the same with the attention unfused, and the pure-MLX ones. `2 ** (x log2 e)` and
the native polynomial differ from `exp(x)` by a few ulp, so agreement is to ~1e-5
relative, far below any effect of a bug (a wrong mask, a missing term or a transposed
head is off by O(1)).
"""

from __future__ import annotations

import mlx.nn as nn
import numpy as np
import pytest

from tscu_tui.engine.models import cpu_kernels as kernels
from tscu_tui.engine.models import native
from tscu_tui.engine.models.runtime import mx

TOLERANCE = 2e-5


@pytest.fixture(autouse=True, params=["native", "native-unfused", "mlx-ops"])
def kernel_path(request, monkeypatch) -> str:
    """Every test here runs on the native kernels (csrc/), on them with the attention as
    matmuls around the native softmax (TSCU_FUSED_ATTENTION=0), and on the pure-MLX ones."""
    if request.param.startswith("native"):
        if not native.available():
            pytest.skip(f"native kernels: {native.status().reason} (test_native_kernels fails)")
        if request.param == "native-unfused":
            monkeypatch.setenv("TSCU_FUSED_ATTENTION", "0")
    else:
        monkeypatch.setattr(native, "status",
                            lambda: native.NativeStatus(None, "off for this test"))
    return request.param


def close(a: mx.array, b: mx.array, tol: float = TOLERANCE) -> bool:
    a, b = np.array(a), np.array(b)
    return float(np.abs(a - b).max()) <= tol * max(1.0, float(np.abs(b).max()))


def grads(fn, *arrays: mx.array) -> list[mx.array]:
    cotangent = mx.random.normal(fn(*arrays).shape, key=mx.random.key(7))
    _, vjps = mx.vjp(fn, list(arrays), [cotangent])
    return vjps


def test_exp_matches_mlx_exp_over_the_float32_range():
    x = mx.concatenate([mx.linspace(-87.0, 87.0, 20001), mx.array([-mx.inf, 0.0])])
    assert close(kernels.exp(x), mx.exp(x), 1e-5)
    assert kernels.exp(mx.array(-mx.inf)).item() == 0.0


def test_swiglu_values_and_gradients():
    gate = mx.random.normal((3, 7, 40), key=mx.random.key(0)) * 4
    up = mx.random.normal((3, 7, 40), key=mx.random.key(1))

    def reference(g, u):
        return nn.silu(g) * u

    assert close(kernels.swiglu(gate, up), reference(gate, up))
    for ours, theirs in zip(grads(kernels.swiglu, gate, up), grads(reference, gate, up),
                            strict=True):
        assert close(ours, theirs)
    # far in the tails: no inf/inf, the gradient of silu goes to 0 (and to `up`)
    extreme = mx.array([-200.0, -90.0, 90.0, 200.0])
    d_gate, d_up = grads(kernels.swiglu, extreme, mx.ones(4))
    assert np.isfinite(np.array(d_gate)).all() and np.isfinite(np.array(d_up)).all()


@pytest.mark.parametrize(("heads", "kv_heads", "length"), [(4, 4, 9), (6, 2, 16), (9, 3, 1)])
def test_attention_matches_mlx_lm_with_causal_mask_and_gqa(heads, kv_heads, length,
                                                           kernel_path, monkeypatch):
    from mlx_lm.models.base import scaled_dot_product_attention as reference

    fused_calls = []
    fused = native.attention
    monkeypatch.setattr(native, "attention",
                        lambda *a, **kw: fused_calls.append(1) or fused(*a, **kw))

    keys = 16  # a KV cache longer than the queries: query i sees keys <= 16 - length + i
    q = mx.random.normal((2, heads, length, 8), key=mx.random.key(2))
    k = mx.random.normal((2, kv_heads, keys, 8), key=mx.random.key(3))
    v = mx.random.normal((2, kv_heads, keys, 8), key=mx.random.key(4))

    def ours(q, k, v):
        return kernels.scaled_dot_product_attention(q, k, v, None, 0.35, "causal")

    def theirs(q, k, v):
        return reference(q, k, v, None, scale=0.35, mask="causal")

    assert close(ours(q, k, v), theirs(q, k, v))
    for a, b in zip(grads(ours, q, k, v), grads(theirs, q, k, v), strict=True):
        assert close(a, b)
    # the fused kernel where it applies (several queries, native, not switched off)
    assert bool(fused_calls) == (kernel_path == "native" and length > 1)


def test_attention_hands_unusual_inputs_to_mlx_lm():
    q = mx.random.normal((1, 2, 4, 8), key=mx.random.key(5))
    mask = mx.array(np.tril(np.ones((4, 4), bool)))
    out = kernels.scaled_dot_product_attention(q, q, q, None, 0.3, mask)
    expected = mx.fast.scaled_dot_product_attention(q, q, q, scale=0.3, mask=mask)
    assert close(out, expected)


def test_cross_entropy_values_and_gradient():
    logits = mx.random.normal((5, 11, 300), key=mx.random.key(6)) * 6
    targets = mx.random.randint(0, 300, (5, 11), key=mx.random.key(8))

    def ours(lg):
        return kernels.cross_entropy(lg, targets)

    def theirs(lg):
        return nn.losses.cross_entropy(lg, targets)

    assert close(ours(logits), theirs(logits))
    assert close(grads(ours, logits)[0], grads(theirs, logits)[0])


def test_models_use_the_kernels_without_copying_mlx_lm_code():
    from mlx_lm.models import base

    from tscu_tui.engine.models.load import EMBEDDED_MODEL, load_model

    model, _, _ = load_model(EMBEDDED_MODEL)
    ids = mx.array([[1, 5, 9, 200, 7, 3]])
    before = model(ids)
    assert kernels.use_cpu_kernels(model) > 0 and kernels.uses_cpu_kernels(model)
    attention = model.model.layers[0].self_attn
    scope = type(attention).__call__.__globals__
    assert scope["scaled_dot_product_attention"] is kernels.scaled_dot_product_attention
    assert base.scaled_dot_product_attention is not kernels.scaled_dot_product_attention
    assert type(attention).__call__.__code__ is type(attention).__mro__[1].__call__.__code__
    norms = [m for _, m in model.named_modules() if isinstance(m, nn.RMSNorm)]
    assert norms and all(type(m) is kernels.KernelRMSNorm for m in norms)
    assert close(model(ids), before, 1e-4)


def test_rms_norm_values_and_gradients():
    norm = nn.RMSNorm(48, eps=1e-5)
    norm.weight = mx.random.normal((48,), key=mx.random.key(3))
    x = mx.random.normal((2, 5, 48), key=mx.random.key(4)) * 3
    want = norm(x)
    norm.__class__ = kernels.KernelRMSNorm

    def plain(x, w):
        return x * mx.rsqrt(mx.mean(mx.square(x), axis=-1, keepdims=True) + 1e-5) * w

    def kernel(x, w):
        norm.weight = w
        return norm(x)

    assert close(kernel(x, norm.weight), want)
    assert all(close(g, w) for g, w in zip(grads(kernel, x, norm.weight),
                                           grads(plain, x, norm.weight), strict=True))


def test_the_switch_turns_them_off(monkeypatch):
    from tscu_tui.engine.models.load import EMBEDDED_MODEL, load_model

    monkeypatch.setenv("TSCU_CPU_KERNELS", "0")
    model, _, _ = load_model(EMBEDDED_MODEL)
    assert kernels.use_cpu_kernels(model) == 0 and not kernels.uses_cpu_kernels(model)


def test_lora_layers_add_their_update_in_the_matmul_and_match_mlx_lm():
    from mlx_lm.tuner.lora import LoRALinear

    from tscu_tui.engine.models.cpu_fastpath import use_dequantized_matmul

    layer = LoRALinear.from_base(nn.Linear(24, 40, bias=False), r=4, scale=2.0)
    layer.lora_b = mx.random.normal(layer.lora_b.shape, key=mx.random.key(9))
    model = nn.Sequential(layer)
    x = mx.random.normal((5, 24), key=mx.random.key(10))

    def loss(params: dict) -> mx.array:
        model.update(params)
        return (model(x) ** 2).sum()

    before = model(x)
    d_before = mx.grad(loss)(model.trainable_parameters())
    use_dequantized_matmul(model)
    assert type(layer).__name__ == "AddmmLoRALinear" and isinstance(layer, LoRALinear)
    assert close(model(x), before)
    d_after = mx.grad(loss)(model.trainable_parameters())
    assert close(d_after["layers"][0]["lora_a"], d_before["layers"][0]["lora_a"])
    assert close(d_after["layers"][0]["lora_b"], d_before["layers"][0]["lora_b"])
