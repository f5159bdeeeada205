"""Datasets read through the `datasets` library: Hub ids (streamed) and local
Parquet/CSV/JSON files or folders (same code path, no network).

Hub datasets are always streamed (`streaming=True`), so nothing is downloaded
up front and memory stays flat. Before `load_dataset`, one short metadata
request checks that the Hub answers: `datasets` itself retries an unreachable
Hub for about 25 s before failing, while this probe fails in well under a
second with a line that points at local files. With `HF_HUB_OFFLINE=1` the
probe is skipped and `datasets` decides from its cache.

Splits: `train` (or the only split there is) is read for training; a split
named `validation` or `valid` is used for validation when present, otherwise
the caller splits the training stream by fraction; a split named `test` is the test
split when present (else the caller takes it from training by `data.test_fraction`).

WikiText (`Salesforce/wikitext`) comes one *line* per row; its articles are
rebuilt from the top-level headings (` = Title = `) so a document is a whole
article, as in the usual WikiText language-modelling setup.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tscu_tui.engine.data.documents import (
    DATASETS_SUFFIXES,
    TEST,
    TRAIN,
    VALIDATION,
    ChatTemplate,
    Document,
    ReadPosition,
    Source,
)
from tscu_tui.engine.errors import DataError, first_line

_VALIDATION_SPLITS = ("validation", "valid")
_WIKITEXT_REPO = "salesforce/wikitext"
_OFFLINE_HINT = "local .txt/.jsonl files and folders work offline: data.dataset = PATH"


def hub_unreachable(name: str, exc: BaseException) -> DataError:
    return DataError(f"cannot reach the Hugging Face Hub for dataset '{name}' "
                     f"({first_line(exc)}); {_OFFLINE_HINT}")


class HubSource(Source):
    """A `datasets` IterableDatasetDict opened with streaming=True."""

    def __init__(self, name: str, kind: str, path: str, config: str | None, text_column: str,
                 streams: Any, train: str, validation: str | None,
                 test: str | None = None) -> None:
        self._name = name
        self._kind = kind
        self._path = path
        self._config = config
        self._text_column = text_column
        self._streams = streams
        self._split_names = {TRAIN: train, VALIDATION: validation, TEST: test}
        self._articles = path.lower() == _WIKITEXT_REPO
        self.own_splits = validation is not None
        self.own_test = test is not None

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, name: str, repo: str, config: str | None, text_column: str) -> HubSource:
        """Open Hub dataset `repo`; `name` is what the user typed (for messages)."""
        _probe(name, repo)
        streams = _load(name, (repo,), {"name": config}, hub=True)
        return cls._make(name, "hugging face hub", repo, config, text_column, streams)

    @classmethod
    def open_local(cls, name: str, path: Path, config: str | None,
                   text_column: str) -> HubSource:
        """Open a local Parquet/CSV/JSON file, or a folder of them, with `datasets`."""
        if path.is_file():
            builder = DATASETS_SUFFIXES[path.suffix.lower()]
            streams = _load(name, (builder,), {"data_files": str(path)}, hub=False)
        else:
            streams = _load(name, (str(path),), {"name": config}, hub=False)
        return cls._make(name, "local dataset", str(path.resolve()), config, text_column,
                         streams)

    @classmethod
    def _make(cls, name: str, kind: str, path: str, config: str | None, text_column: str,
              streams: Any) -> HubSource:
        splits = list(streams.keys())
        train = "train" if "train" in splits else (splits[0] if len(splits) == 1 else None)
        if train is None:
            raise DataError(f"dataset '{name}' has no 'train' split (splits: "
                            f"{', '.join(splits) or 'none'})")
        validation = next((s for s in _VALIDATION_SPLITS if s in splits and s != train), None)
        columns = streams[train].column_names  # None when the format does not say up front
        if columns is not None and text_column not in columns:
            raise DataError(f"dataset '{name}' has no column '{text_column}' (columns: "
                            f"{', '.join(columns)}); choose one with data.text_column")
        test = "test" if "test" in splits and train != "test" else None
        return cls(name, kind, path, config, text_column, streams, train, validation, test)

    # -- reading -----------------------------------------------------------------------------

    def where(self) -> str:
        return f"dataset '{self._name}'"

    def describe(self) -> dict[str, Any]:
        return {"kind": self._kind, "dataset": self._name, "path": self._path,
                "config": self._config, "text_column": self._text_column,
                "splits": {k: v for k, v in self._split_names.items() if v is not None},
                "documents": "wikitext articles" if self._articles else "rows"}

    def documents(self, split: str, chat: ChatTemplate,
                  position: ReadPosition) -> Iterator[Document]:
        name = self._split_names.get(split)
        if name is None:
            return
        stream = self._streams[name]
        position.reset(_num_rows(stream, name), "rows")
        texts = self._texts(stream, name, position)
        if self._articles:
            texts = wikitext_articles(texts)
        for text in texts:
            yield Document(text)

    def _texts(self, stream: Any, split: str, position: ReadPosition) -> Iterator[str]:
        column = self._text_column
        rows = iter(stream)
        index = 0
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except ConnectionError as exc:
                raise hub_unreachable(self._name, exc) from None
            except Exception as exc:  # datasets/fsspec/pyarrow raise many kinds
                raise DataError(f"reading dataset '{self._name}' (split '{split}', row {index}) "
                                f"failed: {first_line(exc)}") from None
            if position.completed is not None:
                position.completed += 1
            if column not in row:
                raise DataError(f"dataset '{self._name}' has no column '{column}' (columns: "
                                f"{', '.join(row)}); choose one with data.text_column")
            value = row[column]
            if isinstance(value, str):
                yield value
            elif value is not None:
                raise DataError(f"dataset '{self._name}' split '{split}' row {index}: column "
                                f"'{column}' holds {type(value).__name__}, not text; choose a "
                                "text column with data.text_column")
            index += 1


def _probe(name: str, repo: str) -> None:
    """Fail fast, with one line, when the Hub is unreachable or the repo is unknown."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if constants.HF_HUB_OFFLINE:
        return
    try:
        HfApi().dataset_info(repo, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except GatedRepoError:
        raise DataError(f"dataset '{repo}' is gated on the Hugging Face Hub: accept its terms "
                        "on huggingface.co and log in (hf auth login)") from None
    except RepositoryNotFoundError:
        raise DataError(f"dataset '{repo}' does not exist on the Hugging Face Hub (or is "
                        "private and no token is set)") from None
    except HfHubHTTPError as exc:
        raise DataError(f"the Hugging Face Hub refused dataset '{repo}' "
                        f"({first_line(exc)}); {_OFFLINE_HINT}") from None
    except Exception as exc:  # httpx transport errors, DNS, TLS, proxies, timeouts
        raise hub_unreachable(name, exc) from None


def _load(name: str, args: tuple[str, ...], kwargs: dict[str, Any], *, hub: bool) -> Any:
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        streams = datasets.load_dataset(*args, streaming=True, **kwargs)
    except DatasetNotFoundError as exc:
        if hub:
            raise DataError(f"dataset '{args[0]}' does not exist on the Hugging Face Hub (or is "
                            "private and no token is set)") from None
        raise DataError(f"cannot load dataset '{name}': {first_line(exc)}") from None
    except ConnectionError as exc:
        raise hub_unreachable(name, exc) from None
    except Exception as exc:
        raise DataError(f"cannot load dataset '{name}': {first_line(exc)}") from None
    if not hasattr(streams, "keys"):  # a single split was returned
        streams = {"train": streams}
    return streams


def _num_rows(stream: Any, split: str) -> int | None:
    try:
        return int(stream.info.splits[split].num_examples) or None
    except Exception:  # unknown for many streamed datasets
        return None


def wikitext_articles(lines: Iterable[str]) -> Iterator[str]:
    """Rebuild WikiText articles from its lines: a new article starts at each
    top-level heading ` = Title = ` (sub-headings are ` = = Title = = `)."""
    article: list[str] = []
    has_text = False
    for line in lines:
        if _is_title(line) and has_text:
            yield "".join(article).strip()
            article, has_text = [], False
        if not line.endswith("\n"):  # an empty row is a blank line between paragraphs
            line += "\n"
        article.append(line)
        has_text = has_text or bool(line.strip())
    if has_text:
        yield "".join(article).strip()


def _is_title(line: str) -> bool:
    text = line.strip()
    return (len(text) > 4 and text.startswith("= ") and text.endswith(" =")
            and not text.startswith("= ="))
