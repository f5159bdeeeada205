"""Data parallelism in the training loop: what each rank trains on, what the ranks agree on.

`train.batch_size` is the global batch: the sampler draws the same indices on
every rank and each rank trains on its share, so N ranks x b blocks follow the
trajectory of 1 rank x N*b blocks. After the micro-batches the gradients are
averaged; then one small gather per step makes loss, DataBPT, ParamBPT and S
the mean over ranks, so every rank's SCU sees the same S and sets the same
lambda (checked: a rank whose lambda differs stops the run), and merges the
requests to stop or save (only rank 0 has a UI or a terminal). A second
gather carries each node's telemetry: the governor acts on the total watts and
the hottest node, on every rank alike, so the control factor and the idle it
asks for are the same everywhere, and an emergency on any node stops all.

With one process every method is the identity, and the loop runs as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from tscu_tui.engine.data import PreparedDataset
from tscu_tui.engine.distributed.collectives import Collectives
from tscu_tui.engine.distributed.liveness import Liveness, Loss
from tscu_tui.engine.distributed.world import SINGLE, World, init_world
from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.telemetry.health import SENSOR_STATES, SensorState, worst
from tscu_tui.engine.train.batches import SplitBlocks
from tscu_tui.engine.train.evaluate import (
    HeldOut,
    evaluated_rows,
    heldout_bits_per_token,
    heldout_nats,
)
from tscu_tui.engine.train.objective import LN2
from tscu_tui.engine.train.thermal_meter import NodeReading


@dataclass(frozen=True)
class StepAgreement:
    """One optimizer step's statistics, averaged over ranks, and the merged requests."""

    loss: float
    ce: float
    sq: float
    stop: bool = False
    save: bool = False


@dataclass(frozen=True)
class NodesAgreement:
    cluster: NodeReading  # total watts, hottest node, longest dt: the governor's input
    nodes: list[NodeReading] | None  # per rank; None for a single process
    compute_s: float  # the slowest rank's: the step took that long for all


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def combine_nodes(rows: np.ndarray) -> NodesAgreement:
    """Every rank's (power W, temperature C, energy J, dt s, compute s, telemetry state),
    NaN = not measured, as the governor's one input: total watts (only when every node
    measured: a partial sum would let the governor overspend), the hottest node, the
    longest interval, the worst telemetry (one node lost is the run's loss)."""
    nodes = [NodeReading(power_w=_value(r[0]), temp_c=_value(r[1]), energy_j=_value(r[2]),
                         dt_s=float(r[3]), sensor=_state(r)) for r in rows]
    powers = [n.power_w for n in nodes]
    temps = [n.temp_c for n in nodes if n.temp_c is not None]
    energies = [n.energy_j for n in nodes]
    cluster = NodeReading(
        power_w=sum(powers) if all(p is not None for p in powers) else None,  # type: ignore[arg-type]
        temp_c=max(temps) if temps else None,
        energy_j=sum(energies) if all(e is not None for e in energies) else None,  # type: ignore[arg-type]
        dt_s=float(rows[:, 3].max()), sensor=worst([n.sensor for n in nodes]))
    return NodesAgreement(cluster, nodes, float(rows[:, 4].max()))


def _state(row: np.ndarray) -> SensorState:
    """The telemetry state a rank sent (rows without one, from a 5-column gather, are ok)."""
    return SENSOR_STATES[int(row[5])] if len(row) > 5 and not math.isnan(row[5]) else "ok"


def loss_reason(loss: Loss, step: int, last_checkpoint: int | None) -> str:
    """The run's one line about a lost rank (as the lost rank said it, if it did)."""
    if loss.reported:
        return loss.reason
    saved = (f"the last checkpoint (step {last_checkpoint}) is intact"
             if last_checkpoint is not None else "no checkpoint was written yet")
    return f"rank {loss.rank} was lost at step {step}: {loss.reason}; every rank stopped, {saved}"


