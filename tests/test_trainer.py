"""The training engine on the embedded tiny model: real MLX, real data, no mocks."""

from __future__ import annotations

import json
import math
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from runs import tiny_config, train

from tscu_tui.engine.events import (
    CheckpointEvent,
    Command,
    EvalEvent,
    LogEvent,
    RunFinished,
    RunStarted,
    StateEvent,
    StepEvent,
)
from tscu_tui.engine.train.trainer import Trainer


def lora_norm(run_dir: Path) -> float:
    from tscu_tui.engine.models.runtime import mx

    weights = mx.load(str(run_dir / "adapters.safetensors"))
    return math.sqrt(sum(float((w.astype(mx.float32) ** 2).sum()) for w in weights.values()))


def test_run_writes_every_output_file_and_lowers_heldout_bpt(demo_data, tmp_path):
    events, trainer = train(tiny_config(demo_data, tmp_path / "run"))
    assert isinstance(events[0], RunStarted) and events[0].trainable_params > 0
    assert isinstance(events[-1], RunFinished) and events[-1].reason == "completed"
    evals = [e for e in events if isinstance(e, EvalEvent)]
    assert [e.step for e in evals] == [0, 6, 12]
    assert evals[-1].heldout_bpt < evals[0].heldout_bpt - 0.05
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [e.step for e in steps] == list(range(1, 13))
    assert all(0 < e.s < 1 and e.param_bpt > 0 and e.data_bpt > 0 for e in steps)
    run = tmp_path / "run"
    for name in ["adapter_config.json", "adapters.safetensors", "mlx_tscu_training_metrics.json",
                 "mlx_tscu_analysis.json", "mlx_config.json", "mlx_training_summary.json",
                 "training_args.json", "logs/mlx_training.log", "events.jsonl",
                 "best/adapters.safetensors"]:
        assert (run / name).is_file(), name
    analysis = json.loads((run / "mlx_tscu_analysis.json").read_text())
    assert analysis["heldout_bpt_final"] == pytest.approx(evals[-1].heldout_bpt)
    assert {"avg_power_watts", "avg_temperature_celsius", "avg_landauer_efficiency",
            "telemetry_source"} <= set(analysis)
    records = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert records[0]["event"] == "RunStarted" and records[-1]["event"] == "RunFinished"
    metrics = json.loads((run / "mlx_tscu_training_metrics.json").read_text())
    assert len(metrics["steps"]) == 12 and len(metrics["evals"]) == 3


def test_lambda_reaches_the_gradients(demo_data, tmp_path):
    # Same seed, same data: only lambda differs. A penalty computed outside the
    # graph (upstream's .item() bug) would leave both runs identical.
    train(tiny_config(demo_data, tmp_path / "free", "scu.mode=off"))
    train(tiny_config(demo_data, tmp_path / "pulled", "scu.mode=fixed", "scu.lambda_init=50.0",
                      "scu.prior_sigma=0.001"))
    free, pulled = lora_norm(tmp_path / "free"), lora_norm(tmp_path / "pulled")
    assert pulled < 0.8 * free


def test_scu_holds_s_within_its_band_after_warmup(demo_data, tmp_path):
    events, _ = train(tiny_config(demo_data, tmp_path / "run", "train.max_steps=120",
                                  "train.eval_steps=1000", "train.save_steps=1000",
                                  "scu.target_s=0.05"))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[0].s > 0.15  # S starts far above the target: the controller has work to do
    settled = steps[60:]
    # The controlled variable (S smoothed as the controller sees it) stays in a band of
    # 25% of the target; raw per-step S is noisy with the batch's DataBPT, its mean holds.
    assert max(abs(e.s_smoothed - 0.05) for e in settled) < 0.0125
    assert abs(sum(e.s for e in settled) / len(settled) - 0.05) < 0.005
    assert len({e.lambda_reg for e in steps}) > 10  # the controller really moved lambda


def test_non_finite_loss_skips_the_update_and_never_saves_nan(demo_data, tmp_path):
    events, _ = train(tiny_config(demo_data, tmp_path / "run", "scu.mode=fixed",
                                  "scu.lambda_init=1e39", "train.max_steps=3"))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert all(e.skipped for e in steps)
    assert any(isinstance(e, LogEvent) and e.level == "warning" and "non-finite" in e.message
               for e in events)
    from tscu_tui.engine.models.runtime import mx

    weights = mx.load(str(tmp_path / "run" / "adapters.safetensors"))
    assert all(np.isfinite(np.array(w)).all() for w in weights.values())


