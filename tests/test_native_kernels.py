"""tscu's native CPU kernels (csrc/tscu_native.cpp): built here, right, and optional.

`make setup` builds them (scripts/build_native.py); these tests fail if that
build is missing or broken. Values are checked against float64 NumPy or MLX's
own ops; gradients against MLX's autodiff of the plain formula. A wrong mask,
a dropped term or a mispacked nibble is off by O(1e-2) or more, the kernels'
own error (a polynomial exp, float32 sums) by ~1e-6.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tscu_tui.engine.models import native
from tscu_tui.engine.models.runtime import mx

ROOT = Path(__file__).resolve().parent.parent


def rel_err(a: mx.array, b: np.ndarray | mx.array) -> float:
    a64, b64 = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    return float(np.abs(a64 - b64).max() / max(1.0, np.abs(b64).max()))


def causal_ref(scores: np.ndarray, queries: int) -> np.ndarray:
    cols = scores.shape[-1]
    rows = np.arange(queries)[:, None] + cols - queries
    masked = np.where(np.arange(cols)[None, :] > rows, -np.inf, scores.astype(np.float64))
    e = np.exp(masked - masked.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def per_thread_count(kernels: Any, compute: Callable[[], mx.array]) -> list[mx.array]:
    """compute()'s result with the native kernels on 1, 2 and 3 threads."""
    before = kernels.threads()
    outs = []
    try:
        for threads in (1, 2, 3):
            native.set_threads(threads)
            assert kernels.threads() == threads
            outs.append(compute())
            mx.eval(outs[-1])
    finally:
        native.set_threads(before)
    return outs


@pytest.fixture(scope="module")
def kernels():
    status = native.status()
    assert status.available, f"native kernels not loaded: {status.reason}"
    return status.module


def test_native_kernels_are_built_for_this_mlx_and_loaded(kernels):
    stamp = json.loads(native.STAMP.read_text())
    assert stamp["mlx"] == mx.__version__
    assert native.describe().startswith("native CPU kernels (")


def test_the_stamp_records_the_instruction_set_the_build_may_use_and_this_cpu_has_it():
    from tscu_tui.engine.models.cpu_info import cpu_flags

    stamp = json.loads(native.STAMP.read_text())
    features = set(stamp["cpu_features"])
    assert features and features <= cpu_flags()
    if "sse2" in cpu_flags():  # x86: the compiler's own view, not the CPU's flags
        sys.path.insert(0, str(ROOT / "scripts"))
        try:
            from build_native import isa_features
        finally:
            sys.path.remove(str(ROOT / "scripts"))
        baseline = set(isa_features("-march=x86-64"))
        assert {"sse", "sse2"} <= baseline and not baseline & {"avx", "avx2", "fma"}
        assert set(isa_features("-march=x86-64-v3")) >= {"avx", "avx2", "fma", "bmi2"}


def _stamp_from_another_cpu(tmp_path: Path) -> tuple[Path, str]:
    """This machine's real stamp, claiming one extension this CPU lacks (as a module
    built on a newer CPU of a shared checkout, a Docker layer or another host would)."""
    from tscu_tui.engine.models.cpu_info import cpu_flags

    here = cpu_flags()
    lacking = next(f for f in ("amx_tile", "avx512_fp16", "avx512f", "avx2", "sve2", "sve")
                   if f not in here)
    stamp = json.loads(native.STAMP.read_text())
    stamp["cpu_features"] = sorted({*stamp["cpu_features"], lacking})
    stamp["cpu"] = "Another CPU (test)"
    path = tmp_path / "_native_build.json"
    path.write_text(json.dumps(stamp))
    return path, lacking


