"""How long a run trains and whether its SCU is on, resolved against its data.

`train.epochs` becomes optimizer steps, and `scu.mode = "auto"` becomes `pi` or
`off`, once the prepared dataset's training blocks are known: before the run
starts (the trainer), and wherever the plan is shown (check-config, the train
screen, an ablation's plan). One epoch is one pass of the batch sampler over the
training blocks: `blocks // batch_size` micro-batches (the ragged tail of each
permutation is dropped), `gradient_accumulation_steps` of them per optimizer step.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

from tscu_tui.engine.config import Config
from tscu_tui.engine.data import PreparedDataset
from tscu_tui.engine.data.store import DatasetMeta
from tscu_tui.engine.errors import TscuError


@dataclass(frozen=True)
class RunPlan:
    steps: int  # optimizer steps the run trains
    steps_per_epoch: float  # optimizer steps one pass over the training blocks takes
    from_epochs: bool  # train.epochs set the steps (else train.max_steps)
    scu_mode: str  # pi, fixed or off
    scu_mode_setting: str  # as configured: pi, fixed, off or auto
    epochs_setting: float = 0.0  # train.epochs as configured (0: by max_steps)

    @property
    def epochs(self) -> float:
        """The passes over the training blocks that `steps` make."""
        return self.steps / self.steps_per_epoch

    def describe(self) -> str:
        """One line: steps, epochs, and what "auto" became."""
        if self.from_epochs:
            text = f"{self.steps} optimizer steps (train.epochs = {self.epochs_setting:g})"
        else:
            text = f"{self.steps} optimizer steps = {self.epochs:.3g} epochs"
        text += f", {self.steps_per_epoch:.3g} steps an epoch"
        if self.scu_mode_setting == "auto":
            text += (f"; scu.mode = auto -> {self.scu_mode} (the run "
                     f"{'exceeds' if self.scu_mode == 'pi' else 'does not exceed'} one epoch)")
        return text

    def apply(self, config: Config) -> Config:
        """A copy of `config` with train.max_steps and scu.mode resolved (train.epochs is
        kept, for the record)."""
        resolved = copy.deepcopy(config)
        resolved.train.max_steps = self.steps
        resolved.scu.mode = self.scu_mode
        return resolved

    def summary(self) -> dict[str, object]:
        """What the run's summary records about its length and SCU mode."""
        return {"epochs": self.epochs, "epochs_setting": self.epochs_setting or None,
                "steps_per_epoch": self.steps_per_epoch, "scu_mode": self.scu_mode,
                "scu_mode_setting": self.scu_mode_setting}


def plan_run(config: Config, meta: DatasetMeta, where: str | Path = "") -> RunPlan:
    """The run's plan on a dataset with `meta`; TscuError (one line) when it cannot run."""
    train, scu = config.train, config.scu
    blocks = meta.split("train").blocks
    where = str(where) or "the prepared dataset"
    if blocks < train.batch_size:
        raise TscuError(f"{where}: {blocks} training blocks cannot fill a batch of "
                        f"{train.batch_size} (train.batch_size)")
    micro_per_epoch = blocks // train.batch_size
    accum = train.gradient_accumulation_steps
    steps_per_epoch = micro_per_epoch / accum
    if train.epochs > 0 and train.max_steps > 0:
        raise TscuError(f"train.epochs = {train.epochs:g} and train.max_steps = "
                        f"{train.max_steps} are both set: give one of them")
    if train.epochs > 0:
        steps = max(1, math.ceil(train.epochs * steps_per_epoch - 1e-9))
    elif train.max_steps > 0:
        steps = train.max_steps
    else:
        raise TscuError("train.max_steps = 0 and train.epochs = 0: set one of them")
    mode = scu.mode
    if mode == "auto":  # one epoch's steps, rounded up, still count as one epoch
        mode = "pi" if steps > math.ceil(steps_per_epoch - 1e-9) else "off"
    if mode == "pi" and scu.target_s == "auto" and meta.split("validation").blocks == 0:
        raise TscuError(f"{where}: scu.target_s = \"auto\" needs a validation split, and "
                        "this dataset has none (prepare it with data.validation_fraction > 0)")
    return RunPlan(steps=steps, steps_per_epoch=steps_per_epoch,
                   from_epochs=train.epochs > 0, scu_mode=mode, scu_mode_setting=scu.mode,
                   epochs_setting=train.epochs)


def plan_of(config: Config) -> RunPlan | str:
    """The plan on config's data.path, or why there is none yet (one line)."""
    try:
        data = PreparedDataset.open(config.data.path)
        return plan_run(config, data.meta, config.data.path)
    except TscuError as exc:
        return str(exc)


def plan_line(config: Config) -> str:
    """The run's length in words, resolved where the data allows (the train screen)."""
    plan = plan_of(config)
    if not isinstance(plan, str):
        return plan.describe()
    train = config.train
    if train.epochs > 0:
        wanted, missing = f"train.epochs = {train.epochs:g}", "steps"
    else:
        wanted, missing = f"{train.max_steps} optimizer steps", "epochs"
    if not (Path(config.data.path).expanduser() / "meta.json").is_file():
        return f"{wanted} ({missing} known once {config.data.path} is prepared)"
    return f"{wanted} ({plan.rstrip('.')})"
