"""`tscu prepare`: tokenize a dataset once and pack it into training blocks.

Defaults come from the config file (`--config`, default tscu.toml, section
[data] and model.name); without a config file, the config's built-in defaults. The
engine does the work (tscu_tui.engine.data); this module only parses options,
draws a progress bar on stderr and prints a summary.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tscu_tui.engine.errors import DataError

if TYPE_CHECKING:
    from tscu_tui.engine.config import Config
    from tscu_tui.engine.data import DatasetMeta, PrepareOptions, PrepareProgress

DEFAULT_CONFIG = "tscu.toml"
TXT_SPLITS = ("paragraph", "line", "document")


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", metavar="SRC",
                        help="pydoc (offline), wikitext, wikitext-2, c4, a Hugging Face dataset id "
                             "(owner/name), or a local .txt/.jsonl file or folder "
                             "(default: data.dataset)")
    parser.add_argument("--model", metavar="MODEL",
                        help="model whose tokenizer to use (default: model.name; "
                             "tscu-tiny-qwen3 is the embedded, offline one)")
    parser.add_argument("--output-dir", metavar="DIR", type=Path,
                        help="folder to write (default: data.path)")
    parser.add_argument("--block-size", metavar="N", type=int,
                        help="tokens per training block (default: data.block_size, 1024)")
    parser.add_argument("--max-tokens", metavar="N", type=int,
                        help="stop after N tokens in all; 0 = no limit (required for c4)")
    parser.add_argument("--validation-fraction", metavar="F", type=float,
                        help="share of tokens held out (whole documents) when the dataset "
                             "has no validation split, 0 to 0.5 (default: 0.01)")
    parser.add_argument("--test-fraction", metavar="F", type=float,
                        help="share of tokens kept apart as a test split (whole documents) "
                             "when the dataset has no test split, 0 to 0.5 (default: 0)")
    parser.add_argument("--text-column", metavar="C",
                        help="text column of Hugging Face datasets, or text key of .jsonl "
                             "records (default: text)")
    parser.add_argument("--dataset-config", metavar="NAME",
                        help="Hugging Face dataset config name")
    parser.add_argument("--txt-split", choices=TXT_SPLITS,
                        help="documents of a .txt file: paragraph (default), line or document")
    parser.add_argument("--train-on", choices=("completions", "last_turn", "all"),
                        help="tokens of chat and prompt/completion records that carry loss: "
                             "every assistant turn (default), the last one, or all")
    parser.add_argument("--long-records", choices=("split", "truncate", "drop"),
                        help="a document longer than a block: split into pieces (default), "
                             "truncate to one block, or drop")
    parser.add_argument("--chat-template", metavar="FILE",
                        help="a Jinja chat template to render chat records with (default: "
                             "data.chat_template, else the tokenizer's own)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output folder if it exists")


#: the config key each flag sets: the engine's messages name keys, this command its flags
FLAG_OF_KEY = {"data.dataset": "--dataset", "model.name": "--model", "data.path": "--output-dir",
               "data.block_size": "--block-size", "data.max_tokens": "--max-tokens",
               "data.validation_fraction": "--validation-fraction",
               "data.test_fraction": "--test-fraction",
               "data.text_column": "--text-column", "data.dataset_config": "--dataset-config",
               "data.txt_split": "--txt-split", "data.train_on": "--train-on",
               "data.long_records": "--long-records", "data.chat_template": "--chat-template"}


def in_flags(message: str) -> str:
    """An engine message (naming config keys) in this command's words (its flags)."""
    for key, flag in FLAG_OF_KEY.items():
        message = re.sub(rf"(?<![\w.]){re.escape(key)}(?!\w)", flag, message)
    return message.replace("allow overwriting to replace it", "pass --overwrite to replace it")


def run(args: argparse.Namespace) -> int:
    options = build_options(args, load_defaults(getattr(args, "config", DEFAULT_CONFIG)))
    try:
        prepare_with_progress(options)
    except DataError as exc:
        raise DataError(in_flags(str(exc))) from None
    return 0


def prepare_with_progress(options: PrepareOptions, *, summary: bool = True) -> DatasetMeta:
    """Run `prepare_dataset` with a progress bar on stderr, then print a summary
    (also used by `tscu demo`). Errors propagate as one-line TscuErrors."""
    # Before `datasets` is imported: its tqdm bars would fight with ours.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    from rich.console import Console

    from tscu_tui.engine.data import prepare_dataset

    with _ProgressView(Console(stderr=True)) as view:
        meta = prepare_dataset(options, progress=view.update)
    if summary:
        _summary(Console(), options, meta)
    return meta


def load_defaults(config: str) -> tuple[Config, str]:
    """The config whose [data] section and model.name give the option defaults, and its
    name. A missing default tscu.toml means the built-in defaults; a named file must
    exist (ConfigError otherwise)."""
    from tscu_tui.engine.config import Config, load_config

    if config == DEFAULT_CONFIG and not Path(config).is_file():
        return Config(), "built-in defaults"
    return load_config(config), config


