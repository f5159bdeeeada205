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
from pathlib import Path

from tscu_tui import __version__
from tscu_tui.engine.data.documents import (
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
    Encoder,
    FractionRouter,
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
    reporter.stage("done", force_tokens=meta.splits[TRAIN].tokens
                   + meta.splits[VALIDATION].tokens)
    return meta


def _write(staging: Path, source: Source, options: PrepareOptions, encoder: Encoder,
           chat: ChatTemplate, reporter: _Reporter) -> DatasetMeta:
    files = {s: TokenFile(staging / split_file(s), encoder.dtype) for s in SPLITS}
    try:
        if source.own_splits:
            truncated = _write_own_splits(source, options, encoder, chat, reporter, files)
            validation_source = "dataset split"
        else:
            truncated = _write_fraction(source, options, encoder, chat, reporter, files)
            validation_source = f"fraction {options.validation_fraction:g}"
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
        validation_source=validation_source,
        content_hash=f"sha256:{digest}",
        created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        tscu_version=__version__,
    )
    atomic_write_json(staging / META_FILE, meta.to_json())
    return meta


def _write_own_splits(source: Source, options: PrepareOptions, encoder: Encoder,
                      chat: ChatTemplate, reporter: _Reporter,
                      files: dict[str, TokenFile]) -> bool:
    """The dataset brings train and validation splits: each goes to its own file, and
    the validation fraction does not apply - except under --max-tokens, which caps the
    total: validation then gets the fraction f of it (at least one block)."""
    size, cap = options.block_size, options.max_tokens
    caps: dict[str, int | None] = {TRAIN: cap, VALIDATION: None}
    if cap is not None:
        f = options.fraction
        caps[VALIDATION] = max(-(-cap * f.numerator // f.denominator), size)
        caps[TRAIN] = cap - caps[VALIDATION]
        if caps[TRAIN] < size:
            raise DataError(f"data.max_tokens {cap} is too small: validation takes "
                            f"{caps[VALIDATION]} tokens and training needs at least one "
                            f"block of {size}")
    truncated = False
    for split in SPLITS:
        truncated |= _stream(source, split, SplitSink(files[split]), caps[split], encoder, chat,
                             reporter)
        label = f"{source.where()} ({split} split)"
        if files[split].documents == 0 and files[split].tokens == 0:
            raise DataError(f"{label}: no documents (empty, or only blank text)")
        check_block_size_fits(files[split].tokens, size, label)
    return truncated


def _write_fraction(source: Source, options: PrepareOptions, encoder: Encoder,
                    chat: ChatTemplate, reporter: _Reporter, files: dict[str, TokenFile]) -> bool:
    """One stream, split at block level by the validation fraction."""
    size = options.block_size
    router = FractionRouter(size, options.fraction, files[TRAIN], files[VALIDATION])
    truncated = _stream(source, TRAIN, router, options.max_tokens, encoder, chat, reporter)
    router.finish()
    where = source.where()
    total = files[TRAIN].tokens + files[VALIDATION].tokens
    if total == 0:
        raise DataError(f"{where}: no documents (empty, or only blank text)")
    needed = router.validation_blocks_needed()
    if needed and files[VALIDATION].tokens == 0:
        raise DataError(f"{where}: too little text for a validation set: {total} tokens make "
                        f"{router.blocks} blocks of {size}, and validation fraction "
                        f"{options.validation_fraction:g} needs at least {needed} blocks "
                        f"({needed * size} tokens); add text, lower data.block_size or raise "
                        "data.validation_fraction")
    check_block_size_fits(total, size, where)
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
