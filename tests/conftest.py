"""Shared test setup.

`tscu_tui.engine` is imported first so that OpenBLAS is loaded before any test
module imports mlx (a BLAS can only be chosen before MLX's first import).
"""

import tscu_tui.engine  # noqa: F401