def build_options(args: argparse.Namespace, defaults: tuple[Config, str]) -> PrepareOptions:
    from tscu_tui.engine.data import PrepareOptions

    config, origin = defaults
    data = config.data

    def given(name: str, fallback: Any) -> Any:
        value = getattr(args, name, None)
        return fallback if value is None else value

    dataset = given("dataset", data.dataset)
    if not dataset:
        raise DataError(f"--dataset is required (no data.dataset in {origin})")
    output_dir = given("output_dir", data.path)
    if not output_dir:
        raise DataError(f"--output-dir is required (no data.path in {origin})")
    options = PrepareOptions(
        dataset=str(dataset),
        model=str(given("model", config.model.name)),
        output_dir=Path(output_dir).expanduser(),
        block_size=given("block_size", data.block_size),
        max_tokens=given("max_tokens", data.max_tokens) or None,  # 0 = no limit
        validation_fraction=given("validation_fraction", data.validation_fraction),
        test_fraction=given("test_fraction", data.test_fraction),
        text_column=given("text_column", data.text_column),
        dataset_config=given("dataset_config", data.dataset_config) or None,
        txt_split=given("txt_split", data.txt_split),
        overwrite=bool(getattr(args, "overwrite", False)),
        train_on=given("train_on", data.train_on),
        long_records=given("long_records", data.long_records),
        chat_template=given("chat_template", data.chat_template),
        chat_template_kwargs=dict(data.chat_template_kwargs),
    )
    try:
        options.check()
    except DataError as exc:
        raise DataError(in_flags(str(exc))) from None
    return options


class _ProgressView:
    """A rich progress bar on stderr, drawn only on a terminal (so errors stay one line
    and logs stay clean); transient, so the summary replaces it."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        # Narrow enough for an 80-column terminal.
        self._progress = Progress(
            TextColumn("{task.description:<15}"), BarColumn(bar_width=16), TaskProgressColumn(),
            TextColumn("{task.fields[docs]:>12}"), TextColumn("{task.fields[tokens]:>10}"),
            TextColumn("{task.fields[rate]:>11}"), TimeElapsedColumn(), console=console,
            transient=True, disable=not console.is_terminal)
        self._task = self._progress.add_task("starting", total=None, docs="", tokens="",
                                             rate="")
        self._split: str | None = None
        self._started = time.monotonic()

    def __enter__(self) -> _ProgressView:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, p: PrepareProgress) -> None:
        if p.split != self._split:
            self._split, self._started = p.split, time.monotonic()
        label = {"resolving": "opening dataset", "tokenizer": "loading tokenizer",
                 "hashing": "hashing", "done": "done"}.get(p.stage, f"reading {p.split or ''}")
        elapsed = time.monotonic() - self._started
        rate = (f"{_short(p.tokens / elapsed)} tok/s" if p.stage == "reading" and elapsed > 0
                else "")
        self._progress.update(self._task, description=label, total=p.total,
                              completed=p.completed or 0, docs=f"{p.documents:,} docs",
                              tokens=f"{_short(p.tokens)} tok", rate=rate)


def _short(n: float) -> str:
    """1234 -> 1.2k, 5_600_000 -> 5.6M: compact counts for the progress line."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            return f"{n / limit:.1f}{suffix}"
    return f"{n:.0f}"


def _summary(console: Any, options: PrepareOptions, meta: DatasetMeta) -> None:
    from rich.markup import escape

    # soft_wrap: long paths stay on one line (copyable), whatever the width.
    console.print(f"Prepared [bold]{escape(options.dataset)}[/] into "
                  f"[bold]{escape(str(options.output_dir))}[/]", soft_wrap=True)
    for name, split in meta.splits.items():
        console.print(f"  {name:<10} {split.content_tokens:>14,} tokens {split.blocks:>10,} "
                      f"blocks {split.documents:>10,} documents", soft_wrap=True)
    capped = ", stopped at --max-tokens" if meta.truncated else ""
    console.print(f"  block size {meta.block_size}, {meta.dtype}, validation: "
                  f"{escape(meta.validation_source)}, test: {escape(meta.test_source)}{capped}",
                  soft_wrap=True)
    console.print(f"  tokenizer of {escape(meta.model)}", soft_wrap=True)
    for line in summary_lines(meta):
        console.print(f"  {escape(line)}", soft_wrap=True)


def summary_lines(meta: DatasetMeta) -> list[str]:
    """What the loss trains on and what packing did, for the summary (and `tscu demo`)."""
    if not meta.has_flags:
        return []
    train = meta.split("train")
    padding = sum(s.padding for s in meta.splits.values())
    total = sum(s.tokens for s in meta.splits.values())
    lines = []
    if meta.loss_token_share is not None:
        what = (f"data.train_on = {meta.train_on}" if meta.chat_template is not None
                else "plain text: every token")
        lines.append(f"loss on {meta.loss_token_share:.1%} of the training tokens "
                     f"({train.trained_tokens:,} of {train.content_tokens:,}; {what})")
    lines.append(f"one document per block segment, attention kept apart; padding "
                 f"{padding / total:.1%} of the blocks" if total else "no blocks")
    long = meta.long_records or {}
    count = sum(long.get(k, 0) for k in ("split", "truncated", "dropped"))
    if count:
        done = {"split": "split into block-size pieces (each trains without the text "
                         "before it)", "truncate": "truncated to one block",
                "drop": "dropped"}[long.get("mode", "split")]
        lines.append(f"warning: {count:,} documents longer than a block of {meta.block_size} "
                     f"were {done} (data.long_records = {long.get('mode')})")
    if meta.chat_template is not None:
        template = meta.chat_template
        kwargs = ", ".join(f"{k}={v!r}" for k, v in (template.get("kwargs") or {}).items())
        lines.append(f"chat records rendered with {template.get('source')}"
                     f"{f' ({kwargs})' if kwargs else ''}")
    return lines
