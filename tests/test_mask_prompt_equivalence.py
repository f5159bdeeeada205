"""tscu's masked loss against mlx-lm's `--mask-prompt` loss on the same completions data.

mlx-lm (0.32) renders each {"prompt", "completion"} record with the chat template,
trains the targets from the end of the prompt's rendering with the generation
prompt (`offset`) to the record's length, and pads a batch with token 0; its mask
(`steps <= lengths`) includes the first padding position, so it also trains the
model to write token 0 after the record. tscu appends the tokenizer's EOS there
instead. For the embedded model EOS is token 0, so the two losses are the same
number; for SmolLM2 EOS is <|im_end|> (2) and token 0 is <|endoftext|>, so they
differ in that one target of each record, and are the same number once tscu's
appended EOS is read as 0 (README, Chat data). tscu packs the records into
blocks with document masks; mlx-lm gives each its own padded row.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tscu_tui.engine.data import PreparedDataset, PrepareOptions, prepare_dataset
from tscu_tui.engine.models.cpu_fastpath import prepare_for_cpu
from tscu_tui.engine.models.load import EMBEDDED_MODEL, load_model
from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train.batches import SplitBlocks
from tscu_tui.engine.train.objective import loss_sums

RECORDS = [{"prompt": f"What does the builtin number {i} of the list do?",
            "completion": f"It returns item {i} " + "and keeps the rest. " * (i % 4)}
           for i in range(8)]


def _mlx_lm_loss(model, tokenizer) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    from mlx_lm.tuner.datasets import CacheDataset, CompletionsDataset
    from mlx_lm.tuner.trainer import default_loss, iterate_batches

    dataset = CacheDataset(CompletionsDataset(RECORDS, tokenizer, "prompt", "completion",
                                              mask_prompt=True))
    batch, lengths = next(iterate_batches(dataset, len(RECORDS), 2048))
    ce, ntoks = default_loss(model, batch, lengths)
    return float(ce.item()), int(ntoks.item())


def _tscu_loss(model, folder: Path, model_name: str, eos_as: int | None = None
               ) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    (folder / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    out = folder / "data"
    if not out.exists():
        prepare_dataset(PrepareOptions(dataset=str(folder / "d.jsonl"), model=model_name,
                                       output_dir=out, block_size=128,
                                       validation_fraction=0.0, train_on="completions"))
    data = PreparedDataset.open(out)
    blocks = SplitBlocks(data, "train")
    assert data.meta.split("train").documents == len(RECORDS)
    batch = blocks.batch(slice(0, len(blocks)))
    if eos_as is not None:  # read the EOS tscu appends after each record as `eos_as`
        tokens = np.array(batch.tokens)
        flags = np.asarray(blocks.flags)
        ends = np.zeros_like(flags, dtype=bool)
        ends[:, :-1] = (flags[:, 1:] & 2) > 0  # the token before a segment start
        ends[:, -1] = True
        tokens[ends & (tokens == data.meta.eos_token_id)] = eos_as
        batch = type(batch)(mx.array(tokens), batch.weights, batch.starts)
    total, count = loss_sums(model, batch)
    return float(total.item()) / float(count.item()), int(count.item())


def test_embedded_model_masked_loss_equals_mlx_lm_mask_prompt(tmp_path: Path) -> None:
    model, tokenizer, _ = load_model(EMBEDDED_MODEL)
    prepare_for_cpu(model)
    assert tokenizer.eos_token_id == 0
    ours, n_ours = _tscu_loss(model, tmp_path, EMBEDDED_MODEL)
    theirs, n_theirs = _mlx_lm_loss(model, tokenizer)
    assert n_ours == n_theirs
    assert ours == pytest.approx(theirs, rel=1e-4)


def test_smollm2_masked_loss_equals_mlx_lm_mask_prompt_but_for_the_end_token(
        tmp_path: Path, smollm2_dir: Path) -> None:
    model, tokenizer, _ = load_model("smollm2-135m")
    prepare_for_cpu(model)  # both losses run the same forward pass; this one is fast on CPU
    assert tokenizer.eos_token_id == 2
    theirs, n_theirs = _mlx_lm_loss(model, tokenizer)
    ours, n_ours = _tscu_loss(model, tmp_path, "smollm2-135m")
    assert n_ours == n_theirs
    assert ours != pytest.approx(theirs, rel=0.05)  # the end target differs: EOS vs 0
    same, _ = _tscu_loss(model, tmp_path, "smollm2-135m", eos_as=0)
    # mlx-lm's loss is nn.losses.cross_entropy, tscu's the native kernel (a polynomial
    # exp): measured 2.3e-5 apart on this batch.
    assert same == pytest.approx(theirs, rel=1e-4)
