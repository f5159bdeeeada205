"""Setting a run up: its folder, data, model, adapters, optimizer, and resuming it.

`open_session` builds, once, everything the loop, the evaluations and the outputs
share (`Session`): the training blocks, the model with its LoRA adapters, the SCU,
the optimizer and, with --resume, the last checkpoint's state, read and checked by
rank 0 and sent to the others. The run folder is prepared before (`prepare_run_dir`),
so `tscu watch` shows this run's settings from its first second.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.nn as nn
import mlx.optimizers as optim

from tscu_tui.engine.config import Config, to_dict
from tscu_tui.engine.data import PreparedDataset
from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.fileio import atomic_write_json
from tscu_tui.engine.models import native
from tscu_tui.engine.models.blas import blas_threads
from tscu_tui.engine.models.checkpointing import MemoryPlan, plan_memory
from tscu_tui.engine.models.cpu_fastpath import on_cpu, prepare_for_cpu
from tscu_tui.engine.models.gguf_cache import imported_model_dir, is_gguf_name
from tscu_tui.engine.models.load import load_model
from tscu_tui.engine.models.peak import reset_peaks
from tscu_tui.engine.models.runtime import BLAS, mx
from tscu_tui.engine.models.threads import (
    BlasThreadPolicy,
    fixed_blas_threads,
    set_compute_threads,
)
from tscu_tui.engine.runs.files import CONFIG_FILE
from tscu_tui.engine.train import lora
from tscu_tui.engine.train.batches import BlockSampler, SamplerState, SplitBlocks
from tscu_tui.engine.train.checkpoint import latest_checkpoint, restore_checkpoint
from tscu_tui.engine.train.device import backend_problem
from tscu_tui.engine.train.objective import penalty_scale
from tscu_tui.engine.train.outputs import remove_run_outputs
from tscu_tui.engine.train.pairing import adapter_digest, data_order_digest
from tscu_tui.engine.train.parallel import DataParallel
from tscu_tui.engine.train.schedule import lr_at
from tscu_tui.engine.train.scu_run import RunScu


@dataclass
class Progress:
    """Mutable loop state that a checkpoint must carry."""

    step: int = 0
    tokens: int = 0
    elapsed_s: float = 0.0
    best_bpt: float = math.inf
    best_step: int = 0
    evals_without_best: int = 0
    last_bpt: float | None = None
    last_eval_step: int = 0
    sampler: SamplerState = field(default_factory=SamplerState)


@dataclass
class Session:
    """One run's parts, built once by `open_session` and shared by the loop, the
    evaluations and the outputs."""

    config: Config
    data: PreparedDataset
    parallel: DataParallel
    train_blocks: SplitBlocks
    model: nn.Module
    tokenizer: Any
    adapter_config: dict[str, Any]
    memory_plan: MemoryPlan
    trainable: int
    total: int
    n_tokens: int  # N: ParamBPT's and the information per joule's
    scale: float  # the penalty's scale (objective.penalty_scale)
    scu: RunScu
    pairing: dict[str, Any]  # what makes two runs' comparison paired (ablations)
    optimizer: optim.AdamW
    progress: Progress
    sampler: BlockSampler
    resumed: bool  # --resume found a checkpoint (without one it is a fresh start)
    saved: dict[str, Any]  # that checkpoint's state; empty for a fresh start

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output.dir)

    @property
    def dataset_path(self) -> Path:
        return Path(self.config.data.path)

    @property
    def history(self) -> dict[str, Any] | None:
        """The metric history the checkpoint carried (rank 0's), None for a fresh start."""
        return self.saved.get("history")

    def fingerprint(self) -> dict[str, Any]:
        return fingerprint(self.config, self.data, self.adapter_config, self.parallel)


def prepare_run_dir(config: Config, resume: bool) -> None:
    out = Path(config.output.dir)
    has_run = (out / "events.jsonl").exists() or (out / "checkpoints").exists()
    if has_run and not resume and not config.output.overwrite:
        raise TscuError(f"output directory {out} already holds a run; pass --resume to "
                        "continue it or set output.overwrite = true to replace it")
    if has_run and not resume:  # the old run's files only, never the folder
        remove_run_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    # The settings first, so `tscu watch` shows this run's, not its own folder's.
    atomic_write_json(out / CONFIG_FILE, to_dict(config))


def open_session(config: Config, data: PreparedDataset, parallel: DataParallel,
                 resume: bool, log: Callable[[str], None]) -> Session:
    cfg, dataset_path = config, Path(config.data.path)
    reset_peaks()
    train_blocks = SplitBlocks(data, "train")
    if len(train_blocks) < cfg.train.batch_size:
        raise TscuError(f"{dataset_path}: {len(train_blocks)} training blocks "
                        f"cannot fill a batch of {cfg.train.batch_size}")
    parallel.check_batch(cfg.train.batch_size)
    if parallel.distributed:  # same path on every node, so it must be the same data
        ours = data.meta.content_hash
        if parallel.broadcast_json(ours) != ours:
            raise TscuError(f"{dataset_path} on rank {parallel.world.rank} is "
                            "not the dataset rank 0 has (its content hash differs)")
    mx.random.seed(cfg.train.seed)
    if is_gguf_name(cfg.model.name) and imported_model_dir(
            cfg.model.name, import_missing=False) is None:
        log(f"importing {cfg.model.name} into tscu's model cache (once; later runs "
            "reuse it)")
    model, tokenizer, _ = load_model(cfg.model.name, cfg.model.revision or None)
    model_vocab = getattr(getattr(model, "args", None), "vocab_size", None)
    if model_vocab is not None and data.meta.vocab_size > model_vocab:
        raise TscuError(f"{dataset_path} was tokenized for {data.meta.model} "
                        f"(vocab {data.meta.vocab_size}), not for {cfg.model.name}")
    adapter_config = {**lora.apply_lora(model, cfg.lora), "model": cfg.model.name}
    prepare_for_cpu(model)
    memory_plan = plan_memory(model, cfg, cfg.train.batch_size * (data.meta.block_size - 1))
    trainable, total = lora.count_parameters(model)

    # N: ParamBPT's and the information per joule's, one N everywhere: the training
    # targets that carry loss (all of them for plain text)
    n_tokens = cfg.scu.tokens_n or data.meta.split("train").trained_tokens
    scale = penalty_scale(cfg.scu.prior_sigma, n_tokens)
    scu = RunScu(cfg.scu, cfg.train, scale)
    scu.set_anchor(model)  # the adapter as initialised: before any restore
    pairing = {"initial_adapter": adapter_digest(model), "data_order": data_order_digest(
        len(train_blocks), cfg.train.batch_size, cfg.train.seed,
        cfg.train.max_steps * cfg.train.gradient_accumulation_steps)}

    optimizer = optim.AdamW(learning_rate=lr_at(0, cfg.train),
                            weight_decay=cfg.train.weight_decay)
    optimizer.init(model.trainable_parameters())
    progress = Progress()
    s = _saved_state(config, data, parallel, adapter_config, model, optimizer, resume)
    parallel.sync_weights(model)
    if s is not None:
        parallel.sync_optimizer(optimizer)
        progress = Progress(step=int(s["step"]), tokens=s["tokens"],
                            elapsed_s=s["elapsed_s"], best_bpt=s["best_bpt"],
                            best_step=int(s.get("best_step", 0)),
                            evals_without_best=s["evals_without_best"],
                            last_bpt=s["last_bpt"],
                            last_eval_step=int(s.get("last_eval_step", s["step"])),
                            sampler=SamplerState(**s["sampler"]))
        scu.load_state_dict(s["scu"], s["lambda_reg"])
    sampler = BlockSampler(len(train_blocks), cfg.train.batch_size, cfg.train.seed,
                           progress.sampler)
    # Without a checkpoint to resume, a fresh start is the honest resume.
    return Session(config=config, data=data, parallel=parallel, train_blocks=train_blocks,
                   model=model, tokenizer=tokenizer, adapter_config=adapter_config,
                   memory_plan=memory_plan, trainable=trainable, total=total,
                   n_tokens=n_tokens, scale=scale, scu=scu, pairing=pairing,
                   optimizer=optimizer, progress=progress, sampler=sampler,
                   resumed=s is not None, saved=s or {})


def _saved_state(config: Config, data: PreparedDataset, parallel: DataParallel,
                 adapter_config: dict[str, Any], model: nn.Module, optimizer: optim.AdamW,
                 resume: bool) -> dict[str, Any] | None:
    """With --resume: the last checkpoint's state, read and checked by rank 0 (which
    also restores adapters and optimizer) and sent to the others, which need no
    run folder of their own."""
    state = None
    run_dir = Path(config.output.dir)
    if parallel.is_main and resume and (ckpt := latest_checkpoint(run_dir)) is not None:
        check_compatible(run_dir, ckpt.state,
                         fingerprint(config, data, adapter_config, parallel))
        restore_checkpoint(ckpt, model, optimizer)
        state = ckpt.state
    if not parallel.distributed:
        return state
    history = state.pop("history", None) if state is not None else None
    shared = parallel.broadcast_json(state)
    if shared is not None and parallel.is_main:
        shared["history"] = history
    return shared


def setup_problems(parallel: DataParallel) -> list[str]:
    """Warnings about how this run was started, said once its log is open."""
    problems = []
    if parallel.distributed and parallel.liveness is None:
        problems.append("ranks started without tscu's launcher: no heartbeat watchdog, so a "
                        "rank that hangs leaves the others waiting (tscu train --launch or "
                        "--hostfile sets one up)")
    if (problem := backend_problem()) is not None:
        problems.append(problem)
    return problems


def compute_detail() -> str:
    """BLAS, and on the CPU which kernels do the rest of the step."""
    return f"{BLAS.detail}; {native.describe()}" if on_cpu() else BLAS.detail


def blas_thread_policy() -> BlasThreadPolicy | None:
    """OpenBLAS's threads: fixed by TSCU_BLAS_THREADS, else adapted to the load."""
    fixed, current = fixed_blas_threads(), blas_threads()
    if current is None:
        return None
    if fixed is not None:
        set_compute_threads(fixed)
        return None
    set_compute_threads(current)
    return BlasThreadPolicy(cores=os.cpu_count() or 1, current=current)


def check_compatible(run_dir: Path, state: dict[str, Any], mine: dict[str, Any]) -> None:
    """A checkpoint resumes only under the settings that shape its weights and data."""
    check_world(run_dir, state, mine["world_size"])
    saved = state.get("fingerprint", {})
    for key, value in mine.items():
        if saved.get(key) != value:
            raise TscuError(f"cannot resume {run_dir}: its {key} was "
                            f"{saved.get(key)!r}, the config now says {value!r}")


def check_world(run_dir: Path, state: dict[str, Any], mine: int) -> None:
    ranks = state.get("fingerprint", {}).get("world_size", 1)
    if ranks != mine:
        how = ("one process (no --launch)" if ranks == 1 else
               f"{ranks} ranks (tscu train --launch {ranks}, or a hostfile of {ranks})")
        raise TscuError(f"cannot resume {run_dir}: it was trained by {how}, this "
                        f"launch has {mine}; resume it with the same number of ranks")


def fingerprint(config: Config, data: PreparedDataset, adapter_config: dict[str, Any],
                parallel: DataParallel) -> dict[str, Any]:
    return {"model": config.model.name, "dataset": data.meta.content_hash,
            "lora": adapter_config["lora_parameters"],
            "batch_size": config.train.batch_size, "seed": config.train.seed,
            "world_size": parallel.world.size}
