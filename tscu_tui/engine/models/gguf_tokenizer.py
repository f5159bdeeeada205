"""A GGUF file's tokenizer as Hugging Face tokenizer files, without torch.

transformers 5.x reads GGUF metadata with its own reader
(`transformers/integrations/gguf/reader.py`), which imports torch at its top, so
`AutoTokenizer.from_pretrained(..., gguf_file=...)` fails with "Could not import
module 'read_gguf_metadata'" wherever torch is not installed, and torch is no
requirement of tscu. The metadata is read here with llama.cpp's own `gguf`
package instead, into the same fields transformers' `get_gguf_tokenizer` gives,
and the conversion itself is transformers' (`convert_gguf_tokenizer`: vocabulary,
merges, control and user-defined tokens, the pre-tokenizer split for the file's
`tokenizer.ggml.pre`), wrapped in the tokenizer class AutoTokenizer would pick for
the architecture. The files written are the ones AutoTokenizer's GGUF path wrote
(tests/test_gguf_tokenizer.py compares them, and the token ids, on real and
synthetic files), so imports made before and after this module agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tscu_tui.engine.errors import ModelError, first_line

#: GGUF `general.architecture` -> transformers' model_type (what picks the tokenizer class)
MODEL_TYPES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
#: special-token attributes -> the tokenizer.ggml.* id key that names each
_SPECIAL_TOKENS = {"bos_token": "bos_token_id", "eos_token": "eos_token_id",
                   "unk_token": "unknown_token_id", "pad_token": "padding_token_id"}


def tokenizer_fields(path: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(architecture, tokenizer_dict, tokenizer_config) as transformers'
    `get_gguf_tokenizer` returns them, read with the `gguf` package."""
    import gguf
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING

    reader = gguf.GGUFReader(path)
    metadata = {key: field.contents() for key, field in reader.fields.items()
                if key.startswith("tokenizer.") or key == "general.architecture"}
    architecture = str(metadata["general.architecture"])
    grouped = {group: {name: metadata[f"tokenizer.{key}"] for key, name in renames.items()
                       if f"tokenizer.{key}" in metadata}
               for group, renames in GGUF_TOKENIZER_MAPPING.items()}
    tokenizer, config = grouped["tokenizer"], grouped["tokenizer_config"]
    if "tokens" not in tokenizer:
        raise ModelError(f"{path}: the file carries no tokenizer (no tokenizer.ggml.tokens)")
    if tokenizer.get("tokenizer_type") == "llama":
        # transformers' rule: older sentencepiece files have no flag, and llama.cpp adds BOS
        config.setdefault("add_bos_token", True)
    for name, key in _SPECIAL_TOKENS.items():
        token_id = metadata.get(f"tokenizer.ggml.{key}")
        config[name] = tokenizer["tokens"][int(token_id)] if token_id is not None else None
    return architecture, tokenizer, config


def _tokenizer_class(architecture: str) -> type:
    """The class AutoTokenizer gives a GGUF of this architecture: the one registered for
    its model_type, else the plain tokenizers backend."""
    from transformers import TokenizersBackend
    from transformers.models.auto.tokenization_auto import (
        TOKENIZER_MAPPING_NAMES,
        tokenizer_class_from_name,
    )

    name = TOKENIZER_MAPPING_NAMES.get(MODEL_TYPES.get(architecture, architecture))
    found = tokenizer_class_from_name(name) if name else None
    return found if found is not None else TokenizersBackend


def write_tokenizer_files(path: Path, folder: Path) -> None:
    """tokenizer.json, tokenizer_config.json and the chat template of GGUF `path` into
    `folder`; ModelError names the file when its tokenizer cannot be converted."""
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import (
            convert_gguf_tokenizer,
        )

        architecture, tokenizer_dict, config = tokenizer_fields(path)
        backend, extra = convert_gguf_tokenizer(architecture, tokenizer_dict)
        tokenizer = _tokenizer_class(architecture)(tokenizer_object=backend,
                                                   **{**config, **extra})
        tokenizer.save_pretrained(str(folder))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: its tokenizer cannot be converted "
                         f"({first_line(exc)})") from None
