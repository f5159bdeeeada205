"""`tscu train`: a headless training run with a progress display.

With `--launch N` or `--hostfile FILE` (or `[distributed]`) it starts N ranks
through mlx.launch instead, each running this same command; a rank knows it is
one from its environment. Rank 0 draws the progress; the others stay quiet
unless they fail.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tscu_tui.engine.config import Config, load_config
from tscu_tui.engine.errors import TscuError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", dest="train_config", metavar="FILE",
                        help="config file (default: the global --config, tscu.toml)")
    parser.add_argument("--output-dir", help="run directory (overrides output.dir)")
    parser.add_argument("--dataset-path", help="prepared dataset (overrides data.path)")
    parser.add_argument("--push-to-hub", action="store_true",
                        help="upload the finished run to the Hugging Face Hub (sets "
                             "hub.push_to_hub; token from HF_TOKEN or `hf auth login`)")
    parser.add_argument("--hub-model-id", metavar="USER/NAME",
                        help="Hub repo to upload to (overrides hub.hub_model_id)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the output directory from its last checkpoint")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a field (repeatable)")
    parser.add_argument("--launch", type=_rank_count, metavar="N",
                        help="data-parallel: start N ranks on this machine through mlx.launch "
                             "(overrides distributed.ranks)")
    parser.add_argument("--hostfile", metavar="FILE",
                        help="data-parallel: one rank per host of this mlx.launch hostfile "
                             "(overrides distributed.hostfile)")
    add_report_to(parser)


def add_report_to(parser: argparse.ArgumentParser) -> None:
    """`--report-to`, for every command that starts runs."""
    parser.add_argument("--report-to", type=_reporters, metavar="NAMES",
                        help="also send the metrics to: tensorboard, wandb, both "
                             "(comma-separated), or none (overrides report.to)")


def _reporters(text: str) -> list[str]:
    from tscu_tui.engine.config.schema import REPORTERS

    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["none"]:
        return []
    unknown = [name for name in names if name not in REPORTERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: name {', '.join(REPORTERS)} "
                                         "(comma-separated) or none")
    return names


def report_override(names: list[str] | None) -> list[str]:
    """The `--set` that `--report-to` stands for (none when it was not given)."""
    import json

    return [] if names is None else [f"report.to={json.dumps(names)}"]


def _rank_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of ranks (1 or more)")
    return int(text)


def rank_args(args: argparse.Namespace) -> list[str]:
    """This command line again, for each rank (which must not launch again)."""
    argv = ["--config", args.config, "train"]
    if args.train_config:
        argv += ["--config", args.train_config]
    for flag, value in (("--output-dir", args.output_dir), ("--dataset-path", args.dataset_path)):
        if value:
            argv += [flag, value]
    if args.resume:
        argv.append("--resume")
    if args.report_to is not None:
        argv += ["--report-to", ",".join(args.report_to) or "none"]
    for override in args.overrides:
        argv += ["--set", override]
    return argv


def resolve_config(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides) + report_override(getattr(args, "report_to", None))
    if args.output_dir:
        overrides.append(f"output.dir={_toml_string(args.output_dir)}")
    if args.dataset_path:
        overrides.append(f"data.path={_toml_string(args.dataset_path)}")
    if getattr(args, "push_to_hub", False):
        overrides.append("hub.push_to_hub=true")
    if getattr(args, "hub_model_id", None):
        overrides.append(f"hub.hub_model_id={_toml_string(args.hub_model_id)}")
    return load_config(args.train_config or args.config, overrides)


def _toml_string(value: str) -> str:
    import json

    return json.dumps(value)


def run_training(config: Config, *, resume: bool = False, logging_steps: int | None = None,
                 rank: int | None = None) -> Any:
    """Run a Trainer in a worker thread; draw its events here; Ctrl+C stops with a checkpoint.

    As a rank of a distributed run (`rank` from the launcher) a failure may leave the
    worker stuck in a collective that never returns: once the run has reported its
    failure (the watchdog names the lost rank), the process exits without it. SIGTERM
    (mlx.launch ending the ranks after one failed) waits briefly for that report.
    """
    from tscu_tui.console_display import ConsoleDisplay
    from tscu_tui.engine.events import Command, RunFailed
    from tscu_tui.engine.models.runtime import run_mlx_thread
    from tscu_tui.engine.train.trainer import Trainer

    events: queue.Queue[Any] = queue.Queue()
    commands: queue.Queue[Command] = queue.Queue()
    trainer = Trainer(config, events.put, commands, resume=resume)
    result: list[Any] = []
    failed: list[RunFailed] = []
    terminated: list[float] = []

    def on_interrupt(signum: int, frame: object) -> None:
        commands.put(Command.STOP)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    previous_term = signal.signal(signal.SIGTERM, lambda *_: terminated.append(
        time.monotonic())) if rank is not None else None
    display = ConsoleDisplay()
    display.logging_steps = logging_steps or config.train.logging_steps
    try:
        worker = run_mlx_thread(lambda: result.append(trainer.run()), name="tscu-trainer")
        with display:
            while worker.is_alive() or not events.empty():
                try:
                    event = events.get(timeout=0.1)
                except queue.Empty:
                    _exit_if_stuck(failed, terminated, rank)
                    continue
                if isinstance(event, RunFailed):
                    failed.append(event)
                    failed_at = time.monotonic()
                    terminated.append(failed_at + 3.0)  # the worker gets 3 s to return
                if not rank:  # one process, or rank 0
                    display(event)
        worker.join()
    finally:
        signal.signal(signal.SIGINT, previous)
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    outcome = result[0]
    if isinstance(outcome, RunFailed):
        if failed and failed[0].reported_elsewhere:
            raise SystemExit(1)  # the failing rank printed the line
        raise TscuError(failed[0].reason if failed else outcome.reason)
    return outcome, display


def _exit_if_stuck(failed: list[Any], terminated: list[float], rank: int | None) -> None:
    """A run that failed (or a SIGTERM) and a worker that has not returned: exit anyway,
    with the run's one line (a rank stuck in a collective would wait forever)."""
    if not terminated or time.monotonic() < min(terminated) + (0.0 if failed else 3.0):
        return
    # Without a report, mlx.launch ended this rank because another one failed, and
    # that one said why: one line for the run, not one per rank.
    if failed and not failed[0].reported_elsewhere:
        print(f"tscu: error: {failed[0].reason}", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


def push_if_asked(config: Config, run_dir: str) -> None:
    """`hub.push_to_hub = true`: upload the finished run to `hub.hub_model_id`."""
    hub = config.hub
    if not hub.push_to_hub:
        return
    if not hub.hub_model_id:
        raise TscuError("hub.push_to_hub is true but hub.hub_model_id is empty; set it (or "
                        "--hub-model-id), or upload later with "
                        f"`tscu push {run_dir} --hub-model-id USER/NAME`")
    from tscu_tui.engine.hub.push import push_run

    url = push_run(run_dir, hub.hub_model_id, private=hub.private, revision=hub.revision,
                   progress=lambda line: print(line, flush=True))
    print(url)


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    from tscu_tui.engine.distributed.world import env_rank, launched_as_rank

    if launched_as_rank():  # one rank of a distributed run: train, never launch again
        rank = env_rank()
        outcome, _ = run_training(config, resume=args.resume, rank=rank)
        if rank == 0:
            push_if_asked(config, outcome.run_dir)
        return 0
    from tscu_tui.engine.distributed.launch import Launch, plan_launch

    plan = plan_launch(args.launch, args.hostfile, config.distributed)
    if plan is not None:
        if config.train.batch_size % plan.ranks:
            raise TscuError(f"train.batch_size = {config.train.batch_size} cannot be split "
                            f"over {plan.ranks} ranks: make it a multiple of {plan.ranks}")
        launch = Launch(plan, rank_args(args), Path(config.output.dir))
        print(f"launching {plan.ranks} ranks through mlx.launch ({', '.join(plan.hosts)}); "
              f"rank 0 writes {config.output.dir}", file=sys.stderr, flush=True)
        launch.start()
        return launch.wait()
    outcome, _ = run_training(config, resume=args.resume)
    push_if_asked(config, outcome.run_dir)
    return 0
