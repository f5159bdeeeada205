"""Build tscu's native CPU kernels (csrc/) into tscu_tui/engine/models/_native*.so.

    python scripts/build_native.py [--force] [--quiet]

Needs a C++20 compiler, CMake >= 3.19 and the `nanobind` package at the version
MLX was built with (`make setup` installs them; scripts/system_deps.sh the
compiler and CMake). The module is built for this machine's CPU (-march=native;
TSCU_NATIVE_ARCH overrides, e.g. "-march=x86-64-v3" for a build other machines
share) against the MLX installed here, and records beside it that MLX version
and the instruction-set extensions the compiler was allowed to use (from its own
predefined macros, in /proc/cpuinfo's names): tscu loads it only under the same
MLX on a CPU that has all of them, and otherwise runs its pure-MLX kernels (a
shared checkout or a hostfile run on another CPU would die of SIGILL instead).

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


#: compiler macro -> the extension's name in /proc/cpuinfo (x86 "flags", Arm "Features")
ISA_MACROS = {
    "__SSE__": "sse", "__SSE2__": "sse2", "__SSE3__": "pni", "__SSSE3__": "ssse3",
    "__SSE4_1__": "sse4_1", "__SSE4_2__": "sse4_2", "__AVX__": "avx", "__AVX2__": "avx2",
    "__FMA__": "fma", "__F16C__": "f16c", "__BMI__": "bmi1", "__BMI2__": "bmi2",
    "__LZCNT__": "abm", "__POPCNT__": "popcnt", "__MOVBE__": "movbe",
    "__AVX512F__": "avx512f", "__AVX512DQ__": "avx512dq", "__AVX512CD__": "avx512cd",
    "__AVX512BW__": "avx512bw", "__AVX512VL__": "avx512vl", "__AVX512IFMA__": "avx512ifma",
    "__AVX512VBMI__": "avx512vbmi", "__AVX512VBMI2__": "avx512_vbmi2",
    "__AVX512VNNI__": "avx512_vnni", "__AVX512BITALG__": "avx512_bitalg",
    "__AVX512VPOPCNTDQ__": "avx512_vpopcntdq", "__AVX512BF16__": "avx512_bf16",
    "__AVX512FP16__": "avx512_fp16", "__AVXVNNI__": "avx_vnni", "__AMX_TILE__": "amx_tile",
    "__AMX_INT8__": "amx_int8", "__AMX_BF16__": "amx_bf16", "__GFNI__": "gfni",
    "__VAES__": "vaes", "__VPCLMULQDQ__": "vpclmulqdq", "__ADX__": "adx", "__AES__": "aes",
    "__PCLMUL__": "pclmulqdq", "__RDRND__": "rdrand", "__RDSEED__": "rdseed",
    "__SHA__": "sha_ni", "__XSAVE__": "xsave", "__XSAVEC__": "xsavec",
    "__XSAVEOPT__": "xsaveopt", "__XSAVES__": "xsaves",
    "__ARM_FEATURE_SVE": "sve", "__ARM_FEATURE_SVE2": "sve2",
    "__ARM_FEATURE_DOTPROD": "asimddp", "__ARM_FEATURE_FP16_VECTOR_ARITHMETIC": "asimdhp",
    "__ARM_FEATURE_BF16_VECTOR_ARITHMETIC": "bf16", "__ARM_FEATURE_MATMUL_INT8": "i8mm",
    "__ARM_FEATURE_ATOMICS": "atomics", "__ARM_FEATURE_CRC32": "crc32",
    "__ARM_FEATURE_AES": "aes", "__ARM_FEATURE_SHA2": "sha2", "__ARM_FEATURE_SHA3": "sha3",
    "__ARM_FEATURE_SM4": "sm4", "__ARM_FEATURE_JCVT": "jscvt", "__ARM_FEATURE_RCPC": "lrcpc",
}


def compiler() -> str:
    return os.environ.get("CXX", "c++")


def isa_features(arch: str) -> list[str]:
    """The instruction-set extensions code compiled with `arch` may use: what the compiler
    predefines for it, not what this CPU has (a -march=x86-64-v3 build needs less)."""
    done = subprocess.run([compiler(), *arch.split(), "-dM", "-E", "-x", "c++", os.devnull],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{compiler()} {arch} cannot preprocess: {reason}")
    macros = {line.split()[1] for line in done.stdout.splitlines()
              if line.startswith("#define ") and len(line.split()) > 1}
    return sorted({flag for macro, flag in ISA_MACROS.items() if macro in macros})


def fingerprint(arch: str) -> dict[str, object]:
    import mlx.core as mx

    from tscu_tui.engine.models.cpu_info import cpu_name

    digest = hashlib.sha256()
    for path in sorted(SOURCE.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return {"mlx": mx.__version__, "python": sys.version.split()[0], "arch": arch,
            "cpu": cpu_name(), "cpu_features": isa_features(arch),
            "source_sha256": digest.hexdigest()}


def up_to_date(stamp: dict[str, object]) -> bool:
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
    for tool in ("cmake", compiler()):
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


def install(built: Path, stamp: dict[str, object]) -> Path:
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
    try:
        stamp = fingerprint(arch)
    except RuntimeError as exc:
        print(f"native kernels not built: {exc}; tscu runs without them (slower)",
              file=sys.stderr)
        return 1
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
