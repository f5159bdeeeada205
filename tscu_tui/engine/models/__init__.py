"""Models: resolving and loading them, and running them fast and within memory.

`load` resolves a model name (the embedded model, a local folder, a Hub id)
and loads it with mlx-lm; `cpu_fastpath` swaps 4-bit layers for dequantize +
BLAS on MLX's CPU backend; `memory` estimates a run's peak memory; `blas` and
`runtime` load OpenBLAS before MLX and hand out `mx`. It may import `config`
and the shared vocabulary only. This `__init__` stays empty: `blas` must be
importable before anything here imports mlx.
"""
