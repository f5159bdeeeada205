"""Pack encoded documents into blocks that keep them apart, split by split.

Documents are routed whole to the splits (`DocumentRouter`): the splits a
dataset does not bring itself (validation, test) are taken from its documents
by token share, deterministic, spread evenly through the corpus rather than
taken from its end, and a document is never on two sides of a split.

Within a split, `BlockPacker` places each document whole inside one block
(best fit among a few open blocks, the rest of a block padded), so no
document is cut at a block edge and attention, masked per document by its
flags (encoding.py), never crosses into a neighbour. A document longer than a
block follows `data.long_records`: "split" into block-size pieces (each trains
without the text before it: counted and warned about), "truncate" to its first
block, or "drop". Each split is one flat token file and one flag file of whole
blocks; block i is tokens[i*B:(i+1)*B].
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from tscu_tui.engine.data.encoding import FLAGS_DTYPE, PAD, START, TRAINED, Encoded
from tscu_tui.engine.errors import DataError

#: A batch is flushed to the tokenizer at this many documents or characters,
#: which bounds memory (a few MB of Python ints) whatever the corpus size.
BATCH_DOCUMENTS = 256
BATCH_CHARACTERS = 512 * 1024
LONG_RECORDS = ("split", "truncate", "drop")
#: Blocks kept open for best-fit packing: more wastes less padding, each costs a block.
OPEN_BLOCKS = 16
#: Documents of each split kept as they came (examples, sample prompts: examples.py).
KEEP_FIRST = 3


@dataclass
class LongRecords:
    """What happened to documents longer than a block."""

    split: int = 0
    truncated: int = 0
    dropped: int = 0

    def add(self, other: LongRecords) -> None:
        self.split += other.split
        self.truncated += other.truncated
        self.dropped += other.dropped


@dataclass(eq=False)  # identity: open blocks are removed by `is`, never compared
class _Block:
    tokens: list[np.ndarray] = field(default_factory=list)
    flags: list[np.ndarray] = field(default_factory=list)
    used: int = 0


class BlockPacker:
    """One split's token and flag files, written a whole block at a time."""

    def __init__(self, path: Path, flags_path: Path, dtype: np.dtype, block_size: int,
                 long_records: str, pad_id: int) -> None:
        self.path, self.flags_path = path, flags_path
        self.dtype, self.size = dtype, block_size
        self.long_records, self.pad_id = long_records, pad_id
        self.tokens = self.padding = self.loss_tokens = 0
        self.documents = 0
        self.long = LongRecords()
        self.first: list[tuple[np.ndarray, np.ndarray]] = []
        self._open: list[_Block] = []
        self._handle = path.open("wb")
        self._flags = flags_path.open("wb")

    @property
    def content_tokens(self) -> int:
        return self.tokens - self.padding

    def add(self, tokens: np.ndarray, flags: np.ndarray) -> None:
        """Place one document (its tokens and flags)."""
        n, size = int(tokens.size), self.size
        if not n:
            return
        self.documents += 1
        if len(self.first) < KEEP_FIRST:
            self.first.append((tokens.copy(), flags.copy()))
        if n > size:
            if self.long_records == "drop":
                self.long.dropped += 1
                self.documents -= 1
                return
            if self.long_records == "truncate":
                self.long.truncated += 1
                self._write(tokens[:size], flags[:size])
                return
            self.long.split += 1
            for a in range(0, n - n % size, size):  # whole pieces: a block each
                self._write(tokens[a:a + size], _restart(flags[a:a + size]))
            if n % size == 0:
                return
            tokens, flags = tokens[n - n % size:], _restart(flags[n - n % size:])
            n = int(tokens.size)
        fits = [b for b in self._open if b.used + n <= size]
        if fits:
            block = max(fits, key=lambda b: b.used)  # best fit: the fullest that has room
        else:
            if len(self._open) >= OPEN_BLOCKS:
                self._close(max(self._open, key=lambda b: b.used))
            block = _Block()
            self._open.append(block)
        block.tokens.append(tokens)
        block.flags.append(flags)
        block.used += n

    def _close(self, block: _Block) -> None:
        self._open.remove(block)
        pad = self.size - block.used
        tokens, flags = block.tokens, block.flags
        if pad:
            pad_flags = np.full(pad, PAD, dtype=FLAGS_DTYPE)
            pad_flags[0] |= START
            tokens = [*tokens, np.full(pad, self.pad_id, dtype=self.dtype)]
            flags = [*flags, pad_flags]
            self.padding += pad
        self._write(np.concatenate(tokens), np.concatenate(flags))

    def _write(self, tokens: np.ndarray, flags: np.ndarray) -> None:
        self._handle.write(np.ascontiguousarray(tokens, dtype=self.dtype).tobytes())
        self._flags.write(np.ascontiguousarray(flags, dtype=FLAGS_DTYPE).tobytes())
        self.tokens += int(tokens.size)
        self.loss_tokens += int(np.count_nonzero(flags & TRAINED))

    def finish(self) -> None:
        """Pad and write the blocks still open (fullest first)."""
        for block in sorted(self._open, key=lambda b: -b.used):
            self._close(block)

    def close(self) -> None:
        for handle in (self._handle, self._flags):
            if not handle.closed:
                handle.flush()
                handle.close()


