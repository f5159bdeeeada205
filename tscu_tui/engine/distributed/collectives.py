"""The collectives the trainer needs, each evaluated under the watchdog.

- `average_gradients`: MLX's own (small arrays grouped into few all-reduces).
- `gather`: every rank's row of floats, as a (size, n) NumPy array: step
  statistics, telemetry and flags travel together in one small collective.
- `broadcast_tree` / `broadcast_json`: rank 0's values on every rank (an
  all-sum where the others contribute zeros): adapters and optimizer state
  at start and resume, and rank 0's checkpoint state, so only rank 0 needs a
  run folder.

A collective that fails (a peer's connection lost) waits for the watchdog's
verdict, which names the rank, instead of reporting MLX's "connection lost".
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from mlx.nn.utils import average_gradients
from mlx.utils import tree_flatten, tree_unflatten

from tscu_tui.engine.distributed.liveness import Liveness, Loss
from tscu_tui.engine.distributed.world import World
from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.models.runtime import mx


class RankLost(TscuError):
    """A rank died or hangs; the watchdog has already reported it."""

    def __init__(self, loss: Loss) -> None:
        super().__init__(f"rank {loss.rank}: {loss.reason}")
        self.loss = loss


class Collectives:
    def __init__(self, world: World, liveness: Liveness | None = None) -> None:
        self.world = world
        self.liveness = liveness

    def evaluate(self, *arrays: Any) -> None:
        """mx.eval, turning a lost peer into the watchdog's verdict."""
        if self.liveness is not None and (loss := self.liveness.loss) is not None:
            raise RankLost(loss)  # never enter a collective the others have left
        try:
            mx.eval(*arrays)
        except RuntimeError as exc:
            if self.liveness is not None:
                loss = self.liveness.wait_for_loss(self.world.heartbeat_timeout_s + 2.0)
                if loss is not None:
                    raise RankLost(loss) from None
            raise TscuError(f"rank {self.world.rank}: a collective failed: "
                            f"{str(exc).splitlines()[0]}") from None

    def average_gradients(self, grads: Any) -> Any:
        if not self.world.distributed:
            return grads
        averaged = average_gradients(grads, group=self.world.group)
        self.evaluate(averaged)
        return averaged

    def gather(self, row: Sequence[float | None]) -> np.ndarray:
        """(size, len(row)) float64 array of every rank's row; None travels as NaN."""
        values = [math.nan if v is None else float(v) for v in row]
        if not self.world.distributed:
            return np.array([values], dtype=np.float64)
        local = mx.array(np.array(values, dtype=np.float32))
        gathered = mx.distributed.all_gather(local, group=self.world.group)
        self.evaluate(gathered)
        return np.array(gathered, dtype=np.float64).reshape(self.world.size, len(values))

    def barrier(self) -> None:
        self.gather([0.0])

    def broadcast_tree(self, tree: Any) -> Any:
        """Rank 0's arrays, in the same tree structure, on every rank."""
        if not self.world.distributed:
            return tree
        flat = tree_flatten(tree)
        out: dict[str, mx.array] = {}
        by_dtype: dict[Any, list[tuple[str, mx.array]]] = {}
        for key, value in flat:
            by_dtype.setdefault(value.dtype, []).append((key, value))
        for dtype, items in by_dtype.items():
            wire = mx.float32 if dtype in (mx.bfloat16, mx.float16) else dtype
            parts = [v.astype(wire).reshape(-1) for _, v in items]
            joined = mx.concatenate(parts) if self.world.is_main else mx.zeros(
                (sum(p.size for p in parts),), dtype=wire)
            summed = mx.distributed.all_sum(joined, group=self.world.group)
            self.evaluate(summed)
            offset = 0
            for key, value in items:
                out[key] = summed[offset:offset + value.size].reshape(value.shape).astype(dtype)
                offset += value.size
        result = tree_unflatten([(key, out[key]) for key, _ in flat])
        mx.eval(result)
        return result

    def broadcast_json(self, obj: Any) -> Any:
        """Rank 0's JSON-able object on every rank (the others pass anything)."""
        if not self.world.distributed:
            return obj
        data = json.dumps(obj).encode() if self.world.is_main else b""
        length = int(self.gather([len(data)])[0, 0])
        payload = np.frombuffer(data, dtype=np.uint8).astype(np.int32) if data else np.zeros(
            length, dtype=np.int32)
        summed = mx.distributed.all_sum(mx.array(payload), group=self.world.group)
        self.evaluate(summed)
        return json.loads(bytes(np.array(summed).astype(np.uint8).tolist()).decode())
