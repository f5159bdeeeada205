"""What `prepare_dataset` is asked to do, and what it reports while doing it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from tscu_tui.engine.data.chat import TRAIN_ON
from tscu_tui.engine.data.packing import LONG_RECORDS
from tscu_tui.engine.errors import DataError

TXT_SPLITS = ("paragraph", "line", "document")
MAX_VALIDATION_FRACTION = 0.5


@dataclass(frozen=True)
class PrepareOptions:
    """One `tscu prepare` job. Validated by `check()` before anything is read."""

    dataset: str
    model: str
    output_dir: Path
    block_size: int = 1024
    max_tokens: int | None = None
    validation_fraction: float = 0.01
    test_fraction: float = 0.0
    text_column: str = "text"
    dataset_config: str | None = None
    txt_split: str = "paragraph"
    overwrite: bool = False
    train_on: str = "completions"
    long_records: str = "split"
    chat_template: str = ""  # a template file; empty = the tokenizer's own
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)

    def check(self, *, output: bool = True) -> None:
        """Raise DataError naming the first bad option (cheap checks only); `output=False`
        skips the output folder, for jobs that only read (a preview)."""
        if not self.dataset.strip():
            raise DataError("data.dataset is empty")
        if not self.model.strip():
            raise DataError("model.name is empty")
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) \
                or self.block_size < 2:
            raise DataError(f"data.block_size must be an integer >= 2, got {self.block_size!r}")
        if self.max_tokens is not None and (isinstance(self.max_tokens, bool)
                                            or not isinstance(self.max_tokens, int)
                                            or self.max_tokens < 1):
            raise DataError(f"data.max_tokens must be a positive integer, got {self.max_tokens!r}")
        for key in ("validation_fraction", "test_fraction"):
            f = getattr(self, key)
            if isinstance(f, bool) or not isinstance(f, int | float) or math.isnan(f) \
                    or not 0.0 <= f <= MAX_VALIDATION_FRACTION:
                raise DataError(f"data.{key} must be between 0 and "
                                f"{MAX_VALIDATION_FRACTION}, got {f!r}")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise DataError(f"data.validation_fraction {self.validation_fraction:g} and "
                            f"data.test_fraction {self.test_fraction:g} leave no training data")
        if self.txt_split not in TXT_SPLITS:
            raise DataError(f"data.txt_split must be one of {', '.join(TXT_SPLITS)}, "
                            f"got {self.txt_split!r}")
        if not self.text_column:
            raise DataError("data.text_column is empty")
        for key, allowed in (("train_on", TRAIN_ON), ("long_records", LONG_RECORDS)):
            if getattr(self, key) not in allowed:
                raise DataError(f"data.{key} must be one of {', '.join(allowed)}, "
                                f"got {getattr(self, key)!r}")
        kwargs = self.chat_template_kwargs
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise DataError(f"data.chat_template_kwargs must be a table of names, got "
                            f"{kwargs!r}")
        if self.chat_template and not Path(self.chat_template).expanduser().is_file():
            raise DataError(f"data.chat_template: no such file {self.chat_template}")
        if output:
            self._check_output_dir()

    def _check_output_dir(self) -> None:
        out = self.output_dir
        if not out.exists():
            return
        if not self.overwrite:
            raise DataError(f"output directory {out} already exists; allow overwriting to "
                            "replace it")
        if not out.is_dir():
            raise DataError(f"output path {out} exists and is not a directory")
        # --overwrite deletes the old folder: only ever a prepared dataset (or an empty
        # folder), never one that holds the input or unrelated files.
        source = Path(self.dataset).expanduser()
        if source.exists() and source.resolve().is_relative_to(out.resolve()):
            raise DataError(f"data.path {out} contains the dataset {self.dataset}; "
                            "overwriting would delete it, choose another folder")
        if any(out.iterdir()) and not (out / "meta.json").is_file():
            raise DataError(f"output directory {out} is not a prepared dataset (no meta.json); "
                            "refusing to replace it, choose another data.path")

    @property
    def fraction(self) -> Fraction:
        """The validation fraction as an exact ratio, so document routing has no float drift."""
        return Fraction(self.validation_fraction).limit_denominator(1_000_000)

    @property
    def test_share(self) -> Fraction:
        """The test fraction as an exact ratio."""
        return Fraction(self.test_fraction).limit_denominator(1_000_000)


@dataclass(frozen=True)
class PrepareProgress:
    """A snapshot of a running job, emitted a few times per second at most.

    `completed`/`total` count `unit`s ("bytes" of local files, "rows" of a
    dataset split, or "tokens" against --max-tokens) when a total is known.
    """

    stage: str  # "tokenizer", "reading", "hashing", "done"
    split: str | None = None
    documents: int = 0
    tokens: int = 0
    completed: int | None = None
    total: int | None = None
    unit: str | None = None

    @property
    def fraction(self) -> float | None:
        if self.total is None or self.completed is None or self.total <= 0:
            return None
        return min(1.0, self.completed / self.total)
