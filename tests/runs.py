"""Helpers for tests that train the embedded model (the fixture is in conftest.py)."""

from __future__ import annotations

import queue
from pathlib import Path

from tscu_tui.engine.config import Config, load_config
from tscu_tui.engine.events import Command
from tscu_tui.engine.models.load import EMBEDDED_MODEL
from tscu_tui.engine.train.trainer import Trainer


def tiny_config(data: Path, out: Path, *overrides: str) -> Config:
    base = [f'model.name="{EMBEDDED_MODEL}"', f'data.path="{data}"', f'output.dir="{out}"',
            "lora.r=4", "lora.alpha=8.0", "lora.dropout=0.0", "train.batch_size=4",
            "train.gradient_accumulation_steps=1", "train.learning_rate=2e-3",
            "train.warmup_steps=2", "train.max_steps=12", "train.eval_steps=6",
            "train.save_steps=6", "train.logging_steps=1", "train.eval_batches=2",
            # Engine behaviour must not depend on this machine's sensors; T-SCU runs
            # are in tests/test_tscu_training.py.
            'telemetry.source="none"',
            # The SCU these engine tests exercise: the PI controller on a zero-centred
            # prior (the shipped defaults, penalty off, are tested in test_scu_defaults.py).
            'scu.mode="pi"', "scu.target_s=0.01", 'scu.prior_center="zero"',
            # Samples at each evaluation cost seconds; tests/test_training_samples.py has them.
            "data.sample_max_tokens=0"]
    return load_config(None, [*base, *overrides])


def train(config: Config, commands: list[Command] = (), resume: bool = False
          ) -> tuple[list, object]:
    events: list = []
    q: queue.Queue[Command] = queue.Queue()
    for c in commands:
        q.put(c)
    trainer = Trainer(config, events.append, q, resume=resume)
    trainer.run()
    return events, trainer




SHIFT_WORDS = ["alpha", "beta", "gamma", "delta", "kernel", "token", "block", "layer", "model",
               "train", "value", "shape", "batch", "loss", "field", "index"]


def write_shift_corpus(folder: Path, train_docs: int = 16, seed: int = 7) -> Path:
    """train/valid/test.jsonl where validation stops improving within a few epochs.

    Training documents use 6 of the 16 words that validation and test documents use:
    a model first learns what all share (words, spaces), then learns that the other 10
    words never come, and held-out BPT turns up while training BPT keeps falling. The
    embedded model is too small to memorise text in a few steps; this is overfitting
    it can show in a test's time, deterministically (seeded).
    """
    import json
    import random

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", train_docs), ("valid", 30), ("test", 30)):
        words = SHIFT_WORDS[:6] if name == "train" else SHIFT_WORDS
        (folder / f"{name}.jsonl").write_text("".join(
            json.dumps({"text": " ".join(rng.choice(words) for _ in range(24))}) + "\n"
            for _ in range(n)))
    return folder