def test_a_module_built_for_another_cpu_is_refused_and_the_mlx_kernels_run(tmp_path,
                                                                          monkeypatch):
    from tscu_tui.engine.models import cpu_kernels

    stamp, lacking = _stamp_from_another_cpu(tmp_path)
    monkeypatch.setattr(native, "STAMP", stamp)
    native.status.cache_clear()
    try:
        status = native.status()
        assert not status.available and status.module is None
        assert f"built for a CPU with {lacking} (Another CPU (test)" in status.reason
        assert "rebuild here: python scripts/build_native.py" in status.reason
        assert native.describe() == f"MLX-op CPU kernels (native: {status.reason})"
        logits = mx.random.normal((4, 50), key=mx.random.key(3))  # the MLX ops compute
        targets = mx.array([1, 2, 3, 4])
        want = mx.logsumexp(logits, axis=-1) - logits[mx.arange(4), targets]
        assert rel_err(cpu_kernels.cross_entropy(logits, targets), want) < 1e-5
    finally:
        monkeypatch.undo()
        native.status.cache_clear()
        native.status()


def test_a_stamp_without_a_cpu_record_is_refused(tmp_path, monkeypatch):
    stamp = json.loads(native.STAMP.read_text())
    del stamp["cpu_features"]
    path = tmp_path / "_native_build.json"
    path.write_text(json.dumps(stamp))
    monkeypatch.setattr(native, "STAMP", path)
    native.status.cache_clear()
    try:
        assert "without a record of its CPU's features" in native.status().reason
    finally:
        monkeypatch.undo()
        native.status.cache_clear()
        native.status()


@pytest.mark.parametrize("queries,cols", [(7, 7), (5, 9), (1, 4), (0, 33)])
def test_causal_softmax_and_its_gradient(kernels, queries, cols):
    rows = max(queries, 1)
    scores = mx.random.normal((2, 3, rows, cols), key=mx.random.key(0)) * 5
    got = native.causal_softmax(scores, queries)
    want = causal_ref(np.array(scores), queries) if queries else \
        np.array(mx.softmax(scores, axis=-1))
    assert rel_err(got, want) < 1e-6
    cot = mx.random.normal(scores.shape, key=mx.random.key(1))
    mask = mx.array(np.where(causal_ref(np.zeros(scores.shape), queries) > 0, 0.0,
                             -np.inf).astype(np.float32)) if queries else 0.0
    _, (want_grad,) = mx.vjp(lambda s: mx.softmax(s + mask, axis=-1), [scores], [cot])
    _, (got_grad,) = mx.vjp(lambda s: native.causal_softmax(s, queries), [scores], [cot])
    assert rel_err(got_grad, want_grad) < 1e-5


def test_more_queries_than_columns_is_an_error_not_a_write_before_the_row(kernels):
    scores = mx.zeros((2, 4, 3))
    for queries in (4, -1):
        with pytest.raises(ValueError, match="queries must be between 0 and the number of "
                                             r"columns \(3\)"):
            kernels.softmax(scores, queries)
        with pytest.raises(ValueError, match="queries must be between"):
            kernels.softmax_grad(scores, scores, queries)


def test_fast_exp_keeps_its_documented_accuracy_in_vectorised_loops(kernels):
    """exp's error where it is largest (|x| ~ 72: the range reduction), through two
    vectorised kernels: silu(-x) = -x / (1 + e^x) and softmax([0, -d])[1] =
    e^-d / (1 + e^-d). Reassociated, the Cody-Waite reduction gave 3.6e-6."""
    x = np.linspace(5.0, 80.0, 200_001).astype(np.float32)
    silu = np.array(kernels.swiglu(mx.array(-x), mx.ones(x.shape)), dtype=np.float64)
    want = -x.astype(np.float64) / (1.0 + np.exp(x.astype(np.float64)))
    assert np.abs(silu / want - 1).max() < 4e-7
    d = np.linspace(0.0, 80.0, 100_001).astype(np.float32)
    probs = np.array(kernels.softmax(mx.array(np.stack([np.zeros_like(d), -d], 1)), 0),
                     dtype=np.float64)
    e = np.exp(-d.astype(np.float64))
    assert np.abs(probs[:, 1] / (e / (1 + e)) - 1).max() < 4e-7


