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
from typing import Any

from tscu_tui import __version__
from tscu_tui.engine.data.chat import read_template_file
from tscu_tui.engine.data.documents import (
    TEST,
    TRAIN,
    VALIDATION,
    ChatTemplate,
    Document,
    ReadPosition,
    Source,
)
from tscu_tui.engine.data.encoding import Encoded, Encoder
from tscu_tui.engine.data.examples import example_pieces, sample_prompts
from tscu_tui.engine.data.options import PrepareOptions, PrepareProgress
from tscu_tui.engine.data.packing import (
    BATCH_CHARACTERS,
    BATCH_DOCUMENTS,
    BlockPacker,
    DocumentRouter,
    LongRecords,
    Sink,
    SplitSink,
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
    flags_file,
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
    chat = make_template(tokenizer, options)
    reporter.check_cancel()
    try:
        with atomic_directory(options.output_dir, replace=options.overwrite) as staging:
            meta = _write(staging, source, options, encoder, chat, reporter)
    except FileExistsError:  # created by someone else while we were working
        raise DataError(f"output directory {options.output_dir} already exists; "
                        "allow overwriting to replace it") from None
    reporter.stage("done", force_tokens=sum(split.tokens for split in meta.splits.values()))
    return meta


def make_template(tokenizer: Any, options: PrepareOptions) -> ChatTemplate:
    """The template records are rendered with: `data.chat_template`'s file (checked now:
    one that does not render fails before anything is read) or the tokenizer's own."""
    if not options.chat_template:
        return ChatTemplate(tokenizer, None, options.chat_template_kwargs,
                            f"the chat template of '{options.model}'")
    path = str(Path(options.chat_template).expanduser())
    chat = ChatTemplate(tokenizer, read_template_file(path), options.chat_template_kwargs, path)
    chat.check()
    return chat


def _write(staging: Path, source: Source, options: PrepareOptions, encoder: Encoder,
           chat: ChatTemplate, reporter: _Reporter) -> DatasetMeta:
    files = {s: BlockPacker(staging / split_file(s), staging / flags_file(s), encoder.dtype,
                            options.block_size, options.long_records, encoder.eos_token_id)
             for s in SPLITS}
    try:
        truncated = _write_splits(source, options, encoder, chat, reporter, files)
    finally:
        for file in files.values():
            file.close()
    reporter.check_cancel()  # the last point where cancelling still leaves nothing
    reporter.stage("hashing")
    digest = sha256_files([files[s].path for s in SPLITS] + [files[s].flags_path for s in SPLITS])
    size = options.block_size
    long = LongRecords()
    for file in files.values():
        long.add(file.long)
    train = files[TRAIN]
    chat_used = encoder.templated > 0
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
        splits={s: SplitMeta(files[s].documents, files[s].tokens, files[s].tokens // size,
                             files[s].padding, files[s].loss_tokens) for s in SPLITS},
        validation_source=("dataset split" if source.own_splits
                           else f"fraction {options.validation_fraction:g}"),
        content_hash=f"sha256:{digest}",
        created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        tscu_version=__version__,
        test_source=("dataset split" if source.own_test else
                     f"fraction {options.test_fraction:g}" if options.test_fraction else "none"),
        train_on=options.train_on,
        long_records={"mode": options.long_records, "split": long.split,
                      "truncated": long.truncated, "dropped": long.dropped},
        chat_template=chat.describe() if chat_used else None,
        loss_token_share=(train.loss_tokens / train.content_tokens
                          if train.content_tokens else None),
        example=example_pieces(encoder, train.first) if chat_used else None,
        sample_prompts=sample_prompts(encoder, files[VALIDATION].first),
    )
    atomic_write_json(staging / META_FILE, meta.to_json())
    return meta


def _write_splits(source: Source, options: PrepareOptions, encoder: Encoder,
                  chat: ChatTemplate, reporter: _Reporter, files: dict[str, BlockPacker]) -> bool:
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
    for split in shares:
        files[split].finish()
    where = source.where()
    if sum(files[s].content_tokens for s in shares) == 0:
        raise DataError(f"{where}: no documents (empty, or only blank text)")
    for split, share in derived.items():
        key = f"data.{split}_fraction"
        if files[split].content_tokens < size:
            documents = sum(files[s].documents for s in shares)
            raise DataError(
                f"{where}: too little text for a {split} set: {key} {float(share):g} took "
                f"{files[split].documents} of {documents} documents "
                f"({files[split].content_tokens} tokens), fewer than one block of {size}, and "
                "a held-out split takes whole documents; add text or documents, lower "
                f"data.block_size or raise {key}")
    if derived and files[TRAIN].content_tokens < size:
        keys = " and ".join(f"data.{s}_fraction" for s in derived)
        raise DataError(f"{where}: {keys} leave {files[TRAIN].content_tokens} tokens for "
                        f"training, fewer than one block of {size}; lower {keys} or add text")
    check_block_size_fits(files[TRAIN].content_tokens, size, where)
    _check_trains(files[TRAIN], where)
    for split in (s for s in own if own[s]):
        sink = SplitSink(files[split])
        truncated |= _stream(source, split, sink, caps[split], encoder, chat, reporter)
        sink.finish()
        files[split].finish()
        label = f"{where} ({split} split)"
        if files[split].documents == 0 and files[split].tokens == 0:
            raise DataError(f"{label}: no documents (empty, or only blank text)")
        check_block_size_fits(files[split].content_tokens, size, label)
    return truncated


def _check_trains(train: BlockPacker, where: str) -> None:
    """Something must be left to learn from after data.long_records."""
    if train.loss_tokens == 0:
        raise DataError(f"{where}: no training token carries loss (data.long_records = "
                        f"\"{train.long_records}\" dropped {train.long.dropped} documents); "
                        "raise data.block_size or choose data.long_records = \"split\"")


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
        encoded = encoder.encode(batch)
        size = int(encoded.tokens.size)
        full = cap is not None and written + size >= cap
        if full:
            keep = cap - written  # type: ignore[operator]
            # The last document may be cut short (the sink places it without its EOS).
            encoded = Encoded(encoded.tokens[:keep], encoded.flags[:keep],
                              encoded.ends[encoded.ends < keep])
            size = keep
        sink.add(encoded)
        written += size
        reporter.advance(len(batch), size)
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
