"""Checkpoints under faults: durable on disk, a full disk said in one line, and an
`output.overwrite` that replaces a run, never the folder it sits in."""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path

import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from runs import tiny_config, train

from tscu_tui.engine.events import RunFailed, RunFinished, RunStarted
from tscu_tui.engine.train import checkpoint
from tscu_tui.engine.train.checkpoint import latest_checkpoint, save_checkpoint


def test_a_checkpoint_is_fsynced_before_and_after_its_rename(tmp_path, monkeypatch):
    """What os.fsync was called on, by path: every file of the checkpoint and its folder
    before the rename, the checkpoints folder after it (so the emergency checkpoint
    written just before a thermal power-off is there, whole, after the reboot)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    model = nn.Linear(4, 4)
    optimizer = optim.AdamW(learning_rate=1e-3)
    optimizer.init(model.trainable_parameters())
    target = save_checkpoint(tmp_path, 3, model, optimizer, {"tokens": 0}, keep=2)
    staged = [p for p in synced if ".step_0000003." in p]
    names = {Path(p).name for p in staged}
    assert {"adapters.safetensors", "optimizer.safetensors", "state.json"} <= names
    assert any(Path(p).name.endswith(".partial") for p in staged)  # the folder itself
    assert synced[-1] == str(target.parent)  # the rename, made durable
    assert synced.index(staged[-1]) < len(synced) - 1


@contextmanager
def _disk_full_at(step: int, real=checkpoint.atomic_directory):
    """The file boundary's stand-in for a full disk: writing checkpoint `step` fails
    with ENOSPC halfway through its first file."""
    @contextmanager
    def full(path, *, replace=False):
        with real(path, replace=replace) as staging:
            yield staging
            if Path(path).name == f"step_{step:07d}":
                first = staging / "adapters.safetensors"
                first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(first))

    yield full


def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_last_one_resumes_injected_enospc(
        demo_data, tmp_path, monkeypatch):
    config = tiny_config(demo_data, tmp_path / "run", "train.save_steps=3",
                         "train.eval_steps=100")
    with _disk_full_at(6) as full:
        monkeypatch.setattr(checkpoint, "atomic_directory", full)
        events, _ = train(config)
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.step == 6
    assert failed.reason == (f"checkpoint of step 6 not written to {tmp_path / 'run'}/"
                             "checkpoints: No space left on device; the last checkpoint "
                             "(step_0000003) is intact")
    assert latest_checkpoint(tmp_path / "run").step == 3
    assert not [p for p in (tmp_path / "run" / "checkpoints").iterdir()
                if p.name.startswith(".")]  # no half-written folder left behind
    monkeypatch.undo()
    resumed, _ = train(config, resume=True)
    assert isinstance(resumed[0], RunStarted) and resumed[0].start_step == 3
    assert isinstance(resumed[-1], RunFinished) and resumed[-1].step == 12


def test_overwrite_replaces_the_old_run_and_keeps_everything_else_in_the_folder(demo_data,
                                                                               tmp_path):
    """output.overwrite = true once removed output.dir whole as soon as it held an
    events.jsonl or checkpoints/: a project folder, a home directory."""
    out = tmp_path / "project"
    train(tiny_config(demo_data, out, "train.max_steps=4", "train.save_steps=1"))
    (out / "notes.txt").write_text("mine")
    (out / "data").mkdir()
    (out / "data" / "corpus.jsonl").write_text("{}\n")
    events, _ = train(tiny_config(demo_data, out, "train.max_steps=2", "train.save_steps=1",
                                  "output.overwrite=true"))
    assert isinstance(events[-1], RunFinished)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "data" / "corpus.jsonl").is_file()
    recorded = (out / "events.jsonl").read_text()
    assert recorded.count('"RunStarted"') == 1  # the old run's record is gone
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step_0000001", "step_0000002"]  # not the old run's steps 3 and 4


@pytest.fixture(autouse=True)
def _no_stray_partial(tmp_path):
    yield
    assert not list(tmp_path.rglob("*.partial"))
