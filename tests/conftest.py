"""Shared test setup.

Importing `tscu_tui.engine` (as this file does first) loads OpenBLAS before any
test module imports mlx: a BLAS can only be chosen before MLX's first import.
"""

from pathlib import Path

import pytest

from tscu_tui.engine.config.assets import DEMO_CORPUS
from tscu_tui.engine.data import PrepareOptions, prepare_dataset
from tscu_tui.engine.models.load import EMBEDDED_MODEL


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpus prepared once per session: 64-token blocks, ~120k tokens."""
    out = tmp_path_factory.mktemp("data") / "demo"
    prepare_dataset(PrepareOptions(dataset=str(DEMO_CORPUS), model=EMBEDDED_MODEL, output_dir=out,
                                   block_size=64, validation_fraction=0.05, max_tokens=120_000))
    return out


@pytest.fixture(scope="session")
def tiny_run(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 12-step run of the embedded model, shared by the export/push tests."""
    from runs import tiny_config, train

    out = tmp_path_factory.mktemp("tiny-run") / "run"
    events, _ = train(tiny_config(demo_data, out))
    assert type(events[-1]).__name__ == "RunFinished"
    return out
