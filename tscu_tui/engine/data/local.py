"""Local .txt and .jsonl files (the mlx-lm data formats), one file or a folder.

- `.txt`: documents per `--txt-split`, like the `datasets` text loader's
  `sample_by`: `paragraph` (runs of non-blank lines), `line` (each non-blank
  line) or `document` (the whole file; read into memory, so keep such files
  modest).
- `.jsonl`: one JSON object per line, in one of mlx-lm's three formats, fixed
  per file by its first record (checked in mlx-lm's order):
  `{"prompt", "completion"}` -> rendered as a user/assistant exchange with the
  tokenizer's chat template, as mlx-lm's CompletionsDataset does (plain
  `prompt + completion` when the tokenizer has no template);
  `{"messages": [...]}` (and optional `"tools"`) -> the chat template;
  `{"text": ...}` (the key is `--text-column`) -> the text as is.
- a folder: every .txt/.jsonl below it (recursive, sorted by path, hidden
  entries skipped). If it holds Parquet/CSV/JSON files instead, it is read by
  the `datasets` library (see hub.py). The mlx-lm layout - `train.jsonl` plus
  `valid.jsonl` (or `validation.jsonl`) at the top, and `test.jsonl` beside them
  where there is one - gives the dataset's own splits; anything else is split by
  fraction, whole documents at a time.

Files are read in binary, one line at a time, and decoded strictly so a binary
or non-UTF-8 file is reported by name and line instead of being half-read.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tscu_tui.engine.data.chat import check_messages, render_record
from tscu_tui.engine.data.documents import (
    DATASETS_SUFFIXES,
    TEST,
    TEXT_SUFFIXES,
    TRAIN,
    VALIDATION,
    ChatTemplate,
    Document,
    ReadPosition,
    Source,
)
from tscu_tui.engine.errors import DataError

if TYPE_CHECKING:
    from tscu_tui.engine.data.options import PrepareOptions

_SNIFF_BYTES = 65536
_VALIDATION_FILES = ("valid.jsonl", "validation.jsonl")


def open_local(path: Path, options: PrepareOptions) -> Source:
    """A Source for an existing local file or folder (one-line DataError if unusable)."""
    from tscu_tui.engine.data import hub

    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in DATASETS_SUFFIXES:
            return hub.HubSource.open_local(options.dataset, path, options.dataset_config,
                                            options.text_column)
        if suffix not in TEXT_SUFFIXES:
            raise DataError(f"{path}: unsupported file type '{suffix or path.name}': use .txt "
                            "or .jsonl (or .parquet/.csv/.json for the datasets loader)")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file, nothing to prepare")
        _sniff(path)
        return LocalFilesSource(options.dataset, None, {TRAIN: [path]}, options)
    if not path.is_dir():
        raise DataError(f"{path}: not a regular file or folder")
    files = _walk(path)
    text_files = [f for f in files if f.suffix.lower() in TEXT_SUFFIXES]
    data_files = [f for f in files if f.suffix.lower() in DATASETS_SUFFIXES]
    if text_files and data_files:
        raise DataError(f"{path}: folder mixes .txt/.jsonl files ({text_files[0].name}) with "
                        f"{data_files[0].suffix} files ({data_files[0].name}); "
                        "point data.dataset at one kind")
    if data_files:
        return hub.HubSource.open_local(options.dataset, path, options.dataset_config,
                                        options.text_column)
    if not text_files:
        raise DataError(f"{path}: no .txt or .jsonl files in this folder")
    for file in text_files:
        if file.stat().st_size:
            _sniff(file)
    top = {f.name.lower(): f for f in text_files if f.parent == path}
    valid = next((top[n] for n in _VALIDATION_FILES if n in top), None)
    if "train.jsonl" in top and valid is not None:
        splits = {TRAIN: [top["train.jsonl"]], VALIDATION: [valid]}
        if "test.jsonl" in top:
            splits[TEST] = [top["test.jsonl"]]
        return LocalFilesSource(options.dataset, path, splits, options)
    return LocalFilesSource(options.dataset, path, {TRAIN: text_files}, options)


def _walk(root: Path) -> list[Path]:
    """Regular files under `root`, sorted by relative path, hidden entries skipped
    (e.g. `.git`, or a `.NAME.partial` staging folder of an earlier prepare)."""
    found = []
    for file in root.rglob("*"):
        rel = file.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not file.is_file():
            continue
        found.append(file)
    return sorted(found, key=lambda f: f.relative_to(root).as_posix())


def _sniff(path: Path) -> None:
    """Refuse binary files up front: NUL bytes or invalid UTF-8 in the first 64 KiB."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in head:
        raise DataError(f"{path}: binary file (NUL bytes), expected UTF-8 text")
    try:  # incremental: a multi-byte character cut at the 64 KiB mark is fine
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start}); "
                        "binary file?") from None


