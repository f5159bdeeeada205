"""The real preset's trainer, set up to be stepped by hand (bench/step_blas.py,
bench/sampling.py): the project's own `real.toml` (SmolLM2-135M, pydoc, 4 x 256,
LoRA r=8), its data prepared in `folder` unless already there, T-SCU and telemetry
off. Importing this module imports nothing heavy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def real_trainer(data: Path, out: Path) -> Any:
    """A Trainer for the real preset with its session set up (model, optimizer, blocks)."""
    import queue

    from tscu_tui.commands.demo import demo_config, ensure_demo_data
    from tscu_tui.engine.data import PreparedDataset
    from tscu_tui.engine.train.trainer import Trainer

    config = demo_config(None, [
        f"data.path={json.dumps(str(data))}", f"output.dir={json.dumps(str(out))}",
        "tscu.enabled=false", 'telemetry.source="none"'], "real")
    ensure_demo_data(config)
    trainer = Trainer(config, None, queue.Queue())
    trainer.data = PreparedDataset.open(trainer.dataset_path)
    trainer._prepare_run_dir()
    trainer._setup()
    return trainer
