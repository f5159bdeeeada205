"""`preview_dataset`: the first documents of a source, tokenized as preparation would."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from tscu_tui.engine.config.assets import DEMO_CORPUS
from tscu_tui.engine.data import PreparedDataset, PrepareOptions, prepare_dataset
from tscu_tui.engine.data.preview import PREVIEW_CHARS, preview_dataset
from tscu_tui.engine.errors import DataError
from tscu_tui.engine.models.load import EMBEDDED_MODEL, load_tokenizer


def _options(dataset: Path | str, out: Path, **kw: object) -> PrepareOptions:
    return PrepareOptions(dataset=str(dataset), model=EMBEDDED_MODEL, output_dir=out,
                          block_size=64, **kw)  # type: ignore[arg-type]


def test_demo_corpus_preview_counts_tokens_like_preparation(tmp_path: Path) -> None:
    preview = preview_dataset(_options(DEMO_CORPUS, tmp_path / "out", max_tokens=20_000), n_docs=4)
    texts = [json.loads(line)["text"] for line in DEMO_CORPUS.read_text().splitlines()[:4]]
    hf = load_tokenizer(EMBEDDED_MODEL)._tokenizer  # type: ignore[attr-defined]
    expected = [len(hf(t)["input_ids"]) + 1 for t in texts]  # + the EOS between documents

    assert [d.tokens for d in preview.documents] == expected
    assert [d.chars for d in preview.documents] == [len(t) for t in texts]
    assert all(d.text == t[:PREVIEW_CHARS] and d.truncated for d, t in
               zip(preview.documents, texts, strict=True))
    assert preview.mean_tokens == pytest.approx(sum(expected) / 4)
    assert preview.median_tokens == statistics.median(expected)
    assert preview.chars_per_token == pytest.approx(sum(map(len, texts)) / sum(expected))
    assert preview.max_tokens == 20_000 and preview.estimated_blocks == 20_000 // 64
    assert not (tmp_path / "out").exists()  # a preview never writes

    # Without a limit the size is extrapolated from the bytes read; the demo corpus
    # really holds ~571k tokens, so the estimate must be in that neighbourhood.
    whole = preview_dataset(_options(DEMO_CORPUS, tmp_path / "out"), n_docs=4)
    assert whole.estimated_tokens is not None and 300_000 < whole.estimated_tokens < 900_000
    assert whole.estimated_blocks == whole.estimated_tokens // 64


def test_preview_ignores_an_existing_output_folder(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(f"Paragraph {i} says something." for i in range(400)))
    prepare_dataset(_options(corpus, tmp_path / "out", validation_fraction=0.05))
    preview = preview_dataset(_options(corpus, tmp_path / "out"), n_docs=3)
    assert [d.text for d in preview.documents] == [f"Paragraph {i} says something."
                                                   for i in range(3)]
    assert PreparedDataset.open(tmp_path / "out").meta.block_size == 64  # untouched


def test_bad_jsonl_line_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "one"}\n{"text": "two"}\n{"text": oops}\n{"text": "four"}\n')
    with pytest.raises(DataError) as caught:
        preview_dataset(_options(bad, tmp_path / "out"), n_docs=5)
    message = str(caught.value)
    assert message.startswith(f"{bad}:3: invalid JSON") and "\n" not in message
    # Only as far as it reads: two good documents ask for no more than line 2.
    assert len(preview_dataset(_options(bad, tmp_path / "out"), n_docs=2).documents) == 2


def test_bad_options_and_missing_files_fail_before_the_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        preview_dataset(_options(tmp_path / "nope.jsonl", tmp_path / "out"))
    with pytest.raises(DataError, match="data.block_size must be an integer >= 2"):
        preview_dataset(PrepareOptions(dataset=str(DEMO_CORPUS), model=EMBEDDED_MODEL,
                                       output_dir=tmp_path / "out", block_size=1))
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(DataError, match="no documents"):
        preview_dataset(_options(tmp_path / "blank.txt", tmp_path / "out"))
