"""Where documents come from: resolve `--dataset` to a streaming document source.

What a source yields (documents) and the `Source` interface live in
documents.py; the readers in local.py and hub.py.

Resolution order for `--dataset NAME`:
1. a built-in name (`pydoc`, shipped with Python; `wikitext`, `wikitext-103`,
   `wikitext-2`, `c4` from the Hub);
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tscu_tui.engine.data.documents import DATASETS_SUFFIXES, TEXT_SUFFIXES, Source
from tscu_tui.engine.errors import DataError

if TYPE_CHECKING:
    from tscu_tui.engine.data.options import PrepareOptions


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

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_source(options: PrepareOptions) -> Source:
    """Turn `options.dataset` into a Source, failing fast with one line if it cannot be."""
    from tscu_tui.engine.data import hub, local, pydoc

    name = options.dataset.strip()
    if name.lower() == pydoc.NAME:
        return pydoc.PydocSource()
    builtin = BUILTIN_DATASETS.get(name.lower())
    if builtin is not None:
        if builtin.needs_max_tokens and options.max_tokens is None:
            raise DataError(f"dataset '{name}' is far too large to prepare whole: "
                            "bound it with data.max_tokens (e.g. 100000000)")
        return hub.HubSource.open(name, builtin.repo, builtin.config, "text")
    path = Path(name).expanduser()
    if path.exists():
        return local.open_local(path, options)
    if _looks_like_path(name):
        raise DataError(f"dataset not found: no such file or folder {name}")
    if _HUB_ID.match(name):
        return hub.HubSource.open(name, name, options.dataset_config, options.text_column)
    close = difflib.get_close_matches(name.lower(), ["pydoc", *BUILTIN_DATASETS], n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise DataError(f"unknown dataset '{name}': {hint}use pydoc, wikitext, wikitext-2, c4, a "
                    "Hugging Face dataset id (owner/name), or a local .txt/.jsonl file or folder")


def _looks_like_path(name: str) -> bool:
    suffix = Path(name).suffix.lower()
    return (name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1
            or suffix in TEXT_SUFFIXES or suffix in DATASETS_SUFFIXES or suffix == ".gz")
