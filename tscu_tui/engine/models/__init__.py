"""Models: resolving and loading them, and running them fast and within memory.

`load` resolves a model name (the embedded model, a local folder, a Hub id, a
.gguf file that `gguf`/`gguf_cache` import once) and loads it with mlx-lm;
`cpu_fastpath` swaps 4-bit layers for dequantize + BLAS on MLX's CPU backend and
`cpu_kernels` gives it cheaper exp-heavy ops; `document_mask` keeps packed documents
apart in attention; `generate` answers greedily; `memory` estimates a run's peak
memory, `checkpointing` and `fused_loss` trade compute for it, `peak` measures
it; `blas`, `threads`, `allocator` and `runtime` set up OpenBLAS (before MLX),
its threads and the allocator, and hand out `mx`; `native` loads the C++ kernels
when `cpu_info` says this CPU can run them. It may import `config` and the
shared vocabulary only. This `__init__` stays empty: `blas` must be importable
before anything here imports mlx.
"""
