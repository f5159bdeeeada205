"""Benchmark: generating a token at a time on the CPU, from the packed 4-bit weights.

A run's samples at each evaluation and the results screen's sampler decode one token
at a time. On the CPU fast path every projection used to dequantize its whole weight
to float32 and multiply one row by it (cpu_fastpath.py), writing a float32 copy of
the model for every token. `native.quantized_matmul` reads the packed weights once
instead. Both sides run in one process:

1. the real preset's model (SmolLM2-135M with LoRA r=8 on all seven projections, as
   a run sets it up): greedy answers of 32 tokens, the two paths alternating (ABBA),
   medians per token, and whether their texts agree;
2. one token through Qwen3-4B's shapes (hidden 2560, MLP 9728, 32/8 heads of 128,
   151,936 words; random 4-bit weights, group 64, as its MLX release is): one layer's
   seven projections and the head, by the packed kernel, by dequantize + matmul, and
   by MLX's own `quantized_matmul`; per token = 36 layers + the head.

    python bench/sampling.py [--rounds 3] [--tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from step_profile import spread

import tscu_tui.engine  # noqa: F401  (loads OpenBLAS; must come before anything imports mlx)

QWEN3_4B = {"hidden": 2560, "intermediate": 9728, "heads": 32, "kv_heads": 8,
            "head_dim": 128, "layers": 36, "vocab": 151936}


def real_preset(rounds: int, tokens: int) -> None:
    from real_preset import real_trainer

    from tscu_tui.engine.models import native
    from tscu_tui.engine.models.generate import greedy

    with tempfile.TemporaryDirectory(prefix="tscu-sampling-") as folder:
        trainer = real_trainer(Path(folder) / "data", Path(folder) / "run")
        model, tokenizer = trainer.session.model, trainer.session.tokenizer
        prompt = [int(t) for t in trainer.data.blocks("validation")[0][:40]]
        paths = {"dequantize + matmul": 0, "packed weights": native.MATVEC_ROWS}
        times: dict[str, list[float]] = {name: [] for name in paths}
        texts: dict[str, set[str]] = {name: set() for name in paths}
        for rows in paths.values():  # warm-up
            native.MATVEC_ROWS = rows
            greedy(model, tokenizer, prompt, 4)
        for i in range(rounds):
            for name in (list(paths) if i % 2 == 0 else list(paths)[::-1]):
                native.MATVEC_ROWS = paths[name]
                start = time.perf_counter()
                texts[name].add(greedy(model, tokenizer, prompt, tokens))
                times[name].append((time.perf_counter() - start) / tokens)
        native.MATVEC_ROWS = paths["packed weights"]
    print(f"\nreal preset (SmolLM2-135M, LoRA r=8), greedy, {tokens} tokens after a "
          f"40-token prompt, median of {rounds} rounds (ABBA), ms per token (prompt "
          f"included):")
    for name in paths:
        print(f"  {name:22s} {spread([1000 * t for t in times[name]], '7.1f')}")
    ratio = statistics.median(times["dequantize + matmul"]) / statistics.median(
        times["packed weights"])
    same = texts["dequantize + matmul"] == texts["packed weights"] and len(
        texts["packed weights"]) == 1
    print(f"  packed / dequantize: {ratio:.2f}x faster; the answers "
          f"{'are the same text' if same else 'DIFFER'}")


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """fn()'s median time in ms over `repeats` calls, after one to warm up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def qwen3_shapes(repeats: int) -> None:
    from tscu_tui.engine.models import native
    from tscu_tui.engine.models.runtime import mx

    if not native.available():
        print(f"\nQwen3-4B shapes: skipped, {native.describe()}")
        return
    q = QWEN3_4B
    hidden, inter = q["hidden"], q["intermediate"]
    layer = [(q["heads"] * q["head_dim"], hidden), (q["kv_heads"] * q["head_dim"], hidden),
             (q["kv_heads"] * q["head_dim"], hidden), (hidden, q["heads"] * q["head_dim"]),
             (inter, hidden), (inter, hidden), (hidden, inter)]
    sides: dict[str, Callable[..., mx.array]] = {
        "packed weights (tscu)": lambda x, w, s, b: native.quantized_matmul(x, w, s, b, 64, 4),
        "dequantize + matmul": lambda x, w, s, b: x @ native.dequantize(w, s, b, 64, 4).T,
        "mx.quantized_matmul": lambda x, w, s, b: mx.quantized_matmul(
            x, w, s, b, group_size=64, bits=4)}
    per_token = dict.fromkeys(sides, 0.0)
    shapes = [(shape, q["layers"]) for shape in layer] + [((q["vocab"], hidden), 1)]
    for (out_dim, in_dim), count in shapes:
        packed = mx.quantize(mx.random.normal((out_dim, in_dim)) * 0.02, group_size=64,
                             bits=4)
        x = mx.random.normal((1, in_dim))
        mx.eval(packed, x)
        for name, fn in sides.items():
            per_token[name] += count * median_ms(
                lambda fn=fn, x=x, packed=packed: mx.eval(fn(x, *packed)), repeats)
    print(f"\nQwen3-4B's shapes, one token (36 layers' seven projections + the "
          f"151,936-word head; random 4-bit weights, group 64), median of {repeats}:")
    for name, ms in per_token.items():
        print(f"  {name:24s} {ms:8.0f} ms a token")
    base = per_token["packed weights (tscu)"]
    print(f"  packed vs dequantize + matmul: "
          f"{per_token['dequantize + matmul'] / base:.1f}x; vs mx.quantized_matmul: "
          f"{per_token['mx.quantized_matmul'] / base:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="ABBA rounds, real preset")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per answer")
    parser.add_argument("--repeats", type=int, default=5, help="timings per Qwen3 shape")
    args = parser.parse_args()
    if min(args.rounds, args.tokens, args.repeats) < 1:
        parser.error("--rounds, --tokens and --repeats: at least 1")
    real_preset(args.rounds, args.tokens)
    qwen3_shapes(args.repeats)


if __name__ == "__main__":
    main()
