"""`tscu train`: a headless training run with a progress display."""

from __future__ import annotations

import argparse
import queue
import signal
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


def resolve_config(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides)
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


def run_training(config: Config, *, resume: bool = False, logging_steps: int | None = None
                 ) -> Any:
    """Run a Trainer in a worker thread; draw its events here; Ctrl+C stops with a checkpoint."""
    from tscu_tui.console_display import ConsoleDisplay
    from tscu_tui.engine.events import Command, RunFailed
    from tscu_tui.engine.models.runtime import run_mlx_thread
    from tscu_tui.engine.train.trainer import Trainer

    events: queue.Queue[Any] = queue.Queue()
    commands: queue.Queue[Command] = queue.Queue()
    trainer = Trainer(config, events.put, commands, resume=resume)
    result: list[Any] = []

    def on_interrupt(signum: int, frame: object) -> None:
        commands.put(Command.STOP)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    display = ConsoleDisplay()
    display.logging_steps = logging_steps or config.train.logging_steps
    try:
        worker = run_mlx_thread(lambda: result.append(trainer.run()), name="tscu-trainer")
        with display:
            while worker.is_alive() or not events.empty():
                try:
                    display(events.get(timeout=0.1))
                except queue.Empty:
                    continue
        worker.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    outcome = result[0]
    if isinstance(outcome, RunFailed):
        raise TscuError(outcome.reason)
    return outcome, display


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
    outcome, _ = run_training(config, resume=args.resume)
    push_if_asked(config, outcome.run_dir)
    return 0
