"""Which rank this process is, of how many: `mx.distributed.init` with the checks it lacks.

`tscu train --launch` tells every rank, through the environment, how many
ranks it started (`TSCU_DIST_WORLD`), over which backend, and where rank 0's
watchdog listens. `mx.distributed.init()` quietly returns a world of one when
the environment is wrong; `init_world` turns that into a one-line error.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tscu_tui.engine.errors import TscuError

WORLD_ENV = "TSCU_DIST_WORLD"  # ranks the launcher started
BACKEND_ENV = "TSCU_DIST_BACKEND"  # backend it asked mlx.launch for
WATCHDOG_ENV = "TSCU_DIST_WATCHDOG"  # host:port of rank 0's watchdog
HEARTBEAT_ENV = "TSCU_DIST_HEARTBEAT_S"  # seconds of silence that mean a rank is lost
SECRET_ENV = "TSCU_DIST_SECRET"  # the run's secret: who may talk to rank 0's watchdog


@dataclass(frozen=True)
class World:
    """This process's place in the run; `group` is None for a single process."""

    rank: int = 0
    size: int = 1
    backend: str = "none"
    group: Any = None  # mx.distributed.Group
    watchdog: str = ""  # host:port of rank 0's watchdog; "" = none
    heartbeat_timeout_s: float = 10.0
    secret: str = field(default="", repr=False)  # never printed, never written

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one rank that writes (outputs, checkpoints, events, the card)."""
        return self.rank == 0


SINGLE = World()


def env_rank() -> int:
    """This process's rank as the launcher set it (0 when none did)."""
    for key in ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        value = os.environ.get(key, "")
        if value.isdigit():
            return int(value)
    return 0


def launched_as_rank() -> bool:
    """Whether this process was started as one rank of a distributed run."""
    return WORLD_ENV in os.environ or "MLX_RANK" in os.environ


def _backend_from_environment() -> str:
    """The backend mlx.launch prepared this process for ('any' when unknown)."""
    env = os.environ
    named = env.get(BACKEND_ENV, "").strip()
    if named and named != "auto":
        return "jaccl" if named.startswith("jaccl") else named
    if env.get("MLX_JACCL_COORDINATOR"):
        return "jaccl"
    if env.get("NCCL_HOST_IP"):
        return "nccl"
    if "MLX_HOSTFILE" in env:
        return "ring"
    if any(key in env for key in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")):
        return "mpi"
    return "any"


def _ring_hosts() -> int | None:
    """Ranks listed in the ring backend's hostfile (mlx.launch writes one per run)."""
    path = os.environ.get("MLX_HOSTFILE", "")
    if not path:
        return None
    try:
        hosts = json.loads(Path(path).read_text() or "[]")
    except (OSError, ValueError):
        return None
    return len(hosts) if isinstance(hosts, list) else None


def expected_size() -> int | None:
    """Ranks this process was told to expect; None when it was not told."""
    value = os.environ.get(WORLD_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise TscuError(f"{WORLD_ENV}={value!r}: must be a whole number >= 1")
        return int(value)
    return _ring_hosts()


def init_world() -> World:
    """Join the distributed run this process was launched into, or stay single."""
    if not launched_as_rank():
        return SINGLE
    expected = expected_size()
    backend = _backend_from_environment()
    from tscu_tui.engine.models.runtime import mx

    try:
        group = mx.distributed.init(strict=expected is not None and expected > 1,
                                    backend=backend)
    except RuntimeError as exc:
        raise TscuError(f"{expected} ranks were asked for but mx.distributed.init(backend="
                        f"{backend!r}) found no distributed world ({str(exc).splitlines()[0]}): "
                        "start the ranks with `tscu train --launch N` or mlx.launch") from None
    size, rank = group.size(), group.rank()
    if expected is not None and size != expected:
        raise TscuError(f"{expected} ranks were asked for but mx.distributed.init("
                        f"backend={backend!r}) found a world of {size}: the launch "
                        "environment is wrong (check the hostfile, the backend and that "
                        "every rank was started by mlx.launch)")
    if size == 1:
        return SINGLE
    timeout = float(os.environ.get(HEARTBEAT_ENV, "10") or 10)
    watchdog = os.environ.get(WATCHDOG_ENV, "")
    secret = os.environ.pop(SECRET_ENV, "")  # read once; nothing this rank starts inherits it
    if watchdog and not secret:
        raise TscuError(f"{WATCHDOG_ENV} is set but {SECRET_ENV} is not: rank 0's watchdog "
                        "lets in only ranks that know the run's secret (start the ranks with "
                        "`tscu train --launch N` or --hostfile)")
    return World(rank=rank, size=size, backend=backend if backend != "any" else "unknown",
                 group=group, watchdog=watchdog, heartbeat_timeout_s=timeout, secret=secret)
