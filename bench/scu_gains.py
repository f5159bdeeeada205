"""Benchmark: how well the SCU's PI controller holds S on the embedded model (gain tuning).

Trains the embedded model for many epochs of a small corpus it overfits (the one
tests/runs.py's write_shift_corpus makes: training text uses 6 of the 16 words of
the held-out text), first without a penalty to see where S goes, then for each gain
set given: under `pi:auto` (no penalty until validation stops improving, then S held
at its value at the best evaluation, lambda starting where the penalty weighs as much
as the data), and under `pi` with a target taken from the unpenalised run (its
smoothed S at 1/4 of the steps), lambda starting small (0.001) so that S rises to the
target and the controller must then hold it against an adapter that keeps learning.
Per run it prints:

- track: mean |e| over the steps after S first reached its target (for auto: after it
  resolved), e the controller's log-odds error (0.1 = S's odds 10% off the target's);
- bound: share of those steps with lambda at lambda_min or lambda_max;
- flips: how often log-lambda changes direction per 10 steps (oscillation);
- final: the last validation BPT (what the control cost or bought), and the best.

    python bench/scu_gains.py [--epochs 12] [--gains 0.1:0,0.3:0,0.1:0.005]
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import random
import tempfile
from pathlib import Path

import tscu_tui.engine  # noqa: F401  (OpenBLAS before anything imports mlx)

SHARED = ["lora.r=8", "lora.alpha=8.0", "lora.dropout=0.0", "train.batch_size=4",
          "train.gradient_accumulation_steps=1", "train.learning_rate=5e-3",
          'train.lr_scheduler="constant"', "train.warmup_steps=2", "train.eval_steps=2",
          "train.save_steps=100000", "train.logging_steps=100", "train.eval_batches=0",
          'telemetry.source="none"', 'scu.prior_center="init"']
WORDS = ["alpha", "beta", "gamma", "delta", "kernel", "token", "block", "layer", "model",
         "train", "value", "shape", "batch", "loss", "field", "index"]


def write_corpus(folder: Path, seed: int = 7) -> Path:
    """tests/runs.py's write_shift_corpus (a bench does not import the tests)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", 20), ("valid", 30), ("test", 30)):
        words = WORDS[:6] if name == "train" else WORDS
        (folder / f"{name}.jsonl").write_text("".join(
            json.dumps({"text": " ".join(rng.choice(words) for _ in range(24))}) + "\n"
            for _ in range(n)))
    return folder


def train(data: Path, out: Path, steps: int, *overrides: str) -> list:
    from tscu_tui.engine.config import load_config
    from tscu_tui.engine.models.load import EMBEDDED_MODEL
    from tscu_tui.engine.train.trainer import Trainer

    config = load_config(None, [
        f'model.name="{EMBEDDED_MODEL}"', f"data.path={json.dumps(str(data))}",
        f"output.dir={json.dumps(str(out))}", f"train.max_steps={steps}", *SHARED,
        *overrides])
    events: list = []
    outcome = Trainer(config, events.append, queue.Queue()).run()
    assert type(outcome).__name__ == "RunFinished", outcome
    return events


def score(events: list, target: float | None, lambda_min: float, lambda_max: float
          ) -> dict[str, float]:
    from tscu_tui.engine.events import EvalEvent, StepEvent
    from tscu_tui.engine.train.scu import log_error

    steps = [e for e in events if isinstance(e, StepEvent)]
    if target is None:  # auto: from the step it resolved
        reached = next((i for i, e in enumerate(steps) if e.s_target is not None), len(steps))
        target = steps[reached].s_target if reached < len(steps) else 0.5
    else:
        reached = next((i for i, e in enumerate(steps) if e.s_smoothed >= target),
                       len(steps))
    after = steps[reached:]
    errors = [abs(log_error(e.s_smoothed, target)) for e in after]
    logs = [math.log(e.lambda_reg) for e in after]
    flips = sum(1 for a, b, c in zip(logs, logs[1:], logs[2:], strict=False)
                if (b - a) * (c - b) < 0)
    bound = sum(1 for e in after if e.lambda_reg <= lambda_min * 1.000001
                or e.lambda_reg >= lambda_max * 0.999999)
    evals = [e.heldout_bpt for e in events if isinstance(e, EvalEvent)]
    n = max(len(after), 1)
    return {"reached_at": reached + 1, "target": target,
            "track": sum(errors) / n if errors else math.nan, "bound": bound / n,
            "flips_per_10": 10 * flips / n, "final_bpt": evals[-1], "best_bpt": min(evals)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--gains", default="0.1:0,0.3:0,1:0,0.3:0.02",
                        help="comma-separated KP:KI pairs")
    parser.add_argument("--auto-only", action="store_true", help="only the pi:auto runs")
    args = parser.parse_args()
    from tscu_tui.engine.data import PrepareOptions, prepare_dataset
    from tscu_tui.engine.events import StepEvent
    from tscu_tui.engine.models.load import EMBEDDED_MODEL

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare_dataset(PrepareOptions(dataset=str(write_corpus(Path(tmp) / "source")),
                                       model=EMBEDDED_MODEL, output_dir=data, block_size=64))
        steps = args.epochs * 4  # 19 training blocks: 4 steps an epoch at batch 4
        off = train(data, Path(tmp) / "off", steps, 'scu.mode="off"')
        s = [e.s_smoothed for e in off if isinstance(e, StepEvent)]
        target = s[steps // 4]
        r = score(off, 1.0, 1e-4, 10.0)
        print(f"off: S at step {steps // 4 + 1} {target:.4g} (the numeric target), final S "
              f"{s[-1]:.4g}; validation BPT final {r['final_bpt']:.4f}, best "
              f"{r['best_bpt']:.4f}")
        for pair in args.gains.split(","):
            kp, ki = (float(x) for x in pair.split(":"))
            gains = (f"scu.kp={kp}", f"scu.ki={ki}")
            arms = [("auto", ('scu.target_s="auto"',))]
            if not args.auto_only:
                arms.append((f"{target:.4g}", (f"scu.target_s={target!r}",
                                               "scu.lambda_init=0.001")))
            for name, arm in arms:
                events = train(data, Path(tmp) / f"pi-{kp}-{ki}-{name}", steps,
                               'scu.mode="pi"', *arm, *gains)
                r = score(events, None if name == "auto" else target, 1e-4, 10.0)
                print(f"kp {kp:<5g} ki {ki:<6g} S* {name} ({r['target']:.4g}): from step "
                      f"{r['reached_at']}, track {r['track']:.3f}, bound {r['bound']:.0%}, "
                      f"flips/10 steps {r['flips_per_10']:.1f}, validation BPT final "
                      f"{r['final_bpt']:.4f} best {r['best_bpt']:.4f}", flush=True)


if __name__ == "__main__":
    main()