def test_cross_entropy_values_and_gradient_against_float64(kernels):
    logits = mx.random.normal((3, 5, 1000), key=mx.random.key(2)) * 6
    targets = mx.random.randint(0, 1000, (3, 5), key=mx.random.key(3)).astype(mx.uint32)
    loss = native.cross_entropy(logits, targets)
    z, t = np.array(logits, dtype=np.float64), np.array(targets).astype(np.int64)
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    want = lse - np.take_along_axis(z, t[..., None], -1)[..., 0]
    assert loss.shape == (3, 5) and rel_err(loss, want) < 1e-6
    cot = mx.random.normal((3, 5), key=mx.random.key(4))
    _, (grad, _) = mx.vjp(native.cross_entropy, [logits, targets], [cot])
    probs = np.exp(z - lse[..., None])
    np.put_along_axis(probs, t[..., None], np.take_along_axis(probs, t[..., None], -1) - 1, -1)
    assert rel_err(grad, probs * np.array(cot)[..., None]) < 1e-6


def test_a_target_outside_the_vocabulary_gives_nan_not_a_stray_read(kernels):
    logits = mx.random.normal((3, 50), key=mx.random.key(15))
    targets = mx.array([4, 50, -1])
    loss = native.cross_entropy(logits, targets)
    assert not mx.isnan(loss[0]).item() and mx.isnan(loss[1:]).all().item()
    _, (grad, _) = mx.vjp(native.cross_entropy, [logits, targets], [mx.ones((3,))])
    assert not mx.isnan(grad[0]).any().item() and mx.isnan(grad[1:]).all().item()


def test_swiglu_values_and_gradients_match_autodiff(kernels):
    gate = mx.random.normal((4, 9, 300), key=mx.random.key(5)) * 8
    up = mx.random.normal((4, 9, 300), key=mx.random.key(6))
    plain = lambda g, u: nn_silu(g) * u  # noqa: E731
    assert rel_err(native.swiglu(gate, up), plain(gate, up)) < 1e-6
    cot = mx.random.normal(gate.shape, key=mx.random.key(7))
    _, want = mx.vjp(plain, [gate, up], [cot])
    _, got = mx.vjp(native.swiglu, [gate, up], [cot])
    assert all(rel_err(g, w) < 1e-5 for g, w in zip(got, want, strict=True))


def nn_silu(x: mx.array) -> mx.array:
    return x * mx.sigmoid(x)


@pytest.mark.parametrize("bits,group", [(4, 32), (4, 64), (4, 128), (8, 32), (8, 64)])
def test_dequantize_matches_mlx_including_row_slices(kernels, bits, group):
    w = mx.random.normal((96, 256), key=mx.random.key(8))
    packed, scales, biases = mx.quantize(w, group_size=group, bits=bits)
    want = mx.dequantize(packed, scales, biases, group_size=group, bits=bits)
    got = native.dequantize(packed, scales, biases, group, bits)
    assert got.dtype == mx.float32 and rel_err(got, want) < 1e-6
    part = native.dequantize(packed[17:60], scales[17:60], biases[17:60], group, bits)
    assert rel_err(part, want[17:60]) < 1e-6


def test_dequantize_falls_back_to_mlx_where_it_does_not_apply(kernels):
    w = mx.random.normal((8, 64), key=mx.random.key(9))
    packed, scales, biases = mx.quantize(w, group_size=32, bits=2)  # 2-bit: MLX's own
    want = mx.dequantize(packed, scales, biases, group_size=32, bits=2)
    assert rel_err(native.dequantize(packed, scales, biases, 32, 2), want) == 0.0


