"""GGUF tokenizers converted without torch, equal to transformers' own GGUF path.

transformers 5.x reads GGUF metadata only with torch installed (its reader imports
torch), so tscu reads the metadata with the `gguf` package and hands it to
transformers' converter. These tests hold that route to what
`AutoTokenizer.from_pretrained(..., gguf_file=...)` gives (torch is installed in the
test environment, so that side still works here): the same files and the same ids.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as Q
from gguf_files import random_model, write_gguf

from tscu_tui.engine.config.assets import DEMO_CORPUS
from tscu_tui.engine.errors import ModelError
from tscu_tui.engine.models import gguf_cache
from tscu_tui.engine.models.gguf_tokenizer import write_tokenizer_files

#: what `from_pretrained` records about where it loaded from; nothing a tokenizer does
LOADING_HINTS = {"is_local", "local_files_only"}


def _texts() -> list[str]:
    code = Path(__file__).read_text()[:2500]
    unicode = "".join(DEMO_CORPUS.read_text(encoding="utf-8").splitlines(True)[:30])
    chat = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nNaïve café — 東京 🚀"
            "\tx = 10 ** 3<|im_end|>\n<|im_start|>assistant\n")
    return [code, unicode, chat, "  leading spaces\n\n\ttabs and 12345 digits",
            "<|endoftext|>special in text", "Ünïcödé ﬁ ligature, NFC é vs e\u0301"]


def _same_files(ours: Path, theirs: Path) -> None:
    for name in ("tokenizer.json", "chat_template.jinja"):
        assert (ours / name).exists() == (theirs / name).exists(), name
        if (theirs / name).exists():
            assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    config = {k: v for k, v in json.loads((theirs / "tokenizer_config.json").read_text()).items()
              if k not in LOADING_HINTS}
    assert json.loads((ours / "tokenizer_config.json").read_text()) == config


def _transformers_side(gguf_path: Path, out: Path):
    from transformers import AutoTokenizer

    theirs = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    theirs.save_pretrained(str(out))
    return theirs


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_synthetic_files_convert_as_transformers_does(arch, tmp_path):
    from mlx_lm.utils import load_tokenizer

    config, weights = random_model(arch)
    (tmp_path / "src").mkdir()
    path = write_gguf(tmp_path / "src" / f"{arch}.gguf", arch, config, weights,
                      {"proj": Q.Q8_0})
    write_tokenizer_files(path, tmp_path / "ours")
    in_memory = _transformers_side(path, tmp_path / "theirs")  # what imports wrote before
    _same_files(tmp_path / "ours", tmp_path / "theirs")
    ours = load_tokenizer(tmp_path / "ours")  # as mlx-lm (and so tscu) loads it
    before = load_tokenizer(tmp_path / "theirs")
    for text in _texts():
        assert ours.encode(text) == before.encode(text)
    if arch == "llama":  # qwen's reloaded class adds NFC, which the GGUF conversion lacks
        assert all(ours.encode(t) == in_memory.encode(t) for t in _texts())


def test_smollm2_files_and_chat_ids_match_transformers(smollm2_dir, tmp_path):
    """The import's files equal AutoTokenizer's (token ids on varied text are compared in
    test_gguf_import.py); the chat template tokenizes alike, generation prompt included."""
    from mlx_lm.utils import load_tokenizer

    theirs = _transformers_side(gguf_cache.gguf_file("smollm2-135m"), tmp_path / "theirs")
    _same_files(smollm2_dir, tmp_path / "theirs")
    ours = load_tokenizer(smollm2_dir)
    messages = [{"role": "user", "content": "Write `print('hé')` in Python 🐍"},
                {"role": "assistant", "content": "print('hé')"},
                {"role": "user", "content": "Again?"}]
    for prompt in (False, True):
        ids = ours.apply_chat_template(messages, add_generation_prompt=prompt, tokenize=True)
        assert ids == theirs.apply_chat_template(messages, add_generation_prompt=prompt,
                                                 tokenize=True)["input_ids"]


# Any `import torch` fails in the child, as it would in an environment without torch.
_NO_TORCH = """
import sys
sys.modules["torch"] = None
from pathlib import Path
from tscu_tui.engine.models.gguf import import_gguf
import_gguf(Path(sys.argv[1]), Path(sys.argv[2]))
assert "torch" not in {m for m, v in sys.modules.items() if v is not None}
"""


def test_an_import_needs_no_torch(tmp_path):
    from mlx_lm.utils import load_tokenizer

    config, weights = random_model("qwen3")
    path = write_gguf(tmp_path / "m.gguf", "qwen3", config, weights, {"proj": Q.Q8_0})
    done = subprocess.run([sys.executable, "-c", _NO_TORCH, str(path), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = _transformers_side(path, tmp_path / "theirs")
    text = _texts()[0]
    assert load_tokenizer(tmp_path / "out").encode(text) == theirs.encode(text)


def test_a_file_without_a_tokenizer_is_named(tmp_path):
    import gguf

    path = tmp_path / "bare.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match=r"bare\.gguf: the file carries no tokenizer"):
        write_tokenizer_files(path, tmp_path / "out")
