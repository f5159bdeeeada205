"""Packed documents do not see each other, in every attention path.

A prepared block holds several documents (chat records of the embedded model's
template here). The loss of a packed batch must equal the sum of its documents'
losses computed one at a time, each at positions 0, 1, ... as it would be alone:
through mlx-lm's own attention (the boolean mask), tscu's CPU attention with the
MLX-op softmax and with the native segment softmax, with gradient checkpointing,
and with the chunked loss head. Gradients too, on the native path. And a test
that fails if attention leaks: changing one document changes no other
document's per-token loss (and does, without the document mask).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tscu_tui.engine.data import PreparedDataset, PrepareOptions, prepare_dataset
from tscu_tui.engine.data.encoding import START, TRAINED
from tscu_tui.engine.models import native
from tscu_tui.engine.models.checkpointing import set_loss_chunking, use_grad_checkpoint
from tscu_tui.engine.models.cpu_fastpath import prepare_for_cpu
from tscu_tui.engine.models.load import EMBEDDED_MODEL, load_model
from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train import lora
from tscu_tui.engine.train.batches import Batch, SplitBlocks
from tscu_tui.engine.train.objective import _per_token, loss_sums

BLOCKS = 2
#: float32 on both sides; the packed pass differs only in summation order and in the
#: RoPE angles of a document that does not start at position 0 (the scores depend on
#: distances only, up to rounding): measured 2e-8 to 6e-8 relative on every path, while
#: the same batch without the document mask is 8e-4 off.
RTOL = 1e-6


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> SplitBlocks:
    """Chat records of varied length, prepared into 64-token blocks: 2-5 documents each."""
    folder = tmp_path_factory.mktemp("packed")
    lines = []
    for i in range(60):
        messages = [{"role": "user", "content": f"Name {i % 7 + 1} colours."},
                    {"role": "assistant", "content": " ".join(["red", "green", "blue"]
                                                              * (i % 3 + 1))}]
        lines.append(json.dumps({"messages": messages}))
    (folder / "chat.jsonl").write_text("\n".join(lines) + "\n")
    prepare_dataset(PrepareOptions(dataset=str(folder / "chat.jsonl"), model=EMBEDDED_MODEL,
                                   output_dir=folder / "data", block_size=64,
                                   validation_fraction=0.0))
    blocks = SplitBlocks(PreparedDataset.open(folder / "data"), "train")
    assert blocks.flags is not None
    segments = [np.count_nonzero(f & START) for f in blocks.flags[:BLOCKS]]
    assert min(segments) >= 2, segments  # several documents in every block
    return blocks


def _model(path: str, *, checkpoint: bool = False, chunk: int = 0):  # type: ignore[no-untyped-def]
    model, _, _ = load_model(EMBEDDED_MODEL)
    from tscu_tui.engine.config import load_config

    mx.random.seed(0)  # the adapters' initial values
    lora.apply_lora(model, load_config(None, ["lora.r=4", "lora.dropout=0.0"]).lora)
    # Non-zero adapters, so the LoRA path is part of what is compared.
    for _, layer in model.named_modules():
        if hasattr(layer, "lora_b"):
            layer.lora_b = mx.random.normal(layer.lora_b.shape, key=mx.random.key(1)) * 0.02
    if path != "mlx-lm":
        prepare_for_cpu(model)
    if checkpoint:
        use_grad_checkpoint(model)
    if chunk:
        set_loss_chunking(model, 1)  # chunks only for huge logits: force a small chunk
        model._tscu_loss_chunk_tokens = chunk
    model.train()
    return model


def _documents(blocks: SplitBlocks, n: int = BLOCKS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each document of the first `n` blocks: its tokens and which targets train."""
    docs = []
    assert blocks.flags is not None
    for tokens, flags in zip(blocks.blocks[:n], blocks.flags[:n], strict=True):
        starts = [*np.flatnonzero(flags & START).tolist(), len(tokens)]
        for a, b in zip(starts, starts[1:], strict=False):
            docs.append((np.asarray(tokens[a:b]), (flags[a + 1:b] & TRAINED) > 0))
    return docs


