"""Build tscu's native CPU kernels (csrc/) into tscu_tui/engine/models/_native*.so.

    python scripts/build_native.py [--force] [--quiet]

Needs a C++20 compiler, CMake >= 3.19 and the `nanobind` package at the version
MLX was built with (`make setup` installs them; scripts/system_deps.sh the
compiler and CMake). The module is built for this machine's CPU (-march=native;
TSCU_NATIVE_ARCH overrides, e.g. "-march=x86-64-v3" for a build other machines
share) against the MLX installed here, and records that MLX version beside it:
tscu loads it only under the same MLX and otherwise runs its pure-MLX kernels.

Exit status 0 when the module is built (or already up to date), 1 with one line
saying why not; tscu works either way, slower without it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "csrc"
BUILD = ROOT / "build" / "native"
TARGET_DIR = ROOT / "tscu_tui" / "engine" / "models"
STAMP = TARGET_DIR / "_native_build.json"


def module_name() -> str:
    return "_native" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def fingerprint(arch: str) -> dict[str, str]:
    import mlx.core as mx

    digest = hashlib.sha256()
    for path in sorted(SOURCE.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return {"mlx": mx.__version__, "python": sys.version.split()[0], "arch": arch,
            "source_sha256": digest.hexdigest()}


def up_to_date(stamp: dict[str, str]) -> bool:
    try:
        return (json.loads(STAMP.read_text()) == stamp
                and (TARGET_DIR / module_name()).is_file())
    except (OSError, ValueError):
        return False


def run(cmd: list[str], log: Path) -> None:
    with log.open("a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{cmd[0]} failed (log: {log}): {tail[0]}")


def build(arch: str, quiet: bool) -> Path:
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found (scripts/system_deps.sh installs it)")
    try:
        import nanobind  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("the nanobind package is missing (pip install 'tscu[native]')"
                           ) from exc
    BUILD.mkdir(parents=True, exist_ok=True)
    log = BUILD / "build.log"
    log.write_text("")
    if not quiet:
        print(f"building tscu's native kernels ({arch}) ...", flush=True)
    run(["cmake", "-S", str(SOURCE), "-B", str(BUILD), f"-DPython_EXECUTABLE={sys.executable}",
         f"-DTSCU_NATIVE_ARCH={arch}", "-DCMAKE_BUILD_TYPE=Release"], log)
    run(["cmake", "--build", str(BUILD), "-j", str(os.cpu_count() or 1)], log)
    built = BUILD / module_name()
    if not built.is_file():
        raise RuntimeError(f"the build made no {built.name} (log: {log})")
    return built


def install(built: Path, stamp: dict[str, str]) -> Path:
    """Copy the module into the package and write its stamp, each atomically."""
    target = TARGET_DIR / module_name()
    for data, path in ((built.read_bytes(), target),
                       ((json.dumps(stamp, indent=1) + "\n").encode(), STAMP)):
        fd, tmp = tempfile.mkstemp(dir=TARGET_DIR, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o755 if path == target else 0o644)
        os.replace(tmp, path)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if sys.platform == "darwin":
        if not args.quiet:
            print("native kernels skipped: they are for MLX's CPU backend on Linux "
                  "(on a Mac MLX trains on the GPU)")
        return 0
    sys.path.insert(0, str(ROOT))
    import tscu_tui.engine  # noqa: F401  (loads OpenBLAS before MLX, as tscu does)

    arch = os.environ.get("TSCU_NATIVE_ARCH", "-march=native")
    stamp = fingerprint(arch)
    if not args.force and up_to_date(stamp):
        if not args.quiet:
            print(f"native kernels up to date ({TARGET_DIR / module_name()})")
        return 0
    try:
        target = install(build(arch, args.quiet), stamp)
    except RuntimeError as exc:
        print(f"native kernels not built: {exc}; tscu runs without them (slower)",
              file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"native kernels built: {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
