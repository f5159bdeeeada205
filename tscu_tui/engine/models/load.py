"""Find and load models: the embedded tiny model, GGUF files, local folders and Hub ids.

Everything goes through `mlx_lm.load` / `mlx_lm.utils.load_tokenizer` once the
model is on disk; this module only decides *where* it is and turns the Hub's
failure modes into one-line errors that point at the embedded model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tscu_tui.engine.config.assets import EMBEDDED_MODEL_DIR
from tscu_tui.engine.errors import ModelError, first_line
from tscu_tui.engine.models.gguf_cache import imported_model_dir, is_gguf_name

if TYPE_CHECKING:
    from mlx_lm.tokenizer_utils import TokenizerWrapper

#: Name that selects the tiny 4-bit Qwen3 shipped inside the package.
EMBEDDED_MODEL = "tscu-tiny-qwen3"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TOKENIZER_FILES = ["*.json", "tokenizer.model", "*.tiktoken", "*.txt", "*.jinja", "*.py"]
_MODEL_FILES = [*_TOKENIZER_FILES, "*.safetensors"]


def is_embedded(name: str) -> bool:
    return name == EMBEDDED_MODEL or Path(name).expanduser().resolve() == EMBEDDED_MODEL_DIR


def resolve_model_path(name: str, *, tokenizer_only: bool = False,
                       revision: str | None = None) -> Path:
    """Return the local folder holding model `name`, downloading it if needed.

    `name` is the embedded model's name, a `.gguf` file or alias (imported once into
    tscu's cache, see gguf_cache.py), a local folder, or a Hub repo id.
    Raises ModelError with one line on any failure.
    """
    if name == EMBEDDED_MODEL:
        if not (EMBEDDED_MODEL_DIR / "config.json").is_file():
            raise ModelError(f"the embedded model is missing from {EMBEDDED_MODEL_DIR}; "
                             "rebuild it with: python scripts/build_tiny_model.py")
        return EMBEDDED_MODEL_DIR
    if is_gguf_name(name):
        folder = imported_model_dir(name)
        assert folder is not None
        return folder
    local = Path(name).expanduser()
    if local.exists():
        if not local.is_dir() or not (local / "config.json").is_file():
            raise ModelError(f"{local} is not a model folder (no config.json in it)")
        return local
    if not _HUB_ID.match(name):
        raise ModelError(f"model '{name}' is neither a local folder nor a Hugging Face repo id")
    return _from_hub(name, _TOKENIZER_FILES if tokenizer_only else _MODEL_FILES, revision)


def _from_hub(repo_id: str, patterns: list[str], revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns,
                                      local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        pass
    except Exception:  # a damaged cache entry: try the network below
        pass
    hint = f"for an offline run use the embedded model: --model {EMBEDDED_MODEL}"
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except GatedRepoError:
        raise ModelError(f"model '{repo_id}' is gated on the Hub: accept its terms and log in "
                         "(huggingface-cli login)") from None
    except RepositoryNotFoundError:
        raise ModelError(f"model '{repo_id}' does not exist on the Hugging Face Hub "
                         "(or is private and no token is set)") from None
    except RevisionNotFoundError:
        raise ModelError(f"model '{repo_id}' has no revision '{revision}'") from None
    except LocalEntryNotFoundError:
        raise ModelError(f"model '{repo_id}' is not in the Hugging Face cache and the Hub "
                         f"cannot be reached; {hint}") from None
    except (HfHubHTTPError, OSError) as exc:
        raise ModelError(f"cannot download model '{repo_id}' ({first_line(exc)}); "
                         f"{hint}") from None


def model_source(name: str) -> dict[str, Any] | None:
    """For a GGUF model: what it was imported from (file, sha256, tensor types, the
    file's `general.*` metadata), as `tscu_import.json` in its cache folder records."""
    if not is_gguf_name(name):
        return None
    from tscu_tui.engine.models.gguf import read_import_record

    folder = imported_model_dir(name, import_missing=False)
    return read_import_record(folder) if folder is not None else None


def load_tokenizer(name: str, revision: str | None = None) -> TokenizerWrapper:
    """Load only the tokenizer of model `name` (no weights are downloaded)."""
    from mlx_lm.utils import load_config
    from mlx_lm.utils import load_tokenizer as _load

    path = resolve_model_path(name, tokenizer_only=True, revision=revision)
    try:
        eos = load_config(path).get("eos_token_id")
    except Exception:
        eos = None
    try:
        return _load(path, eos_token_ids=eos)
    except Exception as exc:
        raise ModelError(f"cannot load the tokenizer of '{name}' from {path}: {exc}") from None


def load_model(name: str, revision: str | None = None) -> tuple[Any, TokenizerWrapper, dict]:
    """Load model, tokenizer and config of `name` through `mlx_lm.load`."""
    from mlx_lm import load

    path = resolve_model_path(name, revision=revision)
    try:
        model, tokenizer, config = load(str(path), return_config=True)
    except Exception as exc:
        raise ModelError(f"cannot load model '{name}' from {path}: {exc}") from None
    return model, tokenizer, config
