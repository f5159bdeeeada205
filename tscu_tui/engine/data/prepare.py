"""`prepare_dataset`: read a source, tokenize, pack, write a prepared dataset.

Order matters for quick, clean failures: options are checked first, then the
source is resolved (missing files, unknown names and an unreachable Hub fail
here, before the tokenizer loads), then everything is written into a staging
folder that only becomes `output_dir` once meta.json is in place. Any error or
cancel removes the staging folder, so nothing half-written ever looks valid.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

from tscu_tui import __version__
from tscu_tui.engine.data.documents import (
    TEST,
    TRAIN,
    VALIDATION,
    ChatTemplate,
    Document,
    ReadPosition,
    Source,
)
from tscu_tui.engine.data.options import PrepareOptions, PrepareProgress
from tscu_tui.engine.data.packing import (
    BATCH_CHARACTERS,
    BATCH_DOCUMENTS,
    DocumentRouter,
    Encoder,
    Sink,
    SplitSink,
    TokenFile,
    check_block_size_fits,
    sha256_files,
)
from tscu_tui.engine.data.sources import resolve_source
from tscu_tui.engine.data.store import (
    FORMAT_VERSION,
    META_FILE,
    SPLITS,
    DatasetMeta,
    SplitMeta,
    split_file,
)
from tscu_tui.engine.errors import DataError
from tscu_tui.engine.fileio import atomic_directory, atomic_write_json

ProgressCallback = Callable[[PrepareProgress], None]
#: Seconds between progress reports (stage changes are always reported).
PROGRESS_INTERVAL = 0.2


class PrepareCancelled(DataError):
    """The caller set the cancel event; nothing was written."""

    def __init__(self) -> None:
        super().__init__("cancelled: no dataset was written")


def prepare_dataset(options: PrepareOptions, progress: ProgressCallback | None = None,
                    cancel: threading.Event | None = None) -> DatasetMeta:
    """Prepare `options.dataset` into `options.output_dir` and return its metadata.

    Raises DataError/ModelError with one line on bad input, PrepareCancelled
    when `cancel` is set; in every failure case `output_dir` is left untouched.
    """
    from tscu_tui.engine.models.load import load_tokenizer

    options.check()
    reporter = _Reporter(progress, cancel)
    reporter.stage("resolving")
    source = resolve_source(options)
    reporter.check_cancel()
    reporter.stage("tokenizer")
    tokenizer = load_tokenizer(options.model)
    encoder = Encoder(tokenizer, options.model)
    chat = ChatTemplate(tokenizer)
    reporter.check_cancel()
    try:
        with atomic_directory(options.output_dir, replace=options.overwrite) as staging:
            meta = _write(staging, source, options, encoder, chat, reporter)
    except FileExistsError:  # created by someone else while we were working
        raise DataError(f"output directory {options.output_dir} already exists; "
                        "allow overwriting to replace it") from None
    reporter.stage("done", force_tokens=sum(split.tokens for split in meta.splits.values()))
    return meta


def _write(staging: Path, source: Source, options: PrepareOptions, encoder: Encoder,
           chat: ChatTemplate, reporter: _Reporter) -> DatasetMeta:
    files = {s: TokenFile(staging / split_file(s), encoder.dtype) for s in SPLITS}
    try:
        truncated = _write_splits(source, options, encoder, chat, reporter, files)
    finally:
        for file in files.values():
            file.close()
    reporter.check_cancel()  # the last point where cancelling still leaves nothing
    reporter.stage("hashing")
    digest = sha256_files([files[s].path for s in SPLITS])
    size = options.block_size
    meta = DatasetMeta(
        format_version=FORMAT_VERSION,
        source=source.describe(),
        model=options.model,
        tokenizer=type(encoder.hf).__name__,
        vocab_size=encoder.vocab_size,
        eos_token_id=encoder.eos_token_id,
        dtype=encoder.dtype.name,
        block_size=size,
        max_tokens=options.max_tokens,
        truncated=truncated,
        splits={s: SplitMeta(files[s].documents, files[s].tokens, files[s].tokens // size)
                for s in SPLITS},
        validation_source=("dataset split" if source.own_splits
                           else f"fraction {options.validation_fraction:g}"),
        content_hash=f"sha256:{digest}",
        created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        tscu_version=__version__,
        test_source=("dataset split" if source.own_test else
                     f"fraction {options.test_fraction:g}" if options.test_fraction else "none"),
    )
    atomic_write_json(staging / META_FILE, meta.to_json())
    return meta


def _write_splits(source: Source, options: PrepareOptions, encoder: Encoder,
                  chat: ChatTemplate, reporter: _Reporter, files: dict[str, TokenFile]) -> bool:
    """Read the training stream, routing whole documents to the held-out splits the
    source does not bring (validation and test by their fractions), then the held-out
    splits it does bring, each to its own file. True if --max-tokens cut anything short.

    Under --max-tokens the cap is on the total: a held-out split of the dataset's own
    gets its fraction of it (at least one block), the training stream the rest."""
    size, cap = options.block_size, options.max_tokens
    fractions = {VALIDATION: options.fraction, TEST: options.test_share}
    own = {VALIDATION: source.own_splits, TEST: source.own_test}
    derived = {s: f for s, f in fractions.items() if not own[s] and f > 0}
    shares = {TRAIN: 1 - sum(derived.values(), Fraction(0)), **derived}
    caps: dict[str, int | None] = {s: None for s in SPLITS}
    if cap is not None:
        for split in (s for s in own if own[s]):
            f = fractions[split] or fractions[VALIDATION]
            caps[split] = max(-(-cap * f.numerator // f.denominator), size)
        caps[TRAIN] = cap - sum(c for c in caps.values() if c is not None)
        if caps[TRAIN] < size:
            raise DataError(f"data.max_tokens {cap} is too small: the held-out splits take "
                            f"{cap - caps[TRAIN]} tokens and training needs at least one "
                            f"block of {size}")
    router = DocumentRouter(shares, {s: files[s] for s in shares})
    truncated = _stream(source, TRAIN, router, caps[TRAIN], encoder, chat, reporter)
    router.finish()
    where = source.where()
    if sum(files[s].tokens for s in shares) == 0:
        raise DataError(f"{where}: no documents (empty, or only blank text)")
    for split, share in derived.items():
        key = f"data.{split}_fraction"
        if files[split].tokens < size:
            documents = sum(files[s].documents for s in shares)
            raise DataError(
                f"{where}: too little text for a {split} set: {key} {float(share):g} took "
                f"{files[split].documents} of {documents} documents ({files[split].tokens} "
                f"tokens), fewer than one block of {size}, and a held-out split takes whole "
                f"documents; add text or documents, lower data.block_size or raise {key}")
    if derived and files[TRAIN].tokens < size:
        keys = " and ".join(f"data.{s}_fraction" for s in derived)
        raise DataError(f"{where}: {keys} leave {files[TRAIN].tokens} tokens for training, "
                        f"fewer than one block of {size}; lower {keys} or add text")
    check_block_size_fits(files[TRAIN].tokens, size, where)
    for split in (s for s in own if own[s]):
        truncated |= _stream(source, split, SplitSink(files[split]), caps[split], encoder,
                             chat, reporter)
        label = f"{where} ({split} split)"
        if files[split].documents == 0 and files[split].tokens == 0:
            raise DataError(f"{label}: no documents (empty, or only blank text)")
        check_block_size_fits(files[split].tokens, size, label)
    return truncated


def _stream(source: Source, split: str, sink: Sink, cap: int | None, encoder: Encoder,
            chat: ChatTemplate, reporter: _Reporter) -> bool:
    """Read `split`, encode in bounded batches, feed `sink`. True if `cap` cut it short."""
    position = ReadPosition()
    documents = source.documents(split, chat, position)
    reporter.start(split, position, cap)
    batch: list[Document] = []
    chars = 0
    written = 0

    def flush() -> bool:
        nonlocal written
        tokens, ends = encoder.encode(batch)
        full = cap is not None and written + tokens.size >= cap
        if full:
            keep = cap - written  # type: ignore[operator]
            # The last document may be cut; it counts as a document only with its EOS.
            tokens, ends = tokens[:keep], ends[ends < keep]
        sink.add(tokens, ends)
        written += int(tokens.size)
        reporter.advance(len(batch), int(tokens.size))
        return full

    try:
        for doc in documents:
            reporter.check_cancel()
            if not doc.text.strip():  # empty documents would be a lone EOS: skip them
                continue
            batch.append(doc)
            chars += len(doc.text)
            if len(batch) >= BATCH_DOCUMENTS or chars >= BATCH_CHARACTERS:
                if flush():
                    return True
                batch, chars = [], 0
        return bool(batch) and flush()
    finally:
        documents.close()  # type: ignore[attr-defined]  (stop a streaming reader early)


class _Reporter:
    """Throttles progress callbacks and checks the cancel event."""

    def __init__(self, callback: ProgressCallback | None, cancel: threading.Event | None) -> None:
        self._callback = callback
        self._cancel = cancel
        self._last = 0.0
        self._split: str | None = None
        self._position = ReadPosition()
        self._cap: int | None = None
        self._documents = 0
        self._tokens = 0

    def check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise PrepareCancelled()

    def stage(self, stage: str, force_tokens: int | None = None) -> None:
        if force_tokens is not None:
            self._tokens = force_tokens
        self._emit(stage)

    def start(self, split: str, position: ReadPosition, cap: int | None) -> None:
        self._split, self._position, self._cap = split, position, cap
        self._documents = self._tokens = 0
        self._emit("reading")

    def advance(self, documents: int, tokens: int) -> None:
        self._documents += documents
        self._tokens += tokens
        if time.monotonic() - self._last >= PROGRESS_INTERVAL:
            self._emit("reading")

    def _emit(self, stage: str) -> None:
        if self._callback is None:
            return
        self._last = time.monotonic()
        if stage == "reading" and self._cap is not None:
            completed, total, unit = self._tokens, self._cap, "tokens"
        else:
            pos = self._position
            completed, total, unit = pos.completed, pos.total, pos.unit
        self._callback(PrepareProgress(stage=stage, split=self._split, documents=self._documents,
                                       tokens=self._tokens, completed=completed, total=total,
                                       unit=unit))
