"""The tscu engine: config, data, models, training and control.

One sub-package per concept, each saying in its `__init__` what it may import;
the arrows run one way (train -> hub -> runs -> models -> config):

- `events`, `errors`, `fileio`: the shared vocabulary every sub-package may use;
  `formatting` and `event_lines`: numbers and events as the run log, the console and
  the train screen print them (they read `telemetry.efficiency` for the MDL wording)
- `config/`: the typed config, presets and the package's own assets
- `data/`: dataset preparation (sources, tokenizing, packing, the store)
- `models/`: resolving and loading models, the CPU fast path, BLAS/runtime
  set-up, the memory estimate
- `train/`: the loop and its parts (objective, SCU, schedule, batches,
  checkpoints, evaluation, recorder, outputs, LoRA, T-SCU in the loop)
- `telemetry/`: power/temperature sources, sampler, governor, efficiency
- `distributed/`: data-parallel ranks (mx.distributed): world set-up, collectives,
  the heartbeat watchdog, the mlx.launch launcher
- `runs/`: run folders read back (finding, following, sampling)
- `hub/`: exports, model cards, upload
- `report/`: a run's metrics sent on to TensorBoard and Weights & Biases

Nothing in this package imports textual or rich (tests/test_engine_isolation.py
proves it), so it runs headless and inside any UI. Heavy libraries (mlx,
datasets, transformers) are imported by the submodules that need them, never
here, so `tscu --help` stays fast. The exceptions are cheap: OpenBLAS is loaded
(a dlopen, no mlx) before any submodule can import mlx, and glibc is told to keep
freed memory for reuse; see models/blas.py and models/allocator.py.
"""

from tscu_tui.engine.models import allocator as _allocator  # noqa: F401  (before mlx allocates)
from tscu_tui.engine.models import blas as _blas  # noqa: F401  (must precede any mlx import)
