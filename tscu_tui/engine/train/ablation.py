"""Ablations: the same config trained under several regularisation arms and seeds.

An arm says what regularises the run: `off` (no penalty), `fixed:LAMBDA`,
`pi:TARGET` (TARGET a number in (0, 1) or `auto`), `default` (the config's own
[scu]), or a baseline practitioners use with the penalty off: `wd:X` (AdamW's
decoupled weight decay X) or `dropout:X` (LoRA dropout X); the SCU arms optionally
with `@init` or `@zero` for the prior's centre. Arms share seeds: seed k of every
arm draws the same initial adapter and the same data order (ablation_stats.py
checks it from the runs' own digests), so arms are compared seed by seed. Each
arm x seed is an ordinary run in `DIR/runs/ARM-seedN`; a run that finished with the
same settings is reused, an interrupted one resumed, so an ablation can be stopped
and started again. The report is ablation_stats.py's and ablation_report.py's.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tscu_tui.engine.config import Config, load_config, to_dict
from tscu_tui.engine.data import PreparedDataset
from tscu_tui.engine.errors import ConfigError, TscuError
from tscu_tui.engine.fileio import atomic_write_json, read_json_object
from tscu_tui.engine.runs.files import SUMMARY_FILE
from tscu_tui.engine.train.checkpoint import latest_checkpoint
from tscu_tui.engine.train.run_plan import RunPlan, plan_run

ARM_SYNTAX = ("off, default, fixed:LAMBDA, pi:TARGET, pi:auto, wd:X or dropout:X, the SCU "
              "arms optionally @init or @zero")
SPEC_FILE = "ablation_run.json"
_ARM = re.compile(r"^(?:(?:off|default|fixed:(?P<lam>[^@]+)|pi:(?P<target>[^@]+))"
                  r"(?:@(?P<center>init|zero))?|wd:(?P<wd>[^@]+)|dropout:(?P<drop>[^@]+))$")


@dataclass(frozen=True)
class Arm:
    spec: str  # as written: "fixed:0.1", "pi:auto@zero"
    overrides: tuple[str, ...]  # --set items that make the config this arm

    @property
    def slug(self) -> str:
        """The arm as a folder name: fixed-0.1, pi-auto-zero."""
        return re.sub(r"[^A-Za-z0-9.]+", "-", self.spec).strip("-")


def parse_arm(text: str) -> Arm:
    """One arm from its spec; TscuError naming --arms and the spec when it is not one."""
    spec = text.strip()
    match = _ARM.match(spec)
    if match is None:
        raise TscuError(f"--arms: {spec!r} is not an arm; use {ARM_SYNTAX}")
    overrides: list[str] = []
    if spec.startswith("off"):
        overrides.append('scu.mode="off"')
    elif match["wd"] is not None:
        decay = _number(match["wd"], spec)
        if decay < 0:
            raise TscuError(f"--arms: {spec!r}: a weight decay must be >= 0")
        overrides += ['scu.mode="off"', f"train.weight_decay={decay!r}"]
    elif match["drop"] is not None:
        rate = _number(match["drop"], spec)
        if not 0 <= rate < 1:
            raise TscuError(f"--arms: {spec!r}: a dropout rate must lie in [0, 1)")
        overrides += ['scu.mode="off"', f"lora.dropout={rate!r}"]
    elif match["lam"] is not None:
        lam = _number(match["lam"], spec)
        if lam < 0:
            raise TscuError(f"--arms: {spec!r}: a fixed lambda must be >= 0")
        overrides += ['scu.mode="fixed"', f"scu.lambda_init={lam!r}"]
    elif match["target"] is not None:
        target = match["target"]
        if target != "auto":
            value = _number(target, spec)
            if not 0 < value < 1:
                raise TscuError(f"--arms: {spec!r}: a target S must lie in (0, 1) or be auto")
            target = repr(value)
        else:
            target = '"auto"'
        overrides += ['scu.mode="pi"', f"scu.target_s={target}"]
    if match["center"]:
        overrides.append(f'scu.prior_center="{match["center"]}"')
    return Arm(spec=spec, overrides=tuple(overrides))


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TscuError(f"--arms: {spec!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TscuError(f"--arms: {spec!r}: {text!r} is not a finite number")
    return value


def parse_arms(text: str) -> list[Arm]:
    arms = [parse_arm(part) for part in text.split(",") if part.strip()]
    if not arms:
        raise TscuError(f"--arms: no arm given; use {ARM_SYNTAX}")
    slugs = [arm.slug for arm in arms]
    for slug in slugs:
        if slugs.count(slug) > 1:
            raise TscuError(f"--arms: {slug!r} is given twice")
    return arms


def parse_count(flag: str, text: str) -> int:
    """A whole number >= 1 given to `flag`, or a one-line error naming the flag."""
    try:
        count = int(text)
    except ValueError:
        raise TscuError(f"{flag} {text}: must be a whole number >= 1") from None
    if count < 1:
        raise TscuError(f"{flag} {text}: must be at least 1")
    return count


def parse_seeds(text: str) -> int:
    return parse_count("--seeds", text)


def parse_epochs(text: str) -> float:
    """`--epochs`: a number > 0 (may be fractional), or a one-line error."""
    try:
        epochs = float(text)
    except ValueError:
        raise TscuError(f"--epochs {text}: must be a number > 0") from None
    if not math.isfinite(epochs) or epochs <= 0:
        raise TscuError(f"--epochs {text}: must be a number > 0")
    return epochs


@dataclass(frozen=True)
class PlannedRun:
    arm: Arm
    seed: int
    config: Config  # as the run gets it (train.epochs and scu.mode = "auto" unresolved)
    plan: RunPlan  # ... and as they resolve on the ablation's data

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output.dir)


def plan(config_path: str | Path, arms: list[Arm], seeds: int, output_dir: Path,
         overrides: list[str], steps: int | None = None, epochs: float | None = None
         ) -> list[PlannedRun]:
    """Every arm x seed as a config, seed-major (so a cut-short ablation still has every
    arm on its first seeds). Raises ConfigError/TscuError/DataError, writes nothing."""
    if steps is not None and epochs is not None:
        raise TscuError("--steps and --epochs: give one of them")
    shared = list(overrides)
    if steps is not None:
        shared += [f"train.max_steps={steps}", "train.epochs=0"]
    elif epochs is not None:
        shared += [f"train.epochs={epochs!r}", "train.max_steps=0"]
    base = load_config(config_path, shared)
    data = PreparedDataset.open(base.data.path)  # one clear line before anything is written
    runs = []
    for index in range(seeds):
        seed = base.train.seed + index
        for arm in arms:
            name = f"{arm.slug}-seed{seed}"
            items = [*shared, *arm.overrides, f"train.seed={seed}",
                     f"output.dir={json.dumps(str(output_dir / 'runs' / name))}",
                     "output.overwrite=false"]
            try:
                config = load_config(config_path, items)
            except ConfigError as exc:
                raise TscuError(f"--arms {arm.spec}: {exc.problems[0]}") from None
            run_plan = plan_run(config, data.meta, base.data.path)
            runs.append(PlannedRun(arm=arm, seed=seed, config=config, plan=run_plan))
    return runs


def _spec(run: PlannedRun) -> dict[str, Any]:
    settings = {k: v for k, v in to_dict(run.config).items() if k not in ("keys", "hub")}
    return {"arm": run.arm.spec, "seed": run.seed, "config": settings}


def run_state(run: PlannedRun) -> str:
    """'finished' (reuse), 'interrupted' (resume) or 'new' (train from scratch)."""
    spec = read_json_object(run.run_dir / SPEC_FILE) if run.run_dir.is_dir() else None
    if spec != json.loads(json.dumps(_spec(run))):
        return "new"
    summary = read_json_object(run.run_dir / SUMMARY_FILE)
    if summary is not None and summary.get("status") == "completed" \
            and summary.get("steps") == run.plan.steps:
        return "finished"
    return "interrupted" if latest_checkpoint(run.run_dir) is not None else "new"


TrainOne = Callable[[Config, bool], None]  # (config, resume): trains, raises on failure
Progress = Callable[[str], None]


def run_all(runs: list[PlannedRun], train_one: TrainOne, progress: Progress) -> None:
    """Train what is not finished yet, in order; reuse the rest."""
    for number, run in enumerate(runs, start=1):
        head = f"[{number}/{len(runs)}] {run.arm.spec} seed {run.seed}"
        state = run_state(run)
        if state == "finished":
            progress(f"{head}: finished earlier, reused ({run.run_dir})")
            continue
        if state == "new":
            if run.run_dir.exists():
                shutil.rmtree(run.run_dir)
            run.run_dir.mkdir(parents=True)
            atomic_write_json(run.run_dir / SPEC_FILE, _spec(run))
        progress(f"{head}: {'resuming' if state == 'interrupted' else 'training'} "
                 f"({run.run_dir})")
        train_one(run.config, state == "interrupted")
        if run_state(run) != "finished":
            raise TscuError(f"{run.run_dir}: the run did not complete; run the ablation "
                            "again to resume it")