def _restart(flags: np.ndarray) -> np.ndarray:
    """A piece of a long document starts its own attention segment: its first token is
    not trained (nothing in the piece predicts it)."""
    flags = flags.copy()
    flags[0] = START
    return flags


class Sink(ABC):
    """Where encoded batches go: cut into documents (a document may span two batches),
    each document placed by `place`."""

    def __init__(self) -> None:
        self._rest: tuple[np.ndarray, np.ndarray] | None = None  # after the last end

    @abstractmethod
    def place(self, tokens: np.ndarray, flags: np.ndarray) -> None: ...

    def add(self, batch: Encoded) -> None:
        tokens, flags, ends = batch.tokens, batch.flags, batch.ends
        if self._rest is not None:
            tokens = np.concatenate([self._rest[0], tokens])
            flags = np.concatenate([self._rest[1], flags])
            ends = ends + self._rest[0].size
        start = 0
        for end in ends.tolist():
            self.place(tokens[start:end + 1], flags[start:end + 1])
            start = end + 1
        self._rest = (tokens[start:].copy(), flags[start:].copy()) if start < tokens.size \
            else None

    def finish(self) -> None:
        """A document cut short by --max-tokens (no EOS yet when the stream ended)
        is placed as it is."""
        if self._rest is not None:
            self.place(*self._rest)
            self._rest = None


class SplitSink(Sink):
    """Everything into one split (the dataset has its own splits)."""

    def __init__(self, packer: BlockPacker) -> None:
        super().__init__()
        self.packer = packer

    def place(self, tokens: np.ndarray, flags: np.ndarray) -> None:
        self.packer.add(tokens, flags)


class SplitAssigner:
    """Which split each document goes to, by token share: a document of n tokens goes to
    the split furthest behind its share of everything assigned so far (n included),
    ties to the first split named. Deterministic and streaming, it spreads the held-out
    documents evenly through the corpus; shares are met within one document's length."""

    def __init__(self, shares: dict[str, Fraction]) -> None:
        if sum(shares.values()) != 1:
            raise ValueError(f"shares must sum to 1, got {dict(shares)}")
        self.shares = shares
        self.tokens = dict.fromkeys(shares, 0)
        self.total = 0

    def assign(self, n_tokens: int) -> str:
        self.total += n_tokens
        split = max(self.shares, key=lambda s: self.shares[s] * self.total - self.tokens[s])
        self.tokens[split] += n_tokens
        return split


class DocumentRouter(Sink):
    """Route whole documents to the splits' packers by share, so a document never
    straddles two splits."""

    def __init__(self, shares: dict[str, Fraction], packers: dict[str, BlockPacker]) -> None:
        super().__init__()
        self.assigner = SplitAssigner(shares)
        self.packers = packers

    def place(self, tokens: np.ndarray, flags: np.ndarray) -> None:
        self.packers[self.assigner.assign(int(tokens.size))].add(tokens, flags)


def sha256_files(paths: Sequence[Path], chunk: int = 1 << 18) -> str:
    """sha256 over the concatenated bytes of `paths` (= `cat a b | sha256sum`)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def check_block_size_fits(tokens: int, block_size: int, where: str) -> None:
    if tokens < block_size:
        raise DataError(f"{where}: too little text: {tokens} tokens, fewer than one block of "
                        f"{block_size}; add text or lower data.block_size")
