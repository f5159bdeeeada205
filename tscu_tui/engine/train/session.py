"""Setting a run up: its folder, data, model, adapters, optimizer, and resuming it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import mlx.optimizers as optim

from tscu_tui.engine.config import to_dict
from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.fileio import atomic_write_json
from tscu_tui.engine.models import native
from tscu_tui.engine.models.blas import blas_threads
from tscu_tui.engine.models.checkpointing import plan_memory
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
from tscu_tui.engine.report.reporters import open_reporters
from tscu_tui.engine.runs.files import CONFIG_FILE
from tscu_tui.engine.train import lora
from tscu_tui.engine.train.batches import BlockSampler, SamplerState, SplitBlocks
from tscu_tui.engine.train.checkpoint import latest_checkpoint, restore_checkpoint
from tscu_tui.engine.train.device import backend_problem
from tscu_tui.engine.train.objective import penalty_scale
from tscu_tui.engine.train.outputs import remove_run_outputs
from tscu_tui.engine.train.pairing import adapter_digest, data_order_digest
from tscu_tui.engine.train.recorder import RunRecorder
from tscu_tui.engine.train.samples import TrainingSamples
from tscu_tui.engine.train.schedule import lr_at
from tscu_tui.engine.train.scu_run import RunScu
from tscu_tui.engine.train.selection import TestSplit
from tscu_tui.engine.train.thermal import ThermalControl

KEEP_CHECKPOINTS = 2


@dataclass
class _Progress:
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


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class SessionSetup:
    """Trainer's setup and resume (a mixin until it is one object)."""

    def _prepare_run_dir(self) -> None:
        out = self.run_dir
        has_run = (out / "events.jsonl").exists() or (out / "checkpoints").exists()
        if has_run and not self.resume and not self.config.output.overwrite:
            raise TscuError(f"output directory {out} already holds a run; pass --resume to "
                            "continue it or set output.overwrite = true to replace it")
        if has_run and not self.resume:  # the old run's files only, never the folder
            remove_run_outputs(out)
        out.mkdir(parents=True, exist_ok=True)
        # The settings first, so `tscu watch` shows this run's, not its own folder's.
        atomic_write_json(out / CONFIG_FILE, to_dict(self.config))

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        cfg = self.config
        reset_peaks()
        self.train_blocks = SplitBlocks(self.data, "train")
        if len(self.train_blocks) < cfg.train.batch_size:
            raise TscuError(f"{self.dataset_path}: {len(self.train_blocks)} training blocks "
                            f"cannot fill a batch of {cfg.train.batch_size}")
        self.parallel.check_batch(cfg.train.batch_size)
        if self.parallel.distributed:  # same path on every node, so it must be the same data
            ours = self.data.meta.content_hash
            if self.parallel.broadcast_json(ours) != ours:
                raise TscuError(f"{self.dataset_path} on rank {self.parallel.world.rank} is "
                                "not the dataset rank 0 has (its content hash differs)")
        mx.random.seed(cfg.train.seed)
        if is_gguf_name(cfg.model.name) and imported_model_dir(
                cfg.model.name, import_missing=False) is None:
            self.log(f"importing {cfg.model.name} into tscu's model cache (once; later runs "
                     "reuse it)")
        model, self.tokenizer, _ = load_model(cfg.model.name, cfg.model.revision or None)
        model_vocab = getattr(getattr(model, "args", None), "vocab_size", None)
        if model_vocab is not None and self.data.meta.vocab_size > model_vocab:
            raise TscuError(f"{self.dataset_path} was tokenized for {self.data.meta.model} "
                            f"(vocab {self.data.meta.vocab_size}), not for {cfg.model.name}")
        self.adapter_config = {**lora.apply_lora(model, cfg.lora), "model": cfg.model.name}
        prepare_for_cpu(model)
        self.memory_plan = plan_memory(model, cfg,
                                       cfg.train.batch_size * (self.data.meta.block_size - 1))
        self.model = model
        self.trainable, self.total = lora.count_parameters(model)

        # N: ParamBPT's and the information per joule's, one N everywhere: the training
        # targets that carry loss (all of them for plain text)
        self.n_tokens = cfg.scu.tokens_n or self.data.meta.split("train").trained_tokens
        self.scale = penalty_scale(cfg.scu.prior_sigma, self.n_tokens)
        self.scu = RunScu(cfg.scu, cfg.train, self.scale)
        self.scu.set_anchor(model)  # the adapter as initialised: before any restore
        self.pairing = {"initial_adapter": adapter_digest(model), "data_order": data_order_digest(
            len(self.train_blocks), cfg.train.batch_size, cfg.train.seed,
            cfg.train.max_steps * cfg.train.gradient_accumulation_steps)}

        self.optimizer = optim.AdamW(learning_rate=lr_at(0, cfg.train),
                                     weight_decay=cfg.train.weight_decay)
        self.optimizer.init(model.trainable_parameters())
        history = None
        self._resume_state: dict[str, Any] = {}
        s = self._saved_state()
        self.parallel.sync_weights(model)
        if s is not None:
            self.parallel.sync_optimizer(self.optimizer)
            self._last_checkpoint = int(s["step"])
            history = s.get("history")
            self.progress = _Progress(step=int(s["step"]), tokens=s["tokens"],
                                      elapsed_s=s["elapsed_s"], best_bpt=s["best_bpt"],
                                      best_step=int(s.get("best_step", 0)),
                                      evals_without_best=s["evals_without_best"],
                                      last_bpt=s["last_bpt"],
                                      last_eval_step=int(s.get("last_eval_step", s["step"])),
                                      sampler=SamplerState(**s["sampler"]))
            self.scu.load_state_dict(s["scu"], s["lambda_reg"])
            self._resume_state = s
        elif self.resume:
            self.resume = False  # nothing saved yet: a fresh start is the honest resume
        self.sampler = BlockSampler(len(self.train_blocks), cfg.train.batch_size,
                                    cfg.train.seed, self.progress.sampler)
        if self.parallel.is_main:  # rank 0 alone writes the run folder
            recorder = RunRecorder(self.run_dir, cfg.train.logging_steps, history)
            if history is not None:
                recorder.rewind(self.progress.step)
            with self._emit_lock:
                self._recorder = recorder
            if cfg.report.to:
                reporters = open_reporters(cfg, self.run_dir, self.progress.step)
                with self._emit_lock:
                    self._reporters = reporters
        self.tests = TestSplit(len(self.data.blocks("test")), self._heldout, self.emit,
                               (history or {}).get("tests"))
        if self.parallel.distributed and self.liveness is None:
            self.log("ranks started without tscu's launcher: no heartbeat watchdog, so a rank "
                     "that hangs leaves the others waiting (tscu train --launch or --hostfile "
                     "sets one up)", "warning")
        problem = backend_problem()
        if problem is not None:
            self.log(problem, "warning")
        self.blas_policy = self._blas_thread_policy()
        self.samples = (TrainingSamples(cfg.data, self.data.meta, self.tokenizer)
                        if self.parallel.is_main else None)  # rank 0 alone reports them
        self.thermal = ThermalControl(cfg, on_warning=lambda m: self.log(m, "warning"),
                                      on_info=self.log)
        self.thermal.distributed = self.parallel.distributed
        if self.resume and "thermal" in self._resume_state:
            self.thermal.load_state_dict(self._resume_state["thermal"])
        self._build_steps()

    def _saved_state(self) -> dict[str, Any] | None:
        """With --resume: the last checkpoint's state, read and checked by rank 0 (which
        also restores adapters and optimizer) and sent to the others, which need no
        run folder of their own."""
        state = None
        if self.parallel.is_main and self.resume and (
                ckpt := latest_checkpoint(self.run_dir)) is not None:
            self._check_compatible(ckpt.state)
            restore_checkpoint(ckpt, self.model, self.optimizer)
            state = ckpt.state
        if not self.parallel.distributed:
            return state
        history = state.pop("history", None) if state is not None else None
        shared = self.parallel.broadcast_json(state)
        if shared is not None and self.parallel.is_main:
            shared["history"] = history
        return shared

    @staticmethod
    def _compute_detail() -> str:
        """BLAS, and on the CPU which kernels do the rest of the step."""
        return f"{BLAS.detail}; {native.describe()}" if on_cpu() else BLAS.detail

    def _blas_thread_policy(self) -> BlasThreadPolicy | None:
        """OpenBLAS's threads: fixed by TSCU_BLAS_THREADS, else adapted to the load."""
        fixed, current = fixed_blas_threads(), blas_threads()
        if current is None:
            return None
        if fixed is not None:
            set_compute_threads(fixed)
            return None
        set_compute_threads(current)
        return BlasThreadPolicy(cores=os.cpu_count() or 1, current=current)

    def _check_compatible(self, state: dict[str, Any]) -> None:
        self._check_world(state)
        saved = state.get("fingerprint", {})
        mine = self._fingerprint()
        for key, value in mine.items():
            if saved.get(key) != value:
                raise TscuError(f"cannot resume {self.run_dir}: its {key} was "
                                f"{saved.get(key)!r}, the config now says {value!r}")

    def _check_world(self, state: dict[str, Any]) -> None:
        ranks, mine = state.get("fingerprint", {}).get("world_size", 1), self.parallel.world.size
        if ranks != mine:
            how = ("one process (no --launch)" if ranks == 1 else
                   f"{ranks} ranks (tscu train --launch {ranks}, or a hostfile of {ranks})")
            raise TscuError(f"cannot resume {self.run_dir}: it was trained by {how}, this "
                            f"launch has {mine}; resume it with the same number of ranks")

    def _fingerprint(self) -> dict[str, Any]:
        cfg = self.config
        return {"model": cfg.model.name, "dataset": self.data.meta.content_hash,
                "lora": self.adapter_config["lora_parameters"],
                "batch_size": cfg.train.batch_size, "seed": cfg.train.seed,
                "world_size": self.parallel.world.size}