@pytest.mark.parametrize("bits,group", [(4, 32), (4, 64), (4, 128), (8, 32), (8, 64)])
@pytest.mark.parametrize("rows", [1, 3, 8])
def test_quantized_matmul_reads_the_packed_weights_as_dequantize_then_matmul(kernels, bits,
                                                                            group, rows):
    w = mx.random.normal((300, 384), key=mx.random.key(20))
    packed, scales, biases = mx.quantize(w, group_size=group, bits=bits)
    dense = mx.dequantize(packed, scales, biases, group_size=group, bits=bits)
    x = mx.random.normal((rows, 384), key=mx.random.key(21))
    got = native.quantized_matmul(x, packed, scales, biases, group, bits)
    assert got is not None and got.shape == (rows, 300)
    assert rel_err(got, x @ dense.T) < 1e-5
    # its gradient is the dequantized path's (a weighted sum, so every entry counts)
    mix = mx.random.normal((rows, 300), key=mx.random.key(22))
    got_dx = mx.grad(lambda x: (native.quantized_matmul(x, packed, scales, biases, group,
                                                        bits) * mix).sum())(x)
    want_dx = mx.grad(lambda x: ((x @ dense.T) * mix).sum())(x)
    assert rel_err(got_dx, want_dx) < 1e-5


