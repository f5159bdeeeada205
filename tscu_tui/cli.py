"""The `tscu` command line: parse arguments, then hand over to a command module.

Each subcommand lives in `tscu_tui/commands/<name>.py` with `add_parser()` and
`run(args) -> int`, imported only when chosen, so `tscu --help` and
`tscu --version` never import mlx, datasets or textual.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tscu_tui import __version__
from tscu_tui.engine.errors import ConfigError, TscuError

#: subcommand name -> (module under tscu_tui.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "import": ("import_model", "import a GGUF file (llama.cpp, Ollama, LM Studio) as an "
               "mlx-lm model"),
    "prepare": ("prepare", "tokenize and pack a dataset into training blocks"),
    "check-config": ("check_config", "validate a config file and print the resolved config"),
    "train": ("train", "train LoRA adapters headless, with a progress display"),
    "ablate": ("ablate", "train one config under several SCU arms and seeds, then compare "
               "them (ablation.json, .md, .png)"),
    "demo": ("demo", "prepare the demo data and fine-tune the embedded model (offline)"),
    "telemetry": ("telemetry", "list power/temperature sources here and stream a few readings"),
    "watch": ("watch", "open the train screen following a run started elsewhere (read-only)"),
    "export": ("export", "export a run's adapter (mlx, peft, fused, gguf-lora or gguf) with "
               "a model card"),
    "push": ("push", "upload a run to the Hugging Face Hub (token from HF_TOKEN or login)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tscu",
        description="LoRA fine-tuning on MLX under a Thermodynamic Shannon Control Unit. "
        "With no command, opens the terminal app.",
    )
    parser.add_argument("--version", action="version", version=f"tscu {__version__}")
    parser.add_argument("--config", default="tscu.toml", metavar="FILE",
                        help="config file for the app (default: tscu.toml)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        _command_module(module).add_parser(sub)
    return parser


def _command_module(module: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"tscu_tui.commands.{module}")


def _guard_machine_settings() -> None:
    """Arm the restore-on-signal guard (from the main thread, as signals need), and put
    back any clock or power setting a killed tscu process left changed."""
    from tscu_tui.engine.telemetry.actuators import guard
    from tscu_tui.engine.telemetry.actuators.recover import recover_pending

    guard.install()
    try:
        messages = recover_pending()
    except Exception as exc:  # a damaged journal must not keep tscu from starting
        messages = [f"actuator journal: {exc}"]
    for message in messages:
        print(f"tscu: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    _guard_machine_settings()  # first: even `tscu --version` restores what a kill left
    args = build_parser().parse_args(argv)
    module = getattr(args, "_module", "app")
    try:
        return int(_command_module(module).run(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"tscu: error: {problem}", file=sys.stderr)
        return 1
    except TscuError as exc:
        print(f"tscu: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tscu: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