def test_commands_pause_resume_save_and_stop(demo_data, tmp_path):
    q: queue.Queue[Command] = queue.Queue()
    events: list = []

    def ui(event):  # plays the user: keys pressed as the run goes
        events.append(event)
        if isinstance(event, StepEvent) and event.step == 2:
            q.put(Command.PAUSE)
        if isinstance(event, StateEvent) and event.state == "paused":
            q.put(Command.RESUME)
        if isinstance(event, StepEvent) and event.step == 3:
            q.put(Command.SAVE)
        if isinstance(event, StepEvent) and event.step == 5:
            q.put(Command.STOP)

    Trainer(tiny_config(demo_data, tmp_path / "run"), ui, q).run()
    states = [(e.state, e.step) for e in events if isinstance(e, StateEvent)]
    assert states == [("paused", 2), ("running", 2)]
    checkpoints = [(c.reason, c.step) for c in events if isinstance(c, CheckpointEvent)]
    assert checkpoints == [("requested", 3), ("stop", 5)]
    assert isinstance(events[-1], RunFinished) and events[-1].reason == "stopped"
    assert events[-1].step == 5 and (tmp_path / "run" / "adapters.safetensors").exists()


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tscu_tui", "train", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _train_args(data: Path, out: Path) -> list[str]:
    from tscu_tui.engine.config import save_config

    file = out.parent / f"{out.name}.toml"
    save_config(file, tiny_config(data, out, "train.save_steps=4"))
    return ["--config", str(file)]


def test_sigkill_after_a_checkpoint_then_resume_matches_an_uninterrupted_run(demo_data, tmp_path):
    from tscu_tui.engine.models.runtime import mx

    straight = _cli(*_train_args(demo_data, tmp_path / "straight"))
    assert straight.wait(timeout=600) == 0, straight.stderr.read()

    victim = _cli(*_train_args(demo_data, tmp_path / "killed"))
    events = tmp_path / "killed" / "events.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # wait for the step-4 checkpoint, then one more step
        lines = events.read_text().splitlines() if events.exists() else []
        records = [json.loads(line) for line in lines if line.strip()]
        if any(r["event"] == "StepEvent" and r["step"] >= 5 for r in records):
            break
        assert victim.poll() is None, victim.stderr.read()
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert not (tmp_path / "killed" / "adapters.safetensors").exists()  # it never finished

    resumed = _cli(*_train_args(demo_data, tmp_path / "killed"), "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    records = [json.loads(line) for line in events.read_text().splitlines()]
    starts = [r for r in records if r["event"] == "RunStarted"]
    assert [s["start_step"] for s in starts] == [0, 4]  # lost only the steps since step 4
    assert records[-1]["event"] == "RunFinished" and records[-1]["step"] == 12
    a = mx.load(str(tmp_path / "straight" / "adapters.safetensors"))
    b = mx.load(str(tmp_path / "killed" / "adapters.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(np.array(a[key]), np.array(b[key]), rtol=1e-4, atol=1e-6)


def test_mlx_lm_generate_runs_on_the_produced_adapters(demo_data, tmp_path):
    from tscu_tui.engine.models.load import EMBEDDED_MODEL_DIR

    train(tiny_config(demo_data, tmp_path / "run", "train.max_steps=2"))
    result = subprocess.run(
        [sys.executable, "-m", "mlx_lm", "generate", "--model", str(EMBEDDED_MODEL_DIR),
         "--adapter-path", str(tmp_path / "run"), "--prompt", "U+00E9 is", "--max-tokens", "8"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Generation:" in result.stdout or "tokens-per-sec" in result.stdout


def test_early_stopping_after_patience_evaluations_without_a_new_best(demo_data, tmp_path):
    # A learning rate too small to move the held-out BPT: no evaluation beats step 0's.
    events, _ = train(tiny_config(demo_data, tmp_path / "run", "train.learning_rate=1e-12",
                                  "train.eval_steps=2", "train.early_stopping_patience=2",
                                  "scu.mode=off"))
    assert events[-1].reason == "early_stopping" and events[-1].step == 4
    assert any(isinstance(e, LogEvent) and "stopping early" in e.message for e in events)


def test_ctrl_c_stops_the_cli_cleanly_with_a_checkpoint(demo_data, tmp_path):
    args = _train_args(demo_data, tmp_path / "run")
    run = _cli(*args[:-1], args[-1], "--set", "train.max_steps=500")
    events = tmp_path / "run" / "events.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = events.read_text() if events.exists() else ""
        if '"StepEvent"' in text:
            break
        assert run.poll() is None, run.stderr.read()
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=120) == 0, run.stderr.read()
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert records[-1]["event"] == "RunFinished" and records[-1]["reason"] == "stopped"
    assert records[-2]["event"] == "CheckpointEvent" and records[-2]["reason"] == "stop"
    assert records[-1]["step"] < 500 and (tmp_path / "run" / "adapters.safetensors").exists()


def test_mlx_lm_fuse_accepts_the_adapters(demo_data, tmp_path):
    from tscu_tui.engine.models.load import EMBEDDED_MODEL_DIR

    train(tiny_config(demo_data, tmp_path / "run", "train.max_steps=2"))
    result = subprocess.run(
        [sys.executable, "-m", "mlx_lm", "fuse", "--model", str(EMBEDDED_MODEL_DIR),
         "--adapter-path", str(tmp_path / "run"), "--save-path", str(tmp_path / "fused")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fused" / "model.safetensors").is_file()
