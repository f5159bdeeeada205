"""Tokenize documents in batches and pack the token stream into split files.

Every document becomes `encode(text) + [eos]`: the tokenizer's own special
tokens are kept (so a BOS appears only if the tokenizer adds one by itself,
as `tokenizer.encode` does; Qwen adds none), and EOS is appended unless the
encoding already ends with it (mlx-lm's rule). Chat-template output is encoded
without special tokens because the template already placed them.

Each split is one flat binary file of all its tokens (trailing partial block
included); block i of a split is tokens[i*B:(i+1)*B]. The splits a dataset does
not bring itself (validation, test) are taken from its documents by token share,
whole documents at a time (`DocumentRouter`): deterministic, spread evenly
through the corpus rather than taken from its end, and a document is never on
two sides of a split.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tscu_tui.engine.data.documents import Document
from tscu_tui.engine.errors import DataError, ModelError

if TYPE_CHECKING:
    from mlx_lm.tokenizer_utils import TokenizerWrapper

#: A batch is flushed to the tokenizer at this many documents or characters,
#: which bounds memory (a few MB of Python ints) whatever the corpus size.
BATCH_DOCUMENTS = 256
BATCH_CHARACTERS = 512 * 1024


class Encoder:
    """Batch-encode documents with the HF fast tokenizer inside the mlx-lm wrapper."""

    def __init__(self, tokenizer: TokenizerWrapper, model: str) -> None:
        self.hf: Any = getattr(tokenizer, "_tokenizer", tokenizer)
        eos = self.hf.eos_token_id
        if eos is None:
            raise ModelError(f"the tokenizer of '{model}' has no EOS token, which packing "
                             "needs between documents")
        self.eos_token_id = int(eos)
        self.vocab_size = max(len(self.hf), int(getattr(self.hf, "vocab_size", 0) or 0))
        # Little-endian on disk whatever the machine, as store.py reads it.
        self.dtype = np.dtype("<u2" if self.vocab_size <= 1 << 16 else "<u4")

    def encode(self, documents: Sequence[Document]) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of all `documents` (each + EOS) and the index of each one's last token."""
        lists: list[list[int]] = []
        start = 0
        while start < len(documents):  # consecutive runs that share `templated`
            end = start
            while end < len(documents) and documents[end].templated == documents[start].templated:
                end += 1
            texts = [d.text for d in documents[start:end]]
            # verbose=False: long documents are fine here, no "longer than max length" warning.
            encoded = self.hf(texts, add_special_tokens=not documents[start].templated,
                              return_attention_mask=False, verbose=False)["input_ids"]
            lists.extend(encoded)
            start = end
        eos = self.eos_token_id
        for ids in lists:
            if not ids or ids[-1] != eos:
                ids.append(eos)
        lengths = np.fromiter((len(ids) for ids in lists), dtype=np.int64, count=len(lists))
        tokens = np.fromiter(chain.from_iterable(lists), dtype=np.int64, count=int(lengths.sum()))
        if tokens.size and int(tokens.max()) > np.iinfo(self.dtype).max:
            raise ModelError(f"token id {int(tokens.max())} does not fit {self.dtype.name} "
                             f"(vocabulary of {self.vocab_size}); the tokenizer is inconsistent")
        return tokens.astype(self.dtype), np.cumsum(lengths) - 1


class TokenFile:
    """Append-only token file of one split, counting tokens and documents."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.path = path
        self.dtype = dtype
        self.tokens = 0
        self.documents = 0
        self._handle = path.open("wb")

    def write(self, tokens: np.ndarray) -> None:
        if tokens.size:
            self._handle.write(np.ascontiguousarray(tokens, dtype=self.dtype).tobytes())
            self.tokens += int(tokens.size)

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            self._handle.close()


class Sink(ABC):
    """Where encoded batches go: one split file, or a fraction router."""

    @abstractmethod
    def add(self, tokens: np.ndarray, ends: np.ndarray) -> None: ...

    def finish(self) -> None:  # noqa: B027  (optional hook: most sinks have nothing to flush)
        return None


class SplitSink(Sink):
    """Everything into one split file (the dataset has its own splits)."""

    def __init__(self, file: TokenFile) -> None:
        self.file = file

    def add(self, tokens: np.ndarray, ends: np.ndarray) -> None:
        self.file.write(tokens)
        self.file.documents += int(ends.size)


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
    """Route whole documents (each ends with its EOS) to split files by share, so a
    document never straddles two splits. A document cut short by --max-tokens (no EOS
    yet when the stream ends) is kept in the first split's file but not counted."""

    def __init__(self, shares: dict[str, Fraction], files: dict[str, TokenFile]) -> None:
        self.assigner = SplitAssigner(shares)
        self.files = files
        self._first = next(iter(shares))
        self._rest = np.empty(0, dtype=files[self._first].dtype)  # tokens after the last end

    def add(self, tokens: np.ndarray, ends: np.ndarray) -> None:
        stream = np.concatenate([self._rest, tokens])
        if not ends.size:
            self._rest = stream
            return
        ends = ends + self._rest.size
        starts = np.r_[0, ends[:-1] + 1]
        splits = [self.assigner.assign(int(n)) for n in ends - starts + 1]
        lo = 0
        while lo < len(splits):  # consecutive documents of one split: one write
            hi = lo
            while hi < len(splits) and splits[hi] == splits[lo]:
                hi += 1
            file = self.files[splits[lo]]
            file.write(stream[starts[lo]:ends[hi - 1] + 1])
            file.documents += hi - lo
            lo = hi
        self._rest = stream[int(ends[-1]) + 1:].copy()

    def finish(self) -> None:
        self.files[self._first].write(self._rest)
        self._rest = self._rest[:0]


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
