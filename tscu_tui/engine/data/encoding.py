"""Documents to tokens, each token with flags saying what training does with it.

Every document becomes `encode(text) + [eos]`: the tokenizer's own special
tokens are kept (so a BOS appears only if the tokenizer adds one by itself,
as `tokenizer.encode` does; Qwen adds none), and EOS is appended unless the
encoding already ends with it (mlx-lm's rule). Chat-template output is encoded
without special tokens because the template already placed them.

Per token, one byte of flags (the `.flags.bin` files of store.py):
- `TRAINED`: the token is a target that carries loss (and counts in held-out
  BPT). A document's first token never is: nothing before it predicts it. For a
  document with spans (chat.py), a token is trained when its first character is
  in a span; the appended EOS when a span reaches the end of the text.
- `START`: the token starts an attention segment (a document, a piece of a long
  one, or the padding at a block's end): attention never looks further back.
- `PAD`: padding after the last document of a block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from tscu_tui.engine.data.documents import Document
from tscu_tui.engine.errors import ModelError

if TYPE_CHECKING:
    from mlx_lm.tokenizer_utils import TokenizerWrapper

TRAINED, START, PAD = 1, 2, 4
FLAGS_DTYPE = np.dtype("u1")


@dataclass(frozen=True)
class Encoded:
    """A batch of documents: tokens and flags, concatenated, and each one's last index."""

    tokens: np.ndarray
    flags: np.ndarray
    ends: np.ndarray


def token_flags(n: int, starts: np.ndarray | None, spans: tuple[tuple[int, int], ...] | None,
                text_length: int) -> np.ndarray:
    """Flags of one document's `n` tokens, the first `len(starts)` of which begin at
    those characters (the rest: the appended EOS)."""
    flags = np.full(n, TRAINED, dtype=FLAGS_DTYPE)
    if spans is not None:
        assert starts is not None
        trained = np.zeros(n, dtype=bool)
        for a, b in spans:
            trained[:starts.size] |= (starts >= a) & (starts < b)
            if b >= text_length:
                trained[starts.size:] = True  # the appended EOS ends the last turn
        flags = trained.astype(FLAGS_DTYPE) * TRAINED
    if n:
        flags[0] = START  # nothing before it predicts it
    return flags


class Encoder:
    """Batch-encode documents with the HF fast tokenizer inside the mlx-lm wrapper."""

    def __init__(self, tokenizer: TokenizerWrapper, model: str) -> None:
        self.hf: Any = getattr(tokenizer, "_tokenizer", tokenizer)
        eos = self.hf.eos_token_id
        if eos is None:
            raise ModelError(f"the tokenizer of '{model}' has no EOS token, which packing "
                             "needs between documents")
        self.model = model
        self.eos_token_id = int(eos)
        self.vocab_size = max(len(self.hf), int(getattr(self.hf, "vocab_size", 0) or 0))
        # Little-endian on disk whatever the machine, as store.py reads it.
        self.dtype = np.dtype("<u2" if self.vocab_size <= 1 << 16 else "<u4")
        self.templated = 0  # documents rendered by a chat template so far

    def _run(self, documents: Sequence[Document]) -> list[tuple[list[int], np.ndarray]]:
        """Token ids and flags of documents that share `templated` and having spans."""
        first = documents[0]
        self.templated += len(documents) if first.templated else 0
        offsets = first.spans is not None
        if offsets and not getattr(self.hf, "is_fast", False):
            raise ModelError(f"the tokenizer of '{self.model}' is not a fast tokenizer, "
                             "which finding the trained tokens needs; use data.train_on = "
                             "\"all\"")
        # verbose=False: long documents are fine here, no "longer than max length" warning.
        out = self.hf([d.text for d in documents], add_special_tokens=not first.templated,
                      return_attention_mask=False, return_offsets_mapping=offsets,
                      verbose=False)
        result = []
        for i, (doc, ids) in enumerate(zip(documents, out["input_ids"], strict=True)):
            starts = (np.fromiter((s for s, _ in out["offset_mapping"][i]), dtype=np.int64)
                      if offsets else None)
            if not ids or ids[-1] != self.eos_token_id:
                ids.append(self.eos_token_id)
            result.append((ids, token_flags(len(ids), starts, doc.spans, len(doc.text))))
        return result

    def encode(self, documents: Sequence[Document]) -> Encoded:
        """Tokens and flags of all `documents` (each + EOS) and each one's last index."""
        encoded: list[tuple[list[int], np.ndarray]] = []
        start = 0
        while start < len(documents):  # consecutive runs that encode alike
            key = (documents[start].templated, documents[start].spans is not None)
            end = start
            while end < len(documents) and (documents[end].templated,
                                            documents[end].spans is not None) == key:
                end += 1
            encoded.extend(self._run(documents[start:end]))
            start = end
        lengths = np.fromiter((len(ids) for ids, _ in encoded), dtype=np.int64,
                              count=len(encoded))
        total = int(lengths.sum())
        tokens = np.fromiter(chain.from_iterable(ids for ids, _ in encoded), dtype=np.int64,
                             count=total)
        if tokens.size and int(tokens.max()) > np.iinfo(self.dtype).max:
            raise ModelError(f"token id {int(tokens.max())} does not fit {self.dtype.name} "
                             f"(vocabulary of {self.vocab_size}); the tokenizer is inconsistent")
        flags = (np.concatenate([f for _, f in encoded]) if encoded
                 else np.zeros(0, dtype=FLAGS_DTYPE))
        return Encoded(tokens.astype(self.dtype), flags, np.cumsum(lengths) - 1)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.hf.decode(list(ids), skip_special_tokens=False))
