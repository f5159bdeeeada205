"""Faults at the file boundary, for tests and bench/faults.py: a disk that fills up, a
machine that dies in the middle of a write.

Python imports this module as it starts when this folder is on PYTHONPATH; it does
nothing unless TSCU_FAULT names a fault:

    TSCU_FAULT=enospc@STEP  writing the checkpoint of step STEP fails with ENOSPC, halfway
                            through its first file (a full disk)
    TSCU_FAULT=kill@STEP    the process SIGKILLs itself while writing the checkpoint of step
                            STEP, its files written, before they are renamed into place
    TSCU_FAULT_RANK=R       only in rank R of a distributed run (MLX_RANK); default: any

It wraps `tscu_tui.engine.fileio.atomic_directory` as that module is first imported
(an import hook: importing tscu here would load it into every Python that starts
with this path, mlx.launch included).
"""

from __future__ import annotations

import errno
import importlib.abc
import importlib.machinery
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

TARGET = "tscu_tui.engine.fileio"


def _fault() -> tuple[str, int] | None:
    spec = os.environ.get("TSCU_FAULT", "")
    rank = os.environ.get("TSCU_FAULT_RANK")
    if not spec or (rank is not None and os.environ.get("MLX_RANK", "0") != rank):
        return None
    kind, _, step = spec.partition("@")
    return kind, int(step)


def _wrap(module: object, kind: str, step: int) -> None:
    real = module.atomic_directory  # type: ignore[attr-defined]

    @contextmanager
    def faulty(path, *, replace=False):
        with real(path, replace=replace) as staging:
            yield staging
            if Path(path).name == f"step_{step:07d}":
                if kind == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                first = sorted(staging.iterdir())[0]
                first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(first))

    module.atomic_directory = faulty  # type: ignore[attr-defined]


class _Hook(importlib.abc.MetaPathFinder):
    def __init__(self, kind: str, step: int) -> None:
        self.kind, self.step = kind, step

    def find_spec(self, name, path, target=None):  # noqa: ANN001, ANN201
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader, kind, step = spec.loader, self.kind, self.step

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):  # noqa: ANN001, ANN201
                return loader.create_module(spec)

            def exec_module(self, module):  # noqa: ANN001, ANN201
                loader.exec_module(module)
                _wrap(module, kind, step)

        spec.loader = Loader()
        return spec


if (fault := _fault()) is not None:
    sys.meta_path.insert(0, _Hook(*fault))