class LocalFilesSource(Source):
    """.txt/.jsonl files; `splits` maps "train" (and with the mlx-lm layout,
    "validation") to the files read for it, in order."""

    def __init__(self, name: str, root: Path | None, splits: dict[str, list[Path]],
                 options: PrepareOptions) -> None:
        self._name = name
        self._root = root
        self._splits = splits
        self._txt_split = options.txt_split
        self._text_key = options.text_column
        self._train_on = options.train_on
        self._formats: dict[Path, str] = {}
        self.own_splits = VALIDATION in splits
        self.own_test = TEST in splits

    def where(self) -> str:
        if self._root is None:
            return str(self._splits[TRAIN][0])
        return str(self._root)

    def describe(self) -> dict[str, Any]:
        def entry(f: Path) -> dict[str, str]:
            shown = f.relative_to(self._root).as_posix() if self._root else str(f)
            return {"path": shown, "format": self._formats.get(f, "not read")}

        desc: dict[str, Any] = {"kind": "local files", "dataset": self._name}
        if self._root is not None:
            desc["folder"] = str(self._root.resolve())
        desc["files"] = {split: [entry(f) for f in files] for split, files in self._splits.items()}
        desc["txt_split"] = self._txt_split
        desc["text_key"] = self._text_key
        return desc

    def documents(self, split: str, chat: ChatTemplate,
                  position: ReadPosition) -> Iterator[Document]:
        files = self._splits.get(split, [])
        position.reset(sum(f.stat().st_size for f in files), "bytes")
        for file in files:
            if file.suffix.lower() == ".jsonl":
                yield from self._jsonl(file, chat, position)
            else:
                self._formats[file] = f"txt ({self._txt_split})"
                yield from _txt(file, self._txt_split, position)

    def _jsonl(self, path: Path, chat: ChatTemplate,
               position: ReadPosition) -> Iterator[Document]:
        first: tuple[str, int] | None = None
        for lineno, line in _lines(path, position):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column "
                                f"{exc.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got "
                                f"{_json_type(record)}")
            kind = _record_format(record, self._text_key)
            if kind is None:
                keys = ", ".join(sorted(record)) or "none"
                raise DataError(f"{path}:{lineno}: no '{self._text_key}', 'prompt'/'completion' "
                                f"or 'messages' key (keys: {keys})")
            if first is None:
                first = (kind, lineno)
                self._formats[path] = _format_label(kind, chat)
            elif kind != first[0]:
                raise DataError(f"{path}:{lineno}: a '{kind}' record in a file of '{first[0]}' "
                                f"records (line {first[1]}); a JSONL file must use one format")
            yield _record_document(record, kind, self._text_key, chat, self._train_on,
                                   f"{path}:{lineno}")
        if first is None:
            self._formats[path] = "empty"


def _lines(path: Path, position: ReadPosition) -> Iterator[tuple[int, str]]:
    """(line number, text with '\\n' kept and CRLF folded), strictly decoded."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        for lineno, raw in enumerate(handle, 1):
            if position.completed is not None:
                position.completed += len(raw)
            if b"\x00" in raw:
                raise DataError(f"{path}:{lineno}: NUL byte in text: binary file? "
                                "(expected UTF-8 text)")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{path}:{lineno}: not valid UTF-8: binary file? "
                                "(expected UTF-8 text)") from None
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            if line.endswith("\r\n"):
                line = line[:-2] + "\n"
            yield lineno, line


def _txt(path: Path, mode: str, position: ReadPosition) -> Iterator[Document]:
    if mode == "line":
        for _, line in _lines(path, position):
            text = line.rstrip("\n")
            if text.strip():
                yield Document(text)
    elif mode == "paragraph":
        paragraph: list[str] = []
        for _, line in _lines(path, position):
            if line.strip():
                paragraph.append(line.rstrip("\n"))
            elif paragraph:
                yield Document("\n".join(paragraph))
                paragraph = []
        if paragraph:
            yield Document("\n".join(paragraph))
    else:  # "document": the whole file is one document
        text = "".join(line for _, line in _lines(path, position))
        if text.strip():
            yield Document(text)


def _record_format(record: dict[str, Any], text_key: str) -> str | None:
    # mlx-lm's order (tuner/datasets.py create_dataset): completions, chat, text.
    if "prompt" in record and "completion" in record:
        return "completions"
    if "messages" in record:
        return "chat"
    if text_key in record:
        return "text"
    return None


def _format_label(kind: str, chat: ChatTemplate) -> str:
    if kind == "completions":
        return "completions (chat template)" if chat.available else "completions (concatenated)"
    return "chat (chat template)" if kind == "chat" else "text"


def _record_document(record: dict[str, Any], kind: str, text_key: str, chat: ChatTemplate,
                     train_on: str, where: str) -> Document:
    """A record's document: text as is, or prompt/completion and messages records through
    the chat template, with the spans `train_on` trains (chat.py)."""
    if kind == "text":
        return Document(_string(record, text_key, where))
    tools = record.get("tools")
    if kind == "completions":
        prompt = _string(record, "prompt", where)
        completion = _string(record, "completion", where)
        if not chat.available:
            text = prompt + completion
            return Document(text, spans=None if train_on == "all" else
                            ((len(prompt), len(text)),))
        messages: Any = [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": completion}]
    else:
        messages = record["messages"]
        check_messages(messages, where)
        if not chat.available:
            raise DataError(f"{where}: 'messages' records need a chat template, and this "
                            "model's tokenizer has none (data.chat_template names one)")
    rendered = render_record(chat, messages, tools, train_on, where)
    return Document(rendered.text, templated=True, spans=rendered.spans)


def _string(record: dict[str, Any], key: str, where: str) -> str:
    value = record[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: '{key}' must be a string, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value),
                                                                           type(value).__name__)