class DataParallel:
    def __init__(self, world: World = SINGLE, liveness: Liveness | None = None) -> None:
        self.world = world
        self.liveness = liveness
        self.collectives = Collectives(world, liveness)

    @classmethod
    def join(cls, on_loss: Callable[[Loss], None]) -> DataParallel:
        """Under mlx.launch: this rank's place and the watchdog running (`on_loss` is called
        on its thread); otherwise one process."""
        world = init_world()
        if not world.distributed:
            return cls()
        liveness = None
        if world.watchdog:
            liveness = Liveness(world.rank, world.size, world.watchdog, on_loss,
                                secret=world.secret, timeout_s=world.heartbeat_timeout_s)
            liveness.start()
        return cls(world, liveness)

    @property
    def distributed(self) -> bool:
        return self.world.distributed

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world.size:
            raise TscuError(f"train.batch_size = {batch_size} cannot be split over "
                            f"{self.world.size} ranks: make it a multiple of {self.world.size}")

    def shard(self, indices: np.ndarray) -> np.ndarray:
        """This rank's share of a global batch."""
        share = len(indices) // self.world.size
        return indices[self.world.rank * share:(self.world.rank + 1) * share]

    def denominator(self, global_targets: int) -> float:
        """What a rank divides its summed loss by: the global batch's trained targets
        over the ranks, so that the averaged gradients are the global mean's (each rank
        counts them itself: every rank draws the same global indices)."""
        return global_targets / self.world.size

    def average_gradients(self, grads: Any) -> Any:
        return self.collectives.average_gradients(grads)

    def agree_step(self, loss: float, ce: float, sq: float, lambda_reg: float,
                   stop: bool = False, save: bool = False) -> StepAgreement:
        if not self.distributed:
            return StepAgreement(loss, ce, sq, stop, save)
        rows = self.collectives.gather([loss, ce, sq, lambda_reg, float(stop), float(save)])
        lambdas = rows[:, 3]
        if not np.all(lambdas == lambdas[0]):
            values = ", ".join(f"rank {r}: {v:.6g}" for r, v in enumerate(lambdas))
            raise TscuError(f"the ranks' SCU controllers disagree on lambda ({values}); "
                            "every rank must see the same S")
        mean = rows[:, :3].mean(axis=0)
        return StepAgreement(loss=float(mean[0]), ce=float(mean[1]), sq=float(mean[2]),
                             stop=bool(rows[:, 4].any()), save=bool(rows[:, 5].any()))

    def agree_nodes(self, reading: NodeReading, compute_s: float) -> NodesAgreement:
        if not self.distributed:
            return NodesAgreement(reading, None, compute_s)
        return combine_nodes(self.collectives.gather(
            [reading.power_w, reading.temp_c, reading.energy_j, reading.dt_s, compute_s,
             SENSOR_STATES.index(reading.sensor)]))

    def agree_any(self, flag: bool) -> bool:
        """Whether any rank raised `flag` (one rank that must stop stops them all)."""
        if not self.distributed:
            return flag
        return bool(self.collectives.gather([float(flag)])[:, 0].any())

    def heldout(self, model: nn.Module, data: PreparedDataset, split: str, batch_size: int,
                max_batches: int) -> HeldOut:
        """Held-out BPT of `split` over the same batches as one process would use, each
        rank taking every size-th batch; the sums of nats and tokens are added up over
        ranks."""
        if not self.distributed:
            return heldout_bits_per_token(model, data, split, batch_size, max_batches)
        blocks = SplitBlocks(data, split)
        n = evaluated_rows(len(blocks), batch_size, max_batches)
        starts = list(range(0, n, batch_size))[self.world.rank::self.world.size]
        nats, tokens = heldout_nats(model, blocks, starts, batch_size, n)
        total = self.collectives.gather([nats, tokens]).sum(axis=0)
        return HeldOut(bpt=float(total[0] / max(total[1], 1) / LN2), tokens=int(total[1]))

    def sync_weights(self, model: nn.Module) -> None:
        """Rank 0's adapters on every rank (same seed or not, they start equal)."""
        if self.distributed:
            model.update(self.collectives.broadcast_tree(model.trainable_parameters()))

    def sync_optimizer(self, optimizer: optim.Optimizer) -> None:
        if self.distributed:
            optimizer.state = self.collectives.broadcast_tree(optimizer.state)

    def broadcast_json(self, obj: Any) -> Any:
        return self.collectives.broadcast_json(obj)