def _one_at_a_time(model, docs) -> float:  # type: ignore[no-untyped-def]
    total = 0.0
    for tokens, trained in docs:
        if len(tokens) < 2 or not trained.any():
            continue
        ids = mx.array(tokens[None].astype(np.int32))
        per_token = _per_token(model, model(ids[:, :-1]), ids[:, 1:])[0]
        total += float((per_token * mx.array(trained.astype(np.float32))).sum().item())
    return total


@pytest.fixture(params=["mlx-lm", "mlx-ops", "native", "native+checkpoint", "native+chunked"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param.startswith("native") and not native.available():
        pytest.skip(f"native kernels not built: {native.status().reason}")
    if request.param == "mlx-ops":
        monkeypatch.setattr(native, "available", lambda: False)
    return str(request.param)


def test_packed_loss_is_the_sum_of_the_documents_alone(packed: SplitBlocks, path: str) -> None:
    model = _model(path, checkpoint="checkpoint" in path, chunk=40 if "chunked" in path else 0)
    batch = packed.batch(slice(0, BLOCKS))
    total, count = loss_sums(model, batch)
    docs = _documents(packed)
    assert int(count.item()) == sum(int(t.sum()) for _, t in docs)
    alone = _one_at_a_time(model, docs)
    assert float(total.item()) == pytest.approx(alone, rel=RTOL)
    # Without the document mask the same comparison fails (by several tolerances).
    leaky = loss_sums(model, Batch(batch.tokens, batch.weights, None))[0]
    assert float(leaky.item()) != pytest.approx(alone, rel=100 * RTOL)


def test_packed_gradients_are_the_sum_of_the_documents_alone(packed: SplitBlocks,
                                                             path: str) -> None:
    if path not in ("native", "native+checkpoint"):
        pytest.skip("the backward kernels and the recomputation are what this adds")
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    model = _model(path, checkpoint="checkpoint" in path)
    batch = packed.batch(slice(0, 2))
    packed_grads = nn.value_and_grad(model, lambda m: loss_sums(m, batch)[0])(model)[1]
    docs = _documents(packed, 2)
    alone_grads = nn.value_and_grad(model, lambda m: mx.array(0.0) + sum(
        (_per_token(m, m(mx.array(t[None, :-1].astype(np.int32))),
                    mx.array(t[None, 1:].astype(np.int32)))[0]
         * mx.array(w.astype(np.float32))).sum() for t, w in docs if len(t) > 1))(model)[1]
    for (name, a), (_, b) in zip(tree_flatten(packed_grads), tree_flatten(alone_grads),
                                 strict=True):
        scale = float(mx.abs(b).max().item()) or 1.0
        assert float(mx.abs(a - b).max().item()) <= 2e-4 * scale, name


def test_attention_does_not_leak_between_documents(packed: SplitBlocks, path: str) -> None:
    """Replace the first document of each block with other tokens: every later position's
    loss stays the same with the mask, and changes without it."""
    if "+" in path:
        pytest.skip("attention is the plain native path's; the loss test covers the rest")
    model = _model(path)
    batch = packed.batch(slice(0, BLOCKS))
    tokens = np.array(packed.blocks[:BLOCKS], dtype=np.int32)
    assert packed.flags is not None
    flags = np.asarray(packed.flags[:BLOCKS])
    first_end = [int(np.flatnonzero(f & START)[1]) for f in flags]  # the second's start
    changed = tokens.copy()
    for row, end in enumerate(first_end):
        changed[row, :end] = (tokens[row, :end] * 7 + 11) % 4000 + 3
    for starts, should_leak in ((batch.starts, False), (None, True)):
        before = _per_token(model, _logits(model, tokens, starts), mx.array(tokens[:, 1:]))
        after = _per_token(model, _logits(model, changed, starts), mx.array(changed[:, 1:]))
        diff = np.abs(np.array(before) - np.array(after))
        later = np.concatenate([diff[row, end:] for row, end in enumerate(first_end)])
        assert (later.max() > 1e-3) == should_leak, (should_leak, later.max())


def _logits(model, tokens: np.ndarray, starts):  # type: ignore[no-untyped-def]
    from tscu_tui.engine.models.document_mask import document_cache

    inputs = mx.array(tokens[:, :-1])
    if starts is None:
        return model(inputs)
    return model(inputs, cache=document_cache(model, starts))
