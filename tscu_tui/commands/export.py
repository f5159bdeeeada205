"""`tscu export`: a run's adapter as mlx-lm, PEFT, fused, GGUF LoRA or merged GGUF, with a
model card."""

from __future__ import annotations

import argparse


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished (or stopped) run folder")
    parser.add_argument("--format", dest="fmt", default="peft",
                        choices=("mlx", "peft", "fused", "gguf-lora", "gguf"),
                        help="mlx: mlx-lm adapter pair; peft: PEFT adapter for the "
                             "full-precision base; fused: base + adapter in one model; "
                             "gguf-lora: llama.cpp LoRA GGUF + Ollama Modelfile for the "
                             "base GGUF; gguf: base + adapter merged into one GGUF "
                             "(default: peft)")
    parser.add_argument("--output-dir", "--output", dest="output", metavar="DIR",
                        help="folder to write (default: RUN_DIR/export/FORMAT); replaced "
                             "only once the export is complete (--output: the old spelling)")
    parser.add_argument("--base-model", metavar="ORG/NAME",
                        help="peft: full-precision base the adapter names (default: derived "
                             "from the run's model, e.g. Qwen/Qwen3-4B-MLX-4bit -> "
                             "Qwen/Qwen3-4B); gguf, gguf-lora: the base GGUF file where it "
                             "moved since training (checked by SHA-256)")
    parser.add_argument("--adapter", choices=("final", "best"), default="final",
                        help="the last adapter or the best held-out one (default: final)")
    parser.add_argument("--dequantize", action="store_true",
                        help="with --format fused: write full-precision weights")
    parser.add_argument("--quant", choices=("f16", "q8_0", "q4_0"),
                        help="with --format gguf: the merged weights' type (default: q8_0; "
                             "q4_0 only for a 4-bit base); requantizing changes the weights")


def run(args: argparse.Namespace) -> int:
    from tscu_tui.engine.hub.export import export_run

    folder = export_run(args.run_dir, args.fmt, output=args.output, base_model=args.base_model,
                        dequantize=args.dequantize, adapter=args.adapter, quant=args.quant,
                        progress=lambda message: print(message, flush=True))
    print(folder)
    return 0
