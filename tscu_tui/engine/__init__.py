"""The tscu engine: config, data, models, training and control.

Nothing in this package imports textual or rich (tests/test_engine_isolation.py
proves it), so it runs headless and inside any UI. Heavy libraries (mlx,
datasets, transformers) are imported by the submodules that need them, never
here, so `tscu --help` stays fast. The one exception is cheap: OpenBLAS is
loaded (a dlopen, no mlx) before any submodule can import mlx; see blas.py.
"""

from tscu_tui.engine.models import blas as _blas  # noqa: F401  (must precede any mlx import)
