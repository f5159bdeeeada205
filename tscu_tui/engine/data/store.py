"""The on-disk format of a prepared dataset, and its reader.

A prepared dataset is a folder:

    meta.json            what was prepared, how, and a hash of the token files
    train.bin            training tokens in whole blocks, little-endian `dtype`
    validation.bin       validation tokens in whole blocks (may be empty with fraction 0)
    test.bin             test tokens in whole blocks (empty without a test split)
    train.flags.bin      one byte a token: trained / segment start / padding
    validation.flags.bin (encoding.py says what the bits mean), for each split
    test.flags.bin

Whole documents go to one split (a document never straddles two), so the test
split is text training never saw and validation never selected on. Inside a
split each document sits whole in one block, the rest of a block is padding
(packing.py). Block i of a split is tokens[i*block_size:(i+1)*block_size].
`dtype` is uint16 when the vocabulary fits in 16 bits, else uint32.
`content_hash` is "sha256:" + the sha256 of the token files then the flag files
in split order (`cat train.bin validation.bin test.bin train.flags.bin
validation.flags.bin test.flags.bin | sha256sum`).

Formats 1 and 2 (no flag files: documents were concatenated with EOS and cut
into blocks) still open: every target trains and attention is not masked, as
when they were prepared; format 1 has no test split either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tscu_tui.engine.errors import DataError

FORMAT_VERSION = 3
#: Versions this tscu reads: 1 had no test split (its content hash is the same, since
#: an empty test.bin adds no bytes to it), 1 and 2 no flag files.
READ_VERSIONS = (1, 2, 3)
META_FILE = "meta.json"
SPLITS = ("train", "validation", "test")
#: Splits that a format-1 dataset holds.
SPLITS_V1 = ("train", "validation")
DTYPES = ("uint16", "uint32")


def split_file(split: str) -> str:
    return f"{split}.bin"


def flags_file(split: str) -> str:
    return f"{split}.flags.bin"


@dataclass(frozen=True)
class SplitMeta:
    """Counts for one split. `tokens` counts what the file holds, `padding` included;
    `loss_tokens` the targets that carry loss (None before format 3: all of them)."""

    documents: int
    tokens: int
    blocks: int
    padding: int = 0
    loss_tokens: int | None = None

    @property
    def content_tokens(self) -> int:
        return self.tokens - self.padding

    @property
    def trained_tokens(self) -> int:
        """Targets that carry loss (every token but each block's first, before format 3)."""
        if self.loss_tokens is not None:
            return self.loss_tokens
        return self.tokens - self.blocks if self.blocks else self.tokens


@dataclass(frozen=True)
class DatasetMeta:
    """meta.json, parsed and checked."""

    format_version: int
    source: Mapping[str, Any]
    model: str
    tokenizer: str
    vocab_size: int
    eos_token_id: int
    dtype: str
    block_size: int
    max_tokens: int | None
    truncated: bool
    splits: Mapping[str, SplitMeta]
    validation_source: str
    content_hash: str
    created: str
    tscu_version: str
    #: Where the test split came from: "dataset split", "fraction F" or "none".
    test_source: str = "none"
    #: Which tokens of chat records carry loss (data.train_on); text always trains all.
    train_on: str = "all"
    #: data.long_records and what it did: {"mode", "split", "truncated", "dropped"}.
    long_records: Mapping[str, Any] | None = None
    #: The template chat records were rendered with: {"source", "kwargs", "text"}
    #: ("text" only for a custom template), None when no record used one.
    chat_template: Mapping[str, Any] | None = None
    #: Share of the training split's tokens (padding excluded) that carry loss.
    loss_token_share: float | None = None
    #: One chat record as rendered: [text, trained] pieces, for the dataset screen.
    example: list[Any] | None = None
    #: Held-out prompts for samples while training: {"tokens", "text", "reference"}.
    sample_prompts: list[Any] | None = None

    @property
    def has_test(self) -> bool:
        return self.splits["test"].blocks > 0

    @property
    def has_flags(self) -> bool:
        """Format 3: per-token flags (loss masks, document segments) exist."""
        return self.format_version >= 3

    def training_facts(self) -> dict[str, Any]:
        """How this data trains, for a run's summary and model card: which tokens carry
        loss, their share, the chat template (where it came from and its variables)."""
        template = self.chat_template
        return {"train_on": self.train_on if template is not None else "all (plain text)",
                "loss_token_share": self.loss_token_share,
                "documents_masked": self.has_flags,
                "chat_template": None if template is None else {
                    "source": template.get("source"), "kwargs": template.get("kwargs") or {},
                    "custom": template.get("text") is not None}}

    def split(self, name: str) -> SplitMeta:
        if name not in self.splits:
            raise DataError(f"unknown split '{name}': use {', '.join(SPLITS)}")
        return self.splits[name]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["source"] = dict(self.source)
        data["splits"] = {k: asdict(v) for k, v in self.splits.items()}
        return data

    @classmethod
    def from_json(cls, obj: Any, where: str) -> DatasetMeta:
        """Check every field of a parsed meta.json; DataError names the first bad one."""
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object")
        version = _field(obj, "format_version", int, where)
        if version not in READ_VERSIONS:
            raise DataError(f"{where}: format_version {version} is not supported (this tscu reads "
                            f"{' and '.join(map(str, READ_VERSIONS))}); prepare the dataset again")
        splits_obj = _field(obj, "splits", dict, where)
        splits = {}
        for name in SPLITS:
            if version == 1 and name not in SPLITS_V1:
                splits[name] = SplitMeta(0, 0, 0)
                continue
            entry = splits_obj.get(name)
            if not isinstance(entry, dict):
                raise DataError(f"{where}: 'splits.{name}' is missing")
            counts = [_field(entry, k, int, f"{where}: splits.{name}")
                      for k in ("documents", "tokens", "blocks")]
            if version >= 3:
                counts += [_field(entry, k, int, f"{where}: splits.{name}")
                           for k in ("padding", "loss_tokens")]
            splits[name] = SplitMeta(*counts)
        max_tokens = obj.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise DataError(f"{where}: 'max_tokens' must be a positive integer or null")
        meta = cls(
            format_version=version,
            source=_field(obj, "source", dict, where),
            model=_field(obj, "model", str, where),
            tokenizer=_field(obj, "tokenizer", str, where),
            vocab_size=_field(obj, "vocab_size", int, where),
            eos_token_id=_field(obj, "eos_token_id", int, where),
            dtype=_field(obj, "dtype", str, where),
            block_size=_field(obj, "block_size", int, where),
            max_tokens=max_tokens,
            truncated=_field(obj, "truncated", bool, where),
            splits=splits,
            validation_source=_field(obj, "validation_source", str, where),
            content_hash=_field(obj, "content_hash", str, where),
            created=_field(obj, "created", str, where),
            tscu_version=_field(obj, "tscu_version", str, where),
            test_source=(_field(obj, "test_source", str, where) if version > 1 else "none"),
            **(_format3(obj, where) if version >= 3 else {}),
        )
        meta._check(where)
        return meta

    def _check(self, where: str) -> None:
        if self.dtype not in DTYPES:
            raise DataError(f"{where}: 'dtype' must be one of {', '.join(DTYPES)}, "
                            f"got {self.dtype!r}")
        if self.block_size < 2:
            raise DataError(f"{where}: 'block_size' must be >= 2, got {self.block_size}")
        limit = np.iinfo(np.dtype(self.dtype)).max
        if not 0 <= self.eos_token_id <= limit or not 0 < self.vocab_size <= limit + 1:
            raise DataError(f"{where}: 'vocab_size'/'eos_token_id' do not fit {self.dtype}")
        if not self.content_hash.startswith("sha256:"):
            raise DataError(f"{where}: 'content_hash' must start with 'sha256:'")
        for name, split in self.splits.items():
            if min(split.documents, split.tokens, split.blocks) < 0:
                raise DataError(f"{where}: 'splits.{name}' has a negative count")
            if min(split.padding, split.loss_tokens or 0) < 0 or split.padding > split.tokens:
                raise DataError(f"{where}: 'splits.{name}' has impossible padding or loss "
                                "token counts")
            if split.blocks != split.tokens // self.block_size:
                raise DataError(f"{where}: 'splits.{name}.blocks' is {split.blocks}, but "
                                f"{split.tokens} tokens make {split.tokens // self.block_size} "
                                f"blocks of {self.block_size}")


def _format3(obj: dict[str, Any], where: str) -> dict[str, Any]:
    """The fields format 3 added (the optional ones may be null)."""
    share = obj.get("loss_token_share")
    if share is not None and (not isinstance(share, int | float) or not 0 <= share <= 1):
        raise DataError(f"{where}: 'loss_token_share' must be a number in [0, 1] or null")
    fields: dict[str, Any] = {"train_on": _field(obj, "train_on", str, where),
                              "long_records": _field(obj, "long_records", dict, where),
                              "loss_token_share": share}
    for key, kind in (("chat_template", dict), ("example", list), ("sample_prompts", list)):
        value = obj.get(key)
        if value is not None and not isinstance(value, kind):
            raise DataError(f"{where}: '{key}' must be {_kind_name(kind)} or null")
        fields[key] = value
    return fields


def _field(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in obj:
        raise DataError(f"{where}: '{key}' is missing")
    value = obj[key]
    # bool is an int subclass: do not let `true` pass as a count.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataError(f"{where}: '{key}' must be {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: type) -> str:
    return {int: "an integer", str: "a string", dict: "an object", bool: "true or false",
            list: "an array"}.get(kind, kind.__name__)


class PreparedDataset:
    """A prepared dataset folder, opened read-only. Token arrays are memory-mapped,
    so opening is instant and nothing is loaded until it is touched."""

    def __init__(self, path: Path, meta: DatasetMeta) -> None:
        self.path = path
        self.meta = meta
        self._tokens: dict[str, np.ndarray] = {}
        self._flags: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> PreparedDataset:
        """Open and validate `path` (meta.json fields and token file sizes)."""
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DataError(f"prepared dataset not found: {folder} (create it with tscu prepare)")
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise DataError(f"{folder}: no {META_FILE}, not a prepared dataset "
                            "(create it with tscu prepare)")
        try:
            obj = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{meta_path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{meta_path}: cannot read ({exc})") from None
        meta = DatasetMeta.from_json(obj, str(meta_path))
        itemsize = np.dtype(meta.dtype).itemsize
        for name, split in meta.splits.items():
            file = folder / split_file(name)
            if meta.format_version == 1 and name not in SPLITS_V1:
                continue  # format 1 has no file for it (and an empty split)
            if not file.is_file():
                raise DataError(f"{file} is missing; prepare the dataset again")
            size = file.stat().st_size
            if size != split.tokens * itemsize:
                raise DataError(f"{file} is {size} bytes but {META_FILE} says {split.tokens} "
                                f"{meta.dtype} tokens ({split.tokens * itemsize} bytes); the "
                                "dataset is damaged, prepare it again")
            if not meta.has_flags:
                continue
            flags = folder / flags_file(name)
            if not flags.is_file() or flags.stat().st_size != split.tokens:
                raise DataError(f"{flags} is missing or not one byte per token of {file}; "
                                "the dataset is damaged, prepare it again")
        return cls(folder, meta)

    def tokens(self, split: str) -> np.ndarray:
        """The flat, read-only token stream of `split` (memory-mapped)."""
        info = self.meta.split(split)
        if split not in self._tokens:
            dtype = np.dtype(self.meta.dtype).newbyteorder("<")
            if info.tokens == 0:  # numpy cannot map an empty file
                array = np.zeros(0, dtype=dtype)
                array.flags.writeable = False
            else:
                array = np.memmap(self.path / split_file(split), dtype=dtype, mode="r",
                                  shape=(info.tokens,))
            self._tokens[split] = array
        return self._tokens[split]

    def blocks(self, split: str) -> np.ndarray:
        """Read-only (n_blocks, block_size) view of `split`'s full blocks."""
        info = self.meta.split(split)
        size = self.meta.block_size
        return self.tokens(split)[: info.blocks * size].reshape(info.blocks, size)

    def flags(self, split: str) -> np.ndarray | None:
        """The flat, read-only flags of `split` (encoding.py), None before format 3."""
        info = self.meta.split(split)
        if not self.meta.has_flags:
            return None
        if split not in self._flags:
            if info.tokens == 0:
                array = np.zeros(0, dtype=np.uint8)
                array.flags.writeable = False
            else:
                array = np.memmap(self.path / flags_file(split), dtype=np.uint8, mode="r",
                                  shape=(info.tokens,))
            self._flags[split] = array
        return self._flags[split]

    def flag_blocks(self, split: str) -> np.ndarray | None:
        """Read-only (n_blocks, block_size) view of `split`'s flags, None before format 3."""
        flags = self.flags(split)
        if flags is None:
            return None
        info, size = self.meta.split(split), self.meta.block_size
        return flags[: info.blocks * size].reshape(info.blocks, size)

    def segments(self, split: str) -> list[np.ndarray]:
        """The token runs of `split` that attend only among themselves (documents, or the
        pieces of long ones), padding left out, in file order."""
        tokens, flags = self.tokens(split), self.flags(split)
        if flags is None:
            raise DataError(f"{self.path}: format {self.meta.format_version} has no segments")
        from tscu_tui.engine.data.encoding import PAD, START

        starts = np.flatnonzero(flags & START).tolist() + [tokens.size]
        return [np.asarray(tokens[a:b]) for a, b in zip(starts, starts[1:], strict=False)
                if not flags[a] & PAD]

    def verify(self) -> None:
        """Re-hash the token files against meta.json (reads everything: slow for big sets)."""
        from tscu_tui.engine.data.packing import sha256_files

        files = [self.path / split_file(s) for s in SPLITS]
        if self.meta.has_flags:
            files += [self.path / flags_file(s) for s in SPLITS]
        digest = "sha256:" + sha256_files([f for f in files if f.exists()])
        if digest != self.meta.content_hash:
            raise DataError(f"{self.path}: token files do not match the content_hash in "
                            f"{META_FILE}; the dataset is damaged, prepare it again")
