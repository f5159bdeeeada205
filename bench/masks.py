"""Benchmark: what loss masks and per-document attention cost a training step.

For the demo preset (the embedded tiny model, 8 x 128 tokens, r=8) and the real
preset (SmolLM2-135M, 4 x 256 tokens, r=8), in one process: prepare the preset's
data (format 3: per-token flags), build the trainer's compiled step, and time one
optimizer step on the same blocks

- with masks: the loss over the targets that carry loss and attention kept to
  each packed document (what training does now);
- without: every target, plain causal attention across the whole block (what
  training did before format 3);

and with one of the two masks alone, interleaved A B C D A B C D ... so that drift
and other load hit every side alike. It prints each side's median and its ratio to
"without" (the budget for both masks is 1.10), and the attention softmax alone at
the preset's shapes (native causal vs native segment kernel, forward and backward).
The presets' data is plain text, all of it trained but each piece's first token, so
the loss mask there is nearly a multiply by ones; the segments are real.

    python bench/masks.py [--presets demo,real] [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import tscu_tui.engine  # noqa: F401  (loads OpenBLAS; must come before anything imports mlx)


def _trainer(preset: str, folder: Path):  # type: ignore[no-untyped-def]
    import queue

    from tscu_tui.commands.demo import demo_config
    from tscu_tui.engine.data import PreparedDataset, PrepareOptions, prepare_dataset
    from tscu_tui.engine.train.trainer import Trainer

    config = demo_config(str(folder), ['telemetry.source="none"', "tscu.enabled=false",
                                       "data.sample_max_tokens=0"], preset)
    data = config.data
    prepare_dataset(PrepareOptions(dataset=data.dataset, model=config.model.name,
                                   output_dir=Path(data.path), block_size=data.block_size,
                                   validation_fraction=data.validation_fraction))
    trainer = Trainer(config, None, queue.Queue())
    trainer.data = PreparedDataset.open(trainer.dataset_path)
    trainer._prepare_run_dir()
    trainer._setup()
    trainer.session.model.train()
    return trainer, config


def _time(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_ratio(preset: str, repeats: int, folder: Path) -> None:
    from tscu_tui.engine.models.runtime import mx
    from tscu_tui.engine.train.batches import Batch

    trainer, config = _trainer(preset, folder)
    model, batch_size = trainer.session.model, config.train.batch_size
    masked = trainer.session.train_blocks.batch(slice(0, batch_size))
    sides = {"both masks": masked,
             "loss mask only": Batch(masked.tokens, masked.weights),
             "document mask only": Batch(masked.tokens, None, masked.starts),
             "without": Batch(masked.tokens)}
    lam, scale = mx.array(0.0), mx.array(1.0)
    # One compiled step per side: a compiled function retraces when its inputs change
    # structure (None for a mask), and alternating would retrace every call.
    steps = {}
    for name in sides:
        trainer._build_steps()
        steps[name] = trainer.step.micro_step

    def step(name: str) -> None:
        loss, _, _, grads = steps[name](sides[name].arrays, lam, None)
        mx.eval(loss, grads)
        trainer.step.update(grads, scale)
        mx.eval(model.parameters(), trainer.session.optimizer.state)

    for name in [*sides, *sides]:  # compile each, warm up
        step(name)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name in sides:
            times[name].append(_time(lambda name=name: step(name)))
    median = {name: statistics.median(t) for name, t in times.items()}
    flags = trainer.session.train_blocks.flags[:batch_size]
    segments = int(mx.sum(mx.array(flags & 2 > 0)).item())
    print(f"{preset}: {config.model.name}, {batch_size} x {config.data.block_size} tokens, "
          f"r={config.lora.r}, {segments} documents in the batch "
          f"(median of {repeats}, sides interleaved)")
    for name, t in median.items():
        print(f"  {name:<20} {t * 1000:9.1f} ms   ratio to without "
              f"{t / median['without']:.3f}")
    _softmax_alone(model, batch_size, config.data.block_size, masked)


def _softmax_alone(model, batch: int, block: int, masked) -> None:  # type: ignore[no-untyped-def]
    """The attention softmax at one layer's shapes: causal vs segment, fwd + bwd."""
    from tscu_tui.engine.models import native
    from tscu_tui.engine.models.runtime import mx

    if not native.available():
        print(f"  softmax alone: native kernels not built ({native.status().reason})")
        return
    args = model.args
    kv, heads, n = args.num_key_value_heads, args.num_attention_heads, block - 1
    scores = mx.random.normal((batch, kv, heads // kv, n, n))
    mx.eval(scores)

    def causal() -> None:
        mx.eval(mx.grad(lambda s: (native.causal_softmax(s, n) * s).sum())(scores))

    def segment() -> None:
        mx.eval(mx.grad(lambda s: (native.segment_softmax(s, masked.starts) * s).sum())(
            scores))

    for fn in (causal, segment):
        fn()
    c = statistics.median(_time(causal) for _ in range(7))
    s = statistics.median(_time(segment) for _ in range(7))
    print(f"  softmax alone (one layer, fwd+bwd): causal {c * 1000:.2f} ms   segment "
          f"{s * 1000:.2f} ms   ratio {s / c:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="demo,real")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tscu-masks-") as tmp:
        for preset in args.presets.split(","):
            step_ratio(preset, args.repeats, Path(tmp) / preset)


if __name__ == "__main__":
    main()
