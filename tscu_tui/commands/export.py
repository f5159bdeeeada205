"""`tscu export`: a run's adapter as mlx-lm, PEFT or fused model folder, with a model card."""

from __future__ import annotations

import argparse


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished (or stopped) run folder")
    parser.add_argument("--format", dest="fmt", choices=("mlx", "peft", "fused"), default="peft",
                        help="mlx: mlx-lm adapter pair; peft: PEFT adapter for the "
                             "full-precision base; fused: base + adapter in one model "
                             "(default: peft)")
    parser.add_argument("--output-dir", "--output", dest="output", metavar="DIR",
                        help="folder to write (default: RUN_DIR/export/FORMAT); replaced "
                             "only once the export is complete (--output: the old spelling)")
    parser.add_argument("--base-model", metavar="ORG/NAME",
                        help="full-precision base the PEFT adapter names (default: derived "
                             "from the run's model, e.g. Qwen/Qwen3-4B-MLX-4bit -> "
                             "Qwen/Qwen3-4B)")
    parser.add_argument("--adapter", choices=("final", "best"), default="final",
                        help="the last adapter or the best held-out one (default: final)")
    parser.add_argument("--dequantize", action="store_true",
                        help="with --format fused: write full-precision weights")


def run(args: argparse.Namespace) -> int:
    from tscu_tui.engine.hub.export import export_run

    folder = export_run(args.run_dir, args.fmt, output=args.output, base_model=args.base_model,
                        dequantize=args.dequantize, adapter=args.adapter,
                        progress=lambda message: print(message, flush=True))
    print(folder)
    return 0
