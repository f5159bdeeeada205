"""Reporters: real short runs of the embedded model read back by the tools themselves.

TensorBoard's own reader (EventAccumulator, from the `tensorboard` package, not the
tensorboardX that writes) must find every scalar the run emitted, the hyperparameters
and the curves picture; W&B, offline with no login and its server pointed at a closed
local port, must write its run files. A reporter that is missing or breaks costs one
warning line, never the run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
from runs import tiny_config, train

from tscu_tui.engine.events import EvalEvent, LogEvent, RunFinished, StepEvent
from tscu_tui.engine.report import wandb_run
from tscu_tui.engine.report.tensorboard_events import TensorBoardReporter


def _accumulator(logdir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(logdir.glob("events.out.tfevents.*"))
    assert len(files) == 1, files  # one writer: rank 0, once
    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def _warnings(events: list) -> list[str]:
    """The reporters' warnings (the tiny config's SCU has one of its own)."""
    return [e.message for e in events if isinstance(e, LogEvent) and e.level == "warning"
            and "report" in e.message]


def test_tensorboard_reads_back_every_scalar_of_a_real_run(demo_data, tmp_path):
    out = tmp_path / "run"
    events, _ = train(tiny_config(demo_data, out, 'report.to=["tensorboard"]',
                                  'telemetry.source="simulated"',
                                  "tscu.power_budget_watts=1000"))
    assert isinstance(events[-1], RunFinished) and _warnings(events) == []
    told = [e for e in events if isinstance(e, LogEvent) and e.message.startswith("TensorBoard")]
    assert len(told) == 1 and told[0].step is None and str(out / "tensorboard") in told[0].message
    assert events.index(told[0]) > next(i for i, e in enumerate(events)
                                        if type(e).__name__ == "RunStarted")
    board = _accumulator(out / "tensorboard")
    steps = [e for e in events if isinstance(e, StepEvent)]
    evals = [e for e in events if isinstance(e, EvalEvent)]

    def series(tag: str) -> list[tuple[int, float]]:
        return [(s.step, s.value) for s in board.Scalars(tag)]

    for tag, field in (("train/loss", "loss"), ("eval/heldout_bpt", "heldout_bpt"),
                       ("scu/S", "s"), ("scu/lambda", "lambda_reg"), ("train/lr", "lr"),
                       ("power/watts", "power_w"), ("power/temp_c", "temp_c"),
                       ("power/control_factor", "control_factor"),
                       ("speed/tokens_per_s", "tokens_per_s")):
        source = evals if tag.startswith("eval/") else steps
        expected = [(e.step, getattr(e, field)) for e in source]
        assert [s for s, _ in series(tag)] == [s for s, _ in expected], tag
        for (_, got), (_, want) in zip(series(tag), expected, strict=True):
            assert got == pytest.approx(want, rel=1e-6), tag  # float32 in the event file
    joules = series("power/joules_per_token")
    assert joules[-1][1] == pytest.approx(steps[-1].energy_j / steps[-1].tokens, rel=1e-6)
    assert [s for s, _ in series("eval/heldout_bpt")] == [0, 6, 12]

    picture = board.Images("training_curves")
    assert len(picture) == 1 and picture[0].step == 12 and picture[0].width > 400
    hparams = board.PluginTagToContent("hparams")
    session = next(content for tag, content in hparams.items() if "session_start" in tag)
    assert b"lora.r" in session and b"model.name" in session and b"run.trainable_params" \
        in session


def test_a_resumed_run_drops_what_came_after_its_checkpoint(demo_data, tmp_path):
    """purge_step: steps 7-9, logged before the run lost its last checkpoint, are not
    shown twice once a resume from step 6 trains them again."""
    import shutil

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    overrides = ('report.to=["tensorboard"]', "train.max_steps=9", "train.save_steps=3",
                 "train.eval_steps=3")
    assert isinstance(train(tiny_config(demo_data, out, *overrides))[0][-1], RunFinished)
    shutil.rmtree(out / "checkpoints" / "step_0000009")  # as if it stopped before saving
    second, _ = train(tiny_config(demo_data, out, *overrides), resume=True)
    assert [e.step for e in second if isinstance(e, StepEvent)] == [7, 8, 9]
    board = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    board.Reload()
    assert [s.step for s in board.Scalars("train/loss")] == list(range(1, 10))


def test_wandb_offline_writes_its_run_files_without_network(demo_data, tmp_path,
                                                           monkeypatch):
    for key in ("WANDB_API_KEY", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    for key in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(key, str(tmp_path / key.lower()))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    (tmp_path / "wandb-dir").mkdir()
    out = tmp_path / "run"
    events, _ = train(tiny_config(demo_data, out, 'report.to=["wandb"]'))
    assert isinstance(events[-1], RunFinished) and _warnings(events) == []
    runs = list((tmp_path / "wandb-dir" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    told = [e.message for e in events if isinstance(e, LogEvent) and "wandb sync" in e.message]
    assert told and str(runs[0]) in told[0]
    records = next(runs[0].glob("run-*.wandb")).read_bytes()
    for key in (b"train/loss", b"eval/heldout_bpt", b"scu/lambda", b"speed/tokens_per_s",
                b"lora.r", b"run.trainable_params"):
        assert key in records, key
    assert list((runs[0] / "files" / "media" / "images").glob("training_curves_*.png"))


def test_auto_mode_without_a_login_is_offline_and_asks_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setattr(wandb_run, "reachable", lambda host: pytest.fail("no login: no call"))
    assert wandb_run.choose_mode("auto") == ("offline", "no W&B login")
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password k\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setattr(wandb_run, "reachable", lambda host: False)
    assert wandb_run.choose_mode("auto") == ("offline", "api.wandb.ai did not answer")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_run.choose_mode("auto") == ("disabled", "WANDB_MODE")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(Exception, match="no W&B login"):
        wandb_run.choose_mode("online")


def test_a_missing_or_failing_reporter_warns_once_and_the_run_finishes_injected_failure(
        demo_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    calls = []
    real_call = TensorBoardReporter.__call__

    def breaks_at_step_3(self, event):
        calls.append(event)
        if isinstance(event, StepEvent) and event.step == 3:
            raise OSError("disk full")  # what a real writer could meet
        real_call(self, event)

    monkeypatch.setattr(TensorBoardReporter, "__call__", breaks_at_step_3)
    events, _ = train(tiny_config(demo_data, tmp_path / "run",
                                  'report.to=["tensorboard", "wandb"]'))
    assert isinstance(events[-1], RunFinished) and events[-1].reason == "completed"
    warnings = _warnings(events)
    assert warnings == [
        "report.to 'wandb': wandb is not installed (pip install 'tscu[wandb]'); the run goes "
        "on without it",
        "report.to 'tensorboard' failed (OSError: disk full); the run goes on without it"]
    assert max(e.step for e in calls if isinstance(e, StepEvent)) == 3  # dropped after it
    log = (tmp_path / "run" / "logs" / "mlx_training.log").read_text()
    assert log.count("report.to 'tensorboard' failed") == 1


def test_report_to_flag_sets_the_config_and_reaches_every_rank(tmp_path, capsys):
    from tscu_tui.cli import main
    from tscu_tui.commands import train as train_command
    from tscu_tui.commands.train import rank_args, resolve_config

    parser = argparse.ArgumentParser()
    train_command.add_parser(parser)
    args = parser.parse_args(["--report-to", "wandb,tensorboard"])
    args.config = None
    assert resolve_config(args).report.to == ["wandb", "tensorboard"]
    assert rank_args(args)[-2:] == ["--report-to", "wandb,tensorboard"]
    args = parser.parse_args(["--report-to", "none"])
    args.config = None
    assert resolve_config(args).report.to == []
    with pytest.raises(SystemExit):
        main(["train", "--report-to", "tensorbored"])
    assert "'tensorbored': name tensorboard, wandb (comma-separated) or none" in \
        capsys.readouterr().err
