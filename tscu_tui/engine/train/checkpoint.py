"""Checkpoints that resume a run exactly.

`RUN/checkpoints/step_0000300/` holds the adapters, the optimizer state and
`state.json` (step, data position, SCU controller, best eval,
metrics so far). Each is written into a temp folder that is fsynced and renamed
into place only when complete, so a SIGKILL (or a power loss) at any moment
leaves the previous checkpoint intact and never a half-written one. A write
that fails (a full disk) is one line that says so and which checkpoint is
still there.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map_with_path

from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.fileio import atomic_directory
from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.train.lora import adapter_weights, load_adapter_weights

CHECKPOINTS = "checkpoints"
_PREFIX = "step_"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    state: dict[str, Any]


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = run_dir / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir()
             if p.is_dir() and p.name.startswith(_PREFIX) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def save_checkpoint(run_dir: Path, step: int, model: nn.Module, optimizer: optim.Optimizer,
                    state: dict[str, Any], keep: int) -> Path:
    target = run_dir / CHECKPOINTS / f"{_PREFIX}{step:07d}"
    try:
        with atomic_directory(target, replace=True) as tmp:
            mx.save_safetensors(str(tmp / "adapters.safetensors"), adapter_weights(model))
            mx.save_safetensors(str(tmp / "optimizer.safetensors"),
                                dict(tree_flatten(optimizer.state)))
            (tmp / "state.json").write_text(json.dumps({"step": step, **state}))
    except (OSError, RuntimeError) as exc:  # MLX reports a failed write as RuntimeError
        earlier = [p for p in checkpoint_dirs(run_dir) if p != target]
        kept = (f"the last checkpoint ({earlier[-1].name}) is intact" if earlier
                else "no earlier checkpoint exists")
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise TscuError(f"checkpoint of step {step} not written to {target.parent}: {why}; "
                        f"{kept}") from None
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    dirs = checkpoint_dirs(run_dir)
    if not dirs:
        return None
    path = dirs[-1]
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TscuError(f"{path / 'state.json'}: unreadable checkpoint state ({exc})") from None
    return Checkpoint(path=path, step=int(state["step"]), state=state)


def restore_checkpoint(checkpoint: Checkpoint, model: nn.Module,
                       optimizer: optim.Optimizer) -> None:
    """Load the adapters and optimizer state saved in `checkpoint`.

    No random state is saved: the trainer reseeds from (seed, step) every step.
    """
    load_adapter_weights(model, checkpoint.path / "adapters.safetensors")
    saved = mx.load(str(checkpoint.path / "optimizer.safetensors"))
    current = dict(tree_flatten(optimizer.state))
    if set(saved) != set(current):
        raise TscuError(f"{checkpoint.path}: optimizer state does not match this model's "
                        "adapters (different LoRA settings?)")
    # Fill the optimizer's own tree so its structure (lists of layers) is kept.
    optimizer.state = tree_map_with_path(lambda path, _: saved[path], optimizer.state)
    mx.eval(model.parameters(), optimizer.state)
