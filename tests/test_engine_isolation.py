"""The engine never imports a UI library, and the CLI's fast paths stay light."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import tscu_tui.engine

ENGINE_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(tscu_tui.engine.__path__, "tscu_tui.engine.")
)


def _loaded_after(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True).stdout
    return set(out.split())


def test_every_engine_module_imports_without_textual_or_rich():
    assert "tscu_tui.engine.models.runtime" in ENGINE_MODULES  # the walk found the real package
    engine_dir = Path(tscu_tui.engine.__file__).parent
    sub_packages = {f"tscu_tui.engine.{p.parent.name}" for p in engine_dir.glob("*/__init__.py")}
    assert {"tscu_tui.engine.train", "tscu_tui.engine.models", "tscu_tui.engine.data",
            "tscu_tui.engine.runs"} <= sub_packages
    walked = {m for m in ENGINE_MODULES if m.count(".") >= 3}
    for package in sub_packages:  # every room and every module in it is imported below
        modules = {p.stem for p in (engine_dir / package.rsplit(".", 1)[1]).glob("*.py")}
        assert {f"{package}.{m}" for m in modules - {"__init__"}} <= walked
    imports = "\n".join(f"import {name}" for name in ENGINE_MODULES)
    loaded = _loaded_after(imports)
    assert "mlx.core" in loaded  # the engine really loaded its heavy parts
    ui = sorted(m for m in loaded if m.split(".")[0] in {"textual", "rich"})
    assert ui == []


def test_cli_parser_does_not_import_heavy_libraries():
    loaded = _loaded_after("from tscu_tui.cli import build_parser\nbuild_parser()")
    heavy = {"mlx", "mlx_lm", "datasets", "transformers", "textual", "numpy", "torch"}
    assert sorted(heavy & {m.split(".")[0] for m in loaded}) == []


def test_openblas_is_loaded_before_mlx_on_linux_x86():
    import platform

    if sys.platform != "linux" or platform.machine() != "x86_64":
        return
    # Prepare (tokenizer) imports mlx_lm first; OpenBLAS must still win.
    out = subprocess.run([sys.executable, "-c",
                          "import tscu_tui.engine.data.prepare, mlx_lm.utils\n"
                          "from tscu_tui.engine.models.runtime import BLAS\nprint(BLAS.library)"],
                         check=True, capture_output=True, text=True).stdout
    assert "openblas" in out.lower()