def test_quantized_matmul_with_a_group_size_mlx_does_not_make_against_numpy(kernels):
    # MLX quantizes in groups of 32, 64 or 128 (the kernel's unrolled cases); a group of
    # 256 4-bit values takes its general loop, checked here against NumPy's unpacking
    rng = np.random.default_rng(26)
    outs, cols, group = 40, 512, 256
    packed = rng.integers(0, 2**32, (outs, cols // 8), dtype=np.uint32)
    scales = rng.normal(size=(outs, cols // group)).astype(np.float32) * 0.01
    biases = rng.normal(size=(outs, cols // group)).astype(np.float32) * 0.01
    q = (packed[:, :, None] >> (4 * np.arange(8, dtype=np.uint32))) & 15  # low nibble first
    dense = (q.reshape(outs, cols // group, group) * scales[..., None]
             + biases[..., None]).reshape(outs, cols)
    x = rng.normal(size=(2, cols)).astype(np.float32)
    got = native.quantized_matmul(mx.array(x), mx.array(packed), mx.array(scales),
                                  mx.array(biases), group, 4)
    assert got is not None and rel_err(got, x.astype(np.float64) @ dense.T) < 1e-5


def test_quantized_matmul_keeps_leading_axes_and_splits_large_layers_across_threads(kernels):
    w = mx.random.normal((2048, 1024), key=mx.random.key(23))  # 2M weights: threaded
    packed, scales, biases = mx.quantize(w, group_size=64, bits=4)
    dense = mx.dequantize(packed, scales, biases, group_size=64, bits=4)
    x = mx.random.normal((1, 2, 1024), key=mx.random.key(24))
    outs = per_thread_count(kernels, lambda: native.quantized_matmul(x, packed, scales,
                                                                    biases, 64, 4))
    assert outs[0].shape == (1, 2, 2048) and rel_err(outs[0], x @ dense.T) < 1e-5
    assert all(mx.array_equal(outs[0], other).item() for other in outs[1:])


def test_quantized_matmul_leaves_what_it_does_not_take_to_the_caller(kernels):
    w = mx.random.normal((64, 128), key=mx.random.key(25))
    packed, scales, biases = mx.quantize(w, group_size=32, bits=4)
    many = mx.zeros((native.MATVEC_ROWS + 1, 128))
    assert native.quantized_matmul(many, packed, scales, biases, 32, 4) is None
    assert native.quantized_matmul(many[:1].astype(mx.float16), packed, scales, biases, 32,
                                   4) is None
    two_bit = mx.quantize(w, group_size=32, bits=2)
    assert native.quantized_matmul(many[:1], *two_bit, 32, 2) is None
    with pytest.raises(ValueError, match="1 to 8 rows"):
        kernels.quantized_matmul(many, packed, scales, biases, 32, 4)
    with pytest.raises(ValueError, match="columns differ"):
        kernels.quantized_matmul(many[:1, :64], packed, scales, biases, 32, 4)


def test_generation_on_the_packed_weights_answers_as_the_dequantized_path(monkeypatch):
    from tscu_tui.engine.models.cpu_fastpath import prepare_for_cpu
    from tscu_tui.engine.models.generate import greedy
    from tscu_tui.engine.models.load import EMBEDDED_MODEL, load_model

    model, tokenizer, _ = load_model(EMBEDDED_MODEL)
    prepare_for_cpu(model)
    prompt = tokenizer.encode("The thermodynamic control unit")
    calls = []
    real = native._module().quantized_matmul
    monkeypatch.setattr(native._module(), "quantized_matmul",
                        lambda *a: calls.append(a[0].shape) or real(*a), raising=False)
    packed = greedy(model, tokenizer, prompt, 12)
    assert calls and all(shape[0] == 1 for shape in calls)  # one token at a time
    monkeypatch.setattr(native, "MATVEC_ROWS", 0)
    calls.clear()
    assert greedy(model, tokenizer, prompt, 12) == packed and not calls


def test_bad_shapes_are_a_plain_error_not_a_crash(kernels):
    w = mx.random.normal((8, 64), key=mx.random.key(9))
    packed, scales, biases = mx.quantize(w, group_size=32, bits=4)
    with pytest.raises(ValueError, match="scales/biases do not match"):
        kernels.dequantize(packed, scales[:4], biases[:4], 32, 4)
    with pytest.raises(ValueError, match="must be float32"):
        kernels.swiglu(w.astype(mx.float16), w.astype(mx.float16))
    with pytest.raises(ValueError, match="gate and up shapes differ"):
        kernels.swiglu(w, w[:4])
    with pytest.raises(ValueError, match="one entry per row"):
        kernels.cross_entropy(w, mx.array([1, 2]))
    with pytest.raises(ValueError, match="shapes differ"):
        kernels.softmax_grad(w, w[:, :8], 0)


def test_results_do_not_depend_on_the_thread_count(kernels):
    logits = mx.random.normal((64, 4096), key=mx.random.key(10))
    targets = mx.random.randint(0, 4096, (64,), key=mx.random.key(11))
    scores = mx.random.normal((4, 64, 64), key=mx.random.key(12))
    outs = per_thread_count(kernels, lambda: mx.concatenate([
        native.cross_entropy(logits, targets), native.causal_softmax(scores, 64).reshape(-1)]))
    assert all(mx.array_equal(outs[0], other).item() for other in outs[1:])


def test_compiled_and_differentiated_like_any_mlx_op(kernels):
    def loss(gate: mx.array, up: mx.array, targets: mx.array) -> mx.array:
        h = native.swiglu(gate, up)
        probs = native.causal_softmax(h[:, :16].reshape(4, 4, 4), 4).reshape(4, 16)
        return native.cross_entropy(h + probs.sum(), targets).mean()

    gate = mx.random.normal((4, 64), key=mx.random.key(13))
    up = mx.random.normal((4, 64), key=mx.random.key(14))
    targets = mx.array([1, 5, 9, 63])
    plain = mx.value_and_grad(loss, argnums=(0, 1))(gate, up, targets)
    compiled = mx.compile(mx.value_and_grad(loss, argnums=(0, 1)))(gate, up, targets)
    assert rel_err(compiled[0], plain[0]) < 1e-6
    assert all(rel_err(c, p) < 1e-6 for c, p in zip(compiled[1], plain[1], strict=True))


def test_stamp_from_another_mlx_is_not_loaded(tmp_path, monkeypatch):
    stamp = tmp_path / "_native_build.json"
    stamp.write_text(json.dumps({"mlx": "0.0.1"}))
    monkeypatch.setattr(native, "STAMP", stamp)
    native.status.cache_clear()
    try:
        status = native.status()
        assert not status.available
        assert "built for MLX 0.0.1" in status.reason and mx.__version__ in status.reason
    finally:
        monkeypatch.undo()
        native.status.cache_clear()
        native.status()


def test_switched_off_a_run_uses_the_mlx_kernels_and_says_so():
    code = ("import tscu_tui.engine; from tscu_tui.engine.models import native; "
            "print(native.available(), native.describe())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={**_env(), "TSCU_NATIVE": "0"}, check=True).stdout
    assert out.strip() == "False MLX-op CPU kernels (native: TSCU_NATIVE=0)"


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


# ---------------------------------------------------------------------------- attention

def attention_ref(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, causal: bool,
                  starts: np.ndarray | None = None) -> np.ndarray:
    """float64 attention, GQA by repeating k and v, mask as the kernel documents."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scores = scale * q @ k.swapaxes(-1, -2)
    length, keys = q.shape[2], k.shape[2]
    visible = np.ones((q.shape[0], 1, length, keys), bool)
    if causal or starts is not None:
        visible &= (np.arange(keys)[None, :] <= np.arange(length)[:, None] + keys - length)
    if starts is not None:
        visible &= np.arange(keys)[None, None, None, :] >= starts[:, None, :, None]
    scores = np.where(visible, scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)) @ v


def mlx_attention(q: mx.array, k: mx.array, v: mx.array, scale: float, causal: bool,
                  starts: mx.array | None = None) -> mx.array:
    """The same in MLX's own ops (for autodiff's gradients)."""
    group = q.shape[1] // k.shape[1]
    k, v = mx.repeat(k, group, axis=1), mx.repeat(v, group, axis=1)
    scores = scale * q @ k.swapaxes(-1, -2)
    length, keys = q.shape[2], k.shape[2]
    visible = mx.ones((q.shape[0], 1, length, keys), dtype=mx.bool_)
    if causal or starts is not None:
        visible = visible & (mx.arange(keys)[None, :] <= mx.arange(length)[:, None]
                             + keys - length)
    if starts is not None:
        visible = visible & (mx.arange(keys)[None, None, None, :]
                             >= starts[:, None, :, None])
    return mx.softmax(mx.where(visible, scores, -mx.inf), axis=-1) @ v


def _qkv(batch: int, heads: int, kv_heads: int, length: int, keys: int, dim: int, seed: int
         ) -> tuple[mx.array, mx.array, mx.array]:
    q = mx.random.normal((batch, heads, length, dim), key=mx.random.key(seed))
    k = mx.random.normal((batch, kv_heads, keys, dim), key=mx.random.key(seed + 1))
    v = mx.random.normal((batch, kv_heads, keys, dim), key=mx.random.key(seed + 2))
    return q, k, v


# lengths across several blocks of queries (32), a last block cut short, fewer queries
# than keys (a cache in front), GQA groups of 1-3, and no mask at all
@pytest.mark.parametrize("heads,kv_heads,length,keys,causal", [
    (2, 2, 130, 130, True), (6, 2, 200, 200, True), (3, 1, 70, 150, True),
    (4, 2, 100, 100, False), (2, 1, 1, 40, True)])
def test_fused_attention_and_its_gradients(kernels, heads, kv_heads, length, keys, causal):
    q, k, v = _qkv(2, heads, kv_heads, length, keys, 32, 20)
    out = native.attention(q, k, v, 0.2, causal)
    assert out.shape == q.shape
    assert rel_err(out, attention_ref(np.array(q), np.array(k), np.array(v), 0.2, causal)) < 2e-5
    cotangent = mx.random.normal(q.shape, key=mx.random.key(23))
    ours = mx.vjp(lambda q, k, v: native.attention(q, k, v, 0.2, causal), [q, k, v],
                  [cotangent])[1]
    theirs = mx.vjp(lambda q, k, v: mlx_attention(q, k, v, 0.2, causal), [q, k, v],
                    [cotangent])[1]
    for a, b in zip(ours, theirs, strict=True):
        assert rel_err(a, b) < 2e-5


def test_fused_attention_keeps_packed_documents_apart(kernels):
    """Documents start mid-block and across blocks of queries: each sees its own only."""
    length = 150
    q, k, v = _qkv(2, 4, 2, length, length, 16, 30)
    first = np.zeros((2, length), np.int32)
    for row, cuts in enumerate(([40, 90, 149], [70])):
        for cut in cuts:
            first[row, cut:] = cut
    starts = mx.array(first)
    out = native.attention(q, k, v, 0.3, True, starts)
    want = attention_ref(np.array(q), np.array(k), np.array(v), 0.3, True, first)
    assert rel_err(out, want) < 2e-5
    # the plain causal result differs: the mask is what makes them agree
    assert rel_err(native.attention(q, k, v, 0.3, True), want) > 1e-2
    cotangent = mx.random.normal(q.shape, key=mx.random.key(33))
    ours = mx.vjp(lambda q, k, v: native.attention(q, k, v, 0.3, True, starts), [q, k, v],
                  [cotangent])[1]
    theirs = mx.vjp(lambda q, k, v: mlx_attention(q, k, v, 0.3, True, starts), [q, k, v],
                    [cotangent])[1]
    for a, b in zip(ours, theirs, strict=True):
        assert rel_err(a, b) < 2e-5


def test_fused_attention_is_the_same_on_any_thread_count_and_compiled(kernels):
    q, k, v = _qkv(2, 6, 2, 130, 130, 32, 40)
    cotangent = mx.random.normal(q.shape, key=mx.random.key(43))

    def all_of(q: mx.array, k: mx.array, v: mx.array) -> mx.array:
        out, grads = mx.vjp(lambda q, k, v: native.attention(q, k, v, 0.2, True), [q, k, v],
                            [cotangent])
        return mx.concatenate([a.reshape(-1) for a in (*out, *grads)])

    outs = per_thread_count(kernels, lambda: all_of(q, k, v))
    assert all(mx.array_equal(outs[0], other).item() for other in outs[1:])
    assert mx.array_equal(mx.compile(all_of)(q, k, v), outs[0]).item()


def test_fused_attention_refuses_bad_shapes_with_a_plain_error(kernels):
    q, k, v = _qkv(1, 3, 2, 8, 8, 16, 50)
    with pytest.raises(ValueError, match="heads a multiple of kv_heads"):
        kernels.attention(q, k, v, 1.0, True)
    q, k, v = _qkv(1, 2, 1, 9, 8, 16, 50)
    with pytest.raises(ValueError, match="queries <= keys"):
        kernels.attention(q, k, v, 1.0, True)
    with pytest.raises(ValueError, match="must be float32"):
        kernels.attention(q.astype(mx.float16), k, v, 1.0, False)
    with pytest.raises(ValueError, match="segment starts must be"):
        kernels.attention(q[:, :, :8], k, v, 1.0, True, mx.zeros((1, 7), mx.int32))


def test_fused_attention_gives_openblas_its_thread_count_back(kernels):
    """The kernel holds OpenBLAS at one thread while it runs (its own threads split the
    heads); the count the policy set must be there again for the step's matmuls."""
    import ctypes

    from tscu_tui.engine.models.blas import set_blas_threads

    process = ctypes.CDLL(None)
    before = process.openblas_get_num_threads()
    q, k, v = _qkv(1, 2, 1, 70, 70, 16, 60)
    try:
        for count in (2, 1, 3):
            assert set_blas_threads(count)
            out = mx.vjp(lambda q, k, v: native.attention(q, k, v, 0.5, True), [q, k, v],
                         [q])[1]
            mx.eval(out)
            assert process.openblas_get_num_threads() == count
    finally:
        set_blas_threads(before)
