"""MLX as engine modules use it: `from tscu_tui.engine.runtime import mx`.

Importing any `tscu_tui.engine` module has already loaded OpenBLAS (see
blas.py), so the MLX imported here runs its CPU matmuls on it. `BLAS` says
which BLAS MLX is using, for display and run summaries.
"""

from __future__ import annotations

import mlx.core as mx

from tscu_tui.engine.blas import BLAS, BlasStatus

__all__ = ["BLAS", "BlasStatus", "mx"]
