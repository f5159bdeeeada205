"""Where documents come from: resolve `--dataset` to a streaming document source.

A *document* is one unit of text that gets an EOS token after it: a paragraph,
line or file of a .txt, one JSONL record, one WikiText article, one row of a
Hugging Face dataset. Sources yield documents lazily, so memory never grows
with the size of the corpus.

Resolution order for `--dataset NAME`:
1. a built-in name (`wikitext`, `wikitext-103`, `wikitext-2`, `c4`);
2. an existing local path (.txt/.jsonl file or folder; or Parquet/CSV/JSON data
   read by the `datasets` library, like a Hub dataset);
3. something that looks like a path (has a file suffix or several slashes):
   "no such file";
4. a Hugging Face Hub id `owner/name`;
5. otherwise: unknown dataset, with a did-you-mean.
"""

from __future__ import annotations

import difflib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tscu_tui.engine.errors import DataError

if TYPE_CHECKING:
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    from tscu_tui.engine.data.options import PrepareOptions

TRAIN, VALIDATION = "train", "validation"


@dataclass(frozen=True)
class BuiltinDataset:
    repo: str
    config: str
    needs_max_tokens: bool = False


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "wikitext": BuiltinDataset("Salesforce/wikitext", "wikitext-103-raw-v1"),
    "wikitext-103": BuiltinDataset("Salesforce/wikitext", "wikitext-103-raw-v1"),
    "wikitext-2": BuiltinDataset("Salesforce/wikitext", "wikitext-2-raw-v1"),
    "c4": BuiltinDataset("allenai/c4", "en", needs_max_tokens=True),
}

#: Suffixes read by tscu itself (the mlx-lm data formats).
TEXT_SUFFIXES = (".txt", ".jsonl")
#: Suffixes handed to the `datasets` library's packaged loaders.
DATASETS_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".arrow": "arrow"}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Document:
    """One document's text. `templated` text was rendered by a chat template,
    which already places any BOS, so it is encoded without special tokens."""

    text: str
    templated: bool = False


class ReadPosition:
    """How far a reader is through its input, for progress bars (mutable on purpose:
    the reader advances it, the progress reporter samples it)."""

    def __init__(self) -> None:
        self.completed: int | None = None
        self.total: int | None = None
        self.unit: str | None = None

    def reset(self, total: int | None, unit: str | None) -> None:
        self.completed, self.total, self.unit = (0 if unit else None), total, unit


class ChatTemplate:
    """The tokenizer's chat template, used to render `messages` and prompt/completion
    records exactly as mlx-lm renders them for training."""

    def __init__(self, tokenizer: TokenizerWrapper | None) -> None:
        self._tokenizer = tokenizer
        template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
        self.available = bool(template)

    def render(self, messages: list[Any], tools: Any = None) -> str:
        assert self._tokenizer is not None
        kwargs: dict[str, Any] = {"tokenize": False}
        if tools is not None:
            kwargs["tools"] = tools
        text = self._tokenizer.apply_chat_template(messages, **kwargs)
        if not isinstance(text, str):  # some versions return a list when batched
            raise TypeError(f"chat template returned {type(text).__name__}, not text")
        return text


class Source(ABC):
    """A resolved dataset. `own_splits` says whether it brings a validation split;
    otherwise everything is read as `train` and split by fraction at block level."""

    own_splits: bool = False

    @abstractmethod
    def documents(self, split: str, chat: ChatTemplate,
                  position: ReadPosition) -> Iterator[Document]:
        """Yield the documents of `split` ("train" or "validation") in order."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What was read, for meta.json's `source` (call after reading)."""

    def where(self) -> str:
        """A short name for error messages."""
        return str(self.describe().get("dataset", "dataset"))


def resolve_source(options: PrepareOptions) -> Source:
    """Turn `options.dataset` into a Source, failing fast with one line if it cannot be."""
    from tscu_tui.engine.data import hub, local

    name = options.dataset.strip()
    builtin = BUILTIN_DATASETS.get(name.lower())
    if builtin is not None:
        if builtin.needs_max_tokens and options.max_tokens is None:
            raise DataError(f"dataset '{name}' is far too large to prepare whole: "
                            "bound it with --max-tokens (e.g. --max-tokens 100000000)")
        return hub.HubSource.open(name, builtin.repo, builtin.config, "text")
    path = Path(name).expanduser()
    if path.exists():
        return local.open_local(path, options)
    if _looks_like_path(name):
        raise DataError(f"dataset not found: no such file or folder {name}")
    if _HUB_ID.match(name):
        return hub.HubSource.open(name, name, options.dataset_config, options.text_column)
    close = difflib.get_close_matches(name.lower(), list(BUILTIN_DATASETS), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise DataError(f"unknown dataset '{name}': {hint}use wikitext, wikitext-2, c4, a Hugging "
                    "Face dataset id (owner/name), or a local .txt/.jsonl file or folder")


def _looks_like_path(name: str) -> bool:
    suffix = Path(name).suffix.lower()
    return (name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1
            or suffix in TEXT_SUFFIXES or suffix in DATASETS_SUFFIXES or suffix == ".gz")
