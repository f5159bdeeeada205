"""What a dataset source yields: documents, read positions, and the
`Source` interface every reader (local files, the Hub) implements.

A *document* is one unit of text that gets an EOS token after it: a paragraph,
line or file of a .txt, one JSONL record, one WikiText article, one row of a
Hugging Face dataset. Sources yield documents lazily, so memory never grows
with the size of the corpus. Which source a `--dataset` name means is decided
in sources.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tscu_tui.engine.data.chat import ChatTemplate

TRAIN, VALIDATION, TEST = "train", "validation", "test"


#: Suffixes read by tscu itself (the mlx-lm data formats).
TEXT_SUFFIXES = (".txt", ".jsonl")
#: Suffixes handed to the `datasets` library's packaged loaders.
DATASETS_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".arrow": "arrow"}

@dataclass(frozen=True)
class Document:
    """One document's text. `templated` text was rendered by a chat template,
    which already places any BOS, so it is encoded without special tokens.
    `spans` are the character ranges that carry loss (None: all of the text;
    chat.Rendered says how they are found)."""

    text: str
    templated: bool = False
    spans: tuple[tuple[int, int], ...] | None = None


class ReadPosition:
    """How far a reader is through its input, for progress bars (mutable on purpose:
    the reader advances it, the progress reporter samples it)."""

    def __init__(self) -> None:
        self.completed: int | None = None
        self.total: int | None = None
        self.unit: str | None = None

    def reset(self, total: int | None, unit: str | None) -> None:
        self.completed, self.total, self.unit = (0 if unit else None), total, unit


class Source(ABC):
    """A resolved dataset. `own_splits` says whether it brings a validation split and
    `own_test` whether it brings a test split; what it does not bring is taken from its
    `train` documents by fraction, whole documents at a time (packing.DocumentRouter)."""

    own_splits: bool = False
    own_test: bool = False

    @abstractmethod
    def documents(self, split: str, chat: ChatTemplate,
                  position: ReadPosition) -> Iterator[Document]:
        """Yield the documents of `split` ("train", "validation" or "test") in order."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What was read, for meta.json's `source` (call after reading)."""

    def where(self) -> str:
        """A short name for error messages."""
        return str(self.describe().get("dataset", "dataset"))


