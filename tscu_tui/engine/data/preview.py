"""`preview_dataset`: the first few documents of a source and their token statistics.

A preview answers "is this the text I meant, and how big will it be?" before a
long preparation starts. It reads only the first `n_docs` non-blank documents
(Hub sources stream, so nothing else is downloaded), tokenizes them exactly as
`prepare_dataset` would (same Encoder: text + EOS, templates for chat records),
and extrapolates the corpus size from how far through its input the reader got.
Errors are the same one-line DataError/ModelError as preparation raises.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from tscu_tui.engine.data.documents import TRAIN, Document, ReadPosition
from tscu_tui.engine.data.encoding import Encoder
from tscu_tui.engine.data.options import PrepareOptions
from tscu_tui.engine.data.prepare import make_template
from tscu_tui.engine.data.sources import resolve_source
from tscu_tui.engine.errors import DataError

#: Characters of each document kept for display (the token count covers the whole text).
PREVIEW_CHARS = 240


@dataclass(frozen=True)
class PreviewDocument:
    """One document: its opening text, and its full length in characters and tokens."""

    text: str
    chars: int
    tokens: int  # including the EOS appended between documents

    @property
    def truncated(self) -> bool:
        return len(self.text) < self.chars


@dataclass(frozen=True)
class DatasetPreview:
    """What a preview found. Estimates are None when the reader cannot tell how far
    through its input it is (e.g. a streamed Hub split of unknown length)."""

    source: str
    documents: tuple[PreviewDocument, ...]
    mean_tokens: float
    median_tokens: float
    chars_per_token: float
    block_size: int
    max_tokens: int | None
    estimated_tokens: int | None  # whole source (first split), extrapolated from the sample
    estimated_blocks: int | None  # what preparation would pack, max_tokens applied

    @property
    def sample_tokens(self) -> int:
        return sum(d.tokens for d in self.documents)


def preview_dataset(options: PrepareOptions, n_docs: int = 5) -> DatasetPreview:
    """Read and tokenize the first `n_docs` documents of `options.dataset`.

    Raises DataError/ModelError with one line (bad path, bad JSONL line, unreachable
    Hub, unknown model); never touches `options.output_dir`.
    """
    from tscu_tui.engine.models.load import load_tokenizer

    if n_docs < 1:
        raise DataError(f"a preview needs at least one document, got n_docs={n_docs}")
    options.check(output=False)
    source = resolve_source(options)
    tokenizer = load_tokenizer(options.model)
    encoder = Encoder(tokenizer, options.model)
    position = ReadPosition()
    documents = source.documents(TRAIN, make_template(tokenizer, options), position)
    sample: list[Document] = []
    try:
        for doc in documents:
            if doc.text.strip():  # preparation skips blank documents too
                sample.append(doc)
                if len(sample) == n_docs:
                    break
    finally:
        documents.close()  # type: ignore[attr-defined]  (stop a streaming reader early)
    if not sample:
        raise DataError(f"{source.where()}: no documents (empty, or only blank text)")
    ends = encoder.encode(sample).ends
    counts = [int(n) for n in np.diff(ends, prepend=-1)]  # ends: each one's last token
    return _summarise(source.where(), sample, counts, position, options)


def _summarise(where: str, sample: list[Document], counts: list[int], position: ReadPosition,
               options: PrepareOptions) -> DatasetPreview:
    total_tokens = sum(counts)
    total_chars = sum(len(d.text) for d in sample)
    estimated: int | None = None
    # The reader has consumed `completed` of `total` units (bytes or rows) to yield the
    # sample, so the whole input holds about total/completed times the sample's tokens.
    if position.total and position.completed:
        estimated = round(total_tokens * position.total / position.completed)
    cap = options.max_tokens
    packed = min(estimated, cap) if estimated is not None and cap else (estimated or cap)
    return DatasetPreview(
        source=where,
        documents=tuple(PreviewDocument(d.text[:PREVIEW_CHARS], len(d.text), n)
                        for d, n in zip(sample, counts, strict=True)),
        mean_tokens=total_tokens / len(counts),
        median_tokens=float(statistics.median(counts)),
        chars_per_token=total_chars / total_tokens,
        block_size=options.block_size,
        max_tokens=cap,
        estimated_tokens=estimated,
        estimated_blocks=None if packed is None else packed // options.block_size,
    )
