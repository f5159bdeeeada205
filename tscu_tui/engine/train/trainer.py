"""The training loop: LoRA on a 4-bit base under the SCU, in whatever thread runs it.

Reads top to bottom: set up (model, adapters, data, optimizer, controller,
resume), then one optimizer step at a time — commands, gradient accumulation,
update, SCU, events, evaluation, checkpoints — then the run's output files.
It never prints and never touches a UI: everything goes to the event sink.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_map

from tscu_tui.engine.config import Config, to_dict
from tscu_tui.engine.data import PreparedDataset
from tscu_tui.engine.distributed.liveness import Liveness, Loss
from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.events import (
    CheckpointEvent,
    Command,
    EvalEvent,
    Event,
    EventSink,
    LogEvent,
    RunFailed,
    RunFinished,
    RunStarted,
    StateEvent,
    StepEvent,
)
from tscu_tui.engine.fileio import atomic_write_json
from tscu_tui.engine.hub.model_card import hardware_facts, write_run_card
from tscu_tui.engine.models import native
from tscu_tui.engine.models.blas import blas_threads
from tscu_tui.engine.models.checkpointing import plan_memory
from tscu_tui.engine.models.cpu_fastpath import on_cpu, prepare_for_cpu
from tscu_tui.engine.models.gguf_cache import imported_model_dir, is_gguf_name
from tscu_tui.engine.models.load import load_model, model_source
from tscu_tui.engine.models.peak import peak_memory_bytes, peak_rss_bytes, reset_peaks
from tscu_tui.engine.models.runtime import BLAS, mx
from tscu_tui.engine.models.threads import (
    BlasThreadPolicy,
    fixed_blas_threads,
    set_compute_threads,
)
from tscu_tui.engine.report.reporters import Reporters, open_reporters
from tscu_tui.engine.runs.files import ADAPTER_WEIGHTS, CONFIG_FILE
from tscu_tui.engine.telemetry.base import SourceUnavailable
from tscu_tui.engine.telemetry.efficiency import event_fields
from tscu_tui.engine.train import lora
from tscu_tui.engine.train.batches import Batch, BlockSampler, SamplerState, SplitBlocks
from tscu_tui.engine.train.checkpoint import latest_checkpoint, restore_checkpoint, save_checkpoint
from tscu_tui.engine.train.device import backend_problem
from tscu_tui.engine.train.evaluate import HeldOut
from tscu_tui.engine.train.objective import budget, make_objective, penalty_scale
from tscu_tui.engine.train.outputs import remove_run_outputs, write_outputs
from tscu_tui.engine.train.pairing import adapter_digest, data_order_digest
from tscu_tui.engine.train.parallel import DataParallel, loss_reason
from tscu_tui.engine.train.recorder import RunRecorder
from tscu_tui.engine.train.run_plan import plan_run
from tscu_tui.engine.train.samples import TrainingSamples
from tscu_tui.engine.train.schedule import lr_at
from tscu_tui.engine.train.scu_run import RunScu
from tscu_tui.engine.train.selection import NO_TEST_AFTER, TestSplit, summarize_tests
from tscu_tui.engine.train.thermal import ThermalControl, ThermalStep

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


class Trainer:
    """One training run. Construct, then call `run()` in the thread that should do the work."""

    def __init__(self, config: Config, sink: EventSink | None = None,
                 commands: queue.Queue[Command] | None = None, *, resume: bool = False) -> None:
        self.config = config
        self.run_dir = Path(config.output.dir)
        self.dataset_path = Path(config.data.path)
        self.commands = commands or queue.Queue()
        self.resume = resume
        self._user_sink = sink
        self._recorder: RunRecorder | None = None
        self._reporters: Reporters | None = None  # report.to, on rank 0
        self._step_s_ema: float | None = None
        self._wall_s_ema: float | None = None
        self._last_accum = config.train.gradient_accumulation_steps
        self.thermal: ThermalControl | None = None
        self.progress = _Progress()
        self.parallel = DataParallel()  # one process until run() joins a distributed world
        self.liveness: Liveness | None = None
        self._emit_lock = threading.Lock()  # the watchdog's thread may report a lost rank
        self._failed = False
        self._requests: set[Command] = set()  # STOP/SAVE, agreed over ranks each step
        self._last_checkpoint: int | None = None

    # ------------------------------------------------------------------ events
    def emit(self, event: Event) -> None:
        with self._emit_lock:
            if isinstance(event, RunFailed):  # a run fails once (the watchdog may be first)
                if self._failed:
                    return
                self._failed = True
            if self._recorder is not None:
                self._recorder(event)
            if self._reporters is not None:
                self._reporters(event)
            if self._user_sink is not None:
                self._user_sink(event)
        self._report_notes()

    def _report_notes(self) -> None:
        """What the reporters said, logged once the event at hand is out (not inside it).
        Their info is not tied to a step, so the app and the live console show it."""
        for level, message in (self._reporters.take_notes() if self._reporters is not None
                               else ()):
            self.emit(LogEvent(level=level, message=message,
                               step=None if level == "info" else self.progress.step))

    def log(self, message: str, level: str = "info") -> None:
        self.emit(LogEvent(level=level, message=message, step=self.progress.step))

    # ------------------------------------------------------------------ entry
    def run(self) -> RunFinished | RunFailed:
        """Train to the end (or a stop); never raises for run failures, reports them."""
        started = time.perf_counter()
        try:
            self.parallel = DataParallel.join(self._rank_lost)
            self.liveness = self.parallel.liveness
            self.data = PreparedDataset.open(self.dataset_path)  # before any output exists
            # train.epochs and scu.mode = "auto" resolved on this data, before anything uses
            # them (the run folder's config records the resolved steps and mode).
            self.plan = plan_run(self.config, self.data.meta, self.dataset_path)
            self.config = self.plan.apply(self.config)
            if self.parallel.is_main:
                self._prepare_run_dir()
                if self.resume and (ckpt := latest_checkpoint(self.run_dir)) is not None:
                    self._check_world(ckpt.state)  # before minutes of model loading
            self._setup()
            try:
                self._loop()
                reason = "completed"
            except _Stop as stop:
                reason = stop.reason
            if reason not in NO_TEST_AFTER:
                p = self.progress
                self.tests.at_end(self.model, p.step, p.best_step, self._load_best)
            finished = self._finish(reason, time.perf_counter() - started)
            if self.liveness is not None:
                self.liveness.close()
            return finished
        except (TscuError, SourceUnavailable) as exc:
            return self._fail(str(exc))
        except Exception as exc:  # a bug or a library failure: one line out, details in the log
            if self._recorder is not None:
                self.log(traceback.format_exc().strip().replace("\n", " | "), "error")
            return self._fail(f"{type(exc).__name__}: {exc}".splitlines()[0])
        finally:
            if self.thermal is not None:
                self.thermal.stop()
            if self._reporters is not None:
                with self._emit_lock:
                    self._reporters.close()
                self._report_notes()
            if self._recorder is not None:
                with self._emit_lock:
                    self._recorder.close()

    def _rank_lost(self, loss: Loss) -> None:
        """The watchdog's verdict (on its thread): report it once; the command exits."""
        if self.thermal is not None:
            self.thermal.stop()  # e.g. the GPU's own power limit back before the exit
        saved = self._last_checkpoint  # rank 0's own; the others', as rank 0 said it
        if not self.parallel.is_main and self.liveness is not None:
            known = [c for c in (saved, self.liveness.checkpoint) if c is not None]
            saved = max(known, default=None)
        self.emit(RunFailed(step=self.progress.step, rank=loss.rank,
                            reason=loss_reason(loss, self.progress.step, saved),
                            reported_elsewhere=loss.reported))

    def _fail(self, reason: str) -> RunFailed:
        world = self.parallel.world
        if world.distributed and not world.is_main:
            reason = f"rank {world.rank}: {reason}"
        event = RunFailed(step=self.progress.step, reason=reason,
                          rank=world.rank if world.distributed else None)
        self.emit(event)
        if self.liveness is not None and not self._lost():
            self.liveness.fail(reason)  # the others stop without a line of their own
        return event

    def _lost(self) -> bool:
        return self.liveness is not None and self.liveness.loss is not None

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
        self.blas_policy = self._blas_thread_policy()  # from now: the load while we load
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

    def _adapt_threads(self, first: bool = False) -> None:
        """The thread policy's decision at a step's end (or before the first step)."""
        if self.blas_policy is None:
            return
        policy = self.blas_policy
        change = policy.before_first_step() if first else policy.after_step()
        if change is not None:
            set_compute_threads(change.threads)
            self.log(change.message)

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

    def _build_steps(self) -> None:
        """Compile the micro-step (loss + grads, accumulated) and the update."""
        model, optimizer = self.model, self.optimizer
        max_norm = self.config.train.max_grad_norm
        value_and_grad = nn.value_and_grad(model, make_objective(self.scale, self.scu.anchor))
        state = [model.state, mx.random.state]

        @partial(mx.compile, inputs=state, outputs=state)
        def micro_step(arrays: tuple[Any, ...], lambda_reg: mx.array, acc: Any) -> Any:
            (loss, ce, sq), grads = value_and_grad(model, Batch(*arrays), lambda_reg)
            if acc is not None:
                grads = tree_map(lambda a, b: a + b, acc, grads)
            return loss, ce, sq, grads

        update_state = [model.state, optimizer.state]

        @mx.compile
        def grad_norm(grads: Any, mean_scale: mx.array) -> mx.array:
            return mx.sqrt(sum(mx.sum(mx.square(g * mean_scale)) for g in _leaves(grads)))

        @partial(mx.compile, inputs=update_state, outputs=update_state)
        def update(grads: Any, mean_scale: mx.array) -> None:
            grads = tree_map(lambda g: g * mean_scale, grads)  # sum -> mean over micro-batches
            if max_norm > 0:
                grads, _ = optim.clip_grad_norm(grads, max_norm)
            optimizer.update(model, grads)

        self._micro_step, self._grad_norm, self._update = micro_step, grad_norm, update

    # ------------------------------------------------------------------ loop
    def _loop(self) -> None:
        cfg, p = self.config, self.progress
        assert self.thermal is not None
        self.thermal.start()
        initial = self._measure() if p.step == 0 else None
        self._emit_started()
        self.thermal.announce()
        self.log(self.memory_plan.describe())
        cool = self.thermal.cooldown(lambda s: self._drain_commands(until=time.monotonic() + s))
        if self.parallel.agree_any(not cool):
            raise _Stop("emergency_stop")
        due = p.step % cfg.train.eval_steps == 0 or p.step >= cfg.train.max_steps
        if initial is None and due and p.last_eval_step < p.step:
            initial = self._measure()  # a stop (emergency, sensor) came before this step's
        if initial is not None:
            self._record_eval(*initial)
            if p.step == 0:
                self.tests.run("base", 0)
        self.model.train()
        tokens_per_micro = cfg.train.batch_size * (self.data.meta.block_size - 1)
        self._adapt_threads(first=True)
        while p.step < cfg.train.max_steps:
            self._drain_commands()
            self.thermal.duty.busy(True)
            started = time.perf_counter()
            lr = lr_at(p.step, cfg.train)
            if cfg.tscu.lr_coupling and self.thermal.governor.control_factor < 1.0:
                lr *= self.thermal.governor.control_factor  # documented opt-in, off by default
            self.optimizer.learning_rate = mx.array(lr, dtype=mx.float32)
            lam = mx.array(self.scu.lambda_reg, dtype=mx.float32)
            # Dropout randomness is a function of (seed, step, rank): a resumed run draws
            # exactly what the uninterrupted one would have, with no RNG state saved.
            mx.random.seed(cfg.train.seed * 1_000_003 + p.step
                           + self.parallel.world.rank * 7_919_000_003)
            loss_sum, ce_sum, sq, grads = 0.0, 0.0, 0.0, None
            accum = self._micro_batches()
            for _ in range(accum):
                indices = self.sampler.next_indices()
                rows = self.parallel.shard(indices)  # this rank's share
                batch = self.train_blocks.batch(rows, self.parallel.denominator(
                    self.train_blocks.trained(indices)) if self.parallel.distributed else None)
                loss, ce, sq_arr, grads = self._micro_step(batch.arrays, lam, grads)
                mx.eval(loss, ce, sq_arr, grads)
                loss_sum, ce_sum, sq = loss_sum + loss.item(), ce_sum + ce.item(), sq_arr.item()
            grads = self.parallel.average_gradients(grads)
            agreed = self.parallel.agree_step(loss_sum / accum, ce_sum / accum, sq,
                                              self.scu.lambda_reg, Command.STOP in self._requests,
                                              Command.SAVE in self._requests)
            self._requests.clear()
            loss_mean, ce_mean, sq = agreed.loss, agreed.ce, agreed.sq
            skipped = not (math.isfinite(loss_mean) and math.isfinite(sq))
            mean_scale = mx.array(1.0 / accum, dtype=mx.float32)
            # The norm is checked before any update: inf gradients under a finite loss
            # would turn into NaN weights through clipping (inf * 0).
            grad_norm = math.nan if skipped else self._grad_norm(grads, mean_scale).item()
            skipped = skipped or not math.isfinite(grad_norm)
            if not skipped:
                self._update(grads, mean_scale)
                mx.eval(self.model.parameters(), self.optimizer.state)
            step_s = time.perf_counter() - started
            self.thermal.duty.busy(False)
            p.step += 1
            p.tokens += tokens_per_micro * accum
            self._last_accum = accum
            p.elapsed_s += step_s
            if skipped:
                self.log(f"non-finite loss at step {p.step}: update skipped", "warning")
            self._after_step(loss_mean, ce_mean, sq, lr, grad_norm, step_s, skipped)
            if agreed.save:
                self._checkpoint("requested")
            if agreed.stop:
                raise _Stop("stopped")

    def _micro_batches(self) -> int:
        """Micro-batches this step: all of them, or with `tscu.adaptive_batch_sizing` a
        share that shrinks with the control factor (fewer tokens per step under
        thermal pressure, so each step computes for less time)."""
        accum = self.config.train.gradient_accumulation_steps
        if not self.config.tscu.adaptive_batch_sizing or self.thermal is None:
            return accum
        return max(1, round(accum * self.thermal.governor.control_factor))

    def _after_step(self, loss: float, ce: float, sq: float, lr: float, grad_norm: float,
                    step_s: float, skipped: bool) -> None:
        cfg, p = self.config, self.progress
        self.thermal.tokens = p.tokens  # type: ignore[union-attr]
        thermal = self._thermal_step(step_s)
        if thermal.stretch_s > 0:  # the simulated plant's lower clock: the step takes longer
            self.thermal.duty.busy(True)  # type: ignore[union-attr]
            self._drain_commands(until=time.monotonic() + thermal.stretch_s)
            self.thermal.duty.busy(False)  # type: ignore[union-attr]
        if self.liveness is not None:
            self.liveness.set_step(p.step)
        self._adapt_threads()
        info = budget(ce, sq, self.scale) if not skipped else budget(math.nan, sq, self.scale)
        scu = self.scu.after_step(info.s, p.step, skipped, info.data_bpt)
        # Recent speed, not the run average: the first step includes compilation. A
        # simulated clock's slower step (stretch_s) counts: it is the plant's speed.
        busy_s = step_s + thermal.stretch_s
        self._step_s_ema = busy_s if self._step_s_ema is None else (
            0.8 * self._step_s_ema + 0.2 * busy_s)
        tokens_per_step = cfg.train.batch_size * self._last_accum * (
            self.data.meta.block_size - 1)
        rate = tokens_per_step / self._step_s_ema
        wall = step_s + thermal.stretch_s + thermal.idle_s
        self._wall_s_ema = wall if self._wall_s_ema is None else 0.8 * self._wall_s_ema + 0.2 * wall
        remaining = (cfg.train.max_steps - p.step) * self._wall_s_ema
        self.emit(StepEvent(
            step=p.step, max_steps=cfg.train.max_steps, loss=loss, data_bpt=info.data_bpt,
            param_bpt=info.param_bpt, s=info.s, s_smoothed=scu.s_smoothed,
            s_target=scu.target_s, lambda_reg=scu.lambda_reg, scu_p=scu.p_term,
            scu_i=scu.i_term, lr=lr,
            grad_norm=grad_norm, tokens=p.tokens, tokens_per_s=rate, step_s=step_s,
            elapsed_s=p.elapsed_s, eta_s=remaining, skipped=skipped,
            power_w=thermal.power_w, temp_c=thermal.temp_c,
            control_factor=thermal.control_factor, idle_s=thermal.idle_s,
            energy_j=thermal.energy_j, telemetry_source=thermal.source,
            telemetry_kind=thermal.kind, telemetry_status=thermal.sensor,
            over_budget=thermal.over_budget,
            peak_memory_bytes=peak_memory_bytes(),
            node_power_w=thermal.node_power_w, node_temp_c=thermal.node_temp_c,
            node_energy_j=thermal.node_energy_j, frequency=thermal.frequency))
        if thermal.stop is not None:  # the emergency temperature, or telemetry lost
            self.log(thermal.stop_message, "error")
            self._checkpoint("emergency" if thermal.emergency else thermal.stop)
            raise _Stop(thermal.stop)
        done = p.step >= cfg.train.max_steps
        idle_s = thermal.idle_s
        if p.step % cfg.train.eval_steps == 0 or done:
            # An evaluation computes too: it is part of this cycle, idled for like a step.
            idle_s += self.thermal.idle_after(self._evaluate())
        if p.step % cfg.train.save_steps == 0 and not done:
            self._checkpoint("periodic")
        if idle_s > 0 and not done:
            self._drain_commands(until=time.monotonic() + idle_s)  # duty cycling

    def _thermal_step(self, compute_s: float) -> ThermalStep:
        """This node's telemetry, combined with the other nodes' when distributed, and the
        governor's decision on it (the same on every rank)."""
        assert self.thermal is not None
        if not self.parallel.distributed:
            return self.thermal.after_step(compute_s)
        nodes = self.parallel.agree_nodes(self.thermal.read(), compute_s)
        return self.thermal.decide(nodes.cluster, nodes.compute_s, nodes.nodes)

    def _measure(self) -> tuple[HeldOut, float]:
        result, seconds = self._heldout("validation")
        self.progress.last_bpt = result.bpt
        return result, seconds

    def _heldout(self, split: str) -> tuple[HeldOut, float]:
        """Held-out BPT of `split` (validation or test) and the seconds it took."""
        assert self.thermal is not None
        self.thermal.duty.busy(True)
        started = time.perf_counter()
        result = self.parallel.heldout(self.model, self.data, split,
                                       self.config.train.batch_size,
                                       self.config.train.eval_batches)
        self.thermal.duty.busy(False)
        return result, time.perf_counter() - started

    def _load_best(self) -> bool:
        """best/ into the model on every rank; False (and a warning) when it is missing."""
        file = self.run_dir / "best" / ADAPTER_WEIGHTS
        found = file.is_file() if self.parallel.is_main else None
        if self.parallel.distributed:
            found = self.parallel.broadcast_json(found)
        if not found:
            self.log(f"{file} is missing: the best-validation adapter's test BPT is not "
                     "measured", "warning")
            return False
        if self.parallel.is_main:
            lora.load_adapter_weights(self.model, file)
        self.parallel.sync_weights(self.model)
        return True

    def _evaluate(self) -> float:
        """Evaluate and record; returns the seconds it computed."""
        result, eval_s = self._measure()
        self._record_eval(result, eval_s)
        return eval_s

    def _record_eval(self, result: HeldOut, eval_s: float) -> None:
        cfg, p = self.config, self.progress
        p.last_eval_step = p.step
        is_best = result.bpt < p.best_bpt
        if is_best:
            p.best_bpt, p.best_step, p.evals_without_best = result.bpt, p.step, 0
            if p.step > 0 and self.parallel.is_main:
                lora.save_adapters(self.run_dir / "best", self.model, self.adapter_config)
        elif p.step > 0:
            p.evals_without_best += 1
        param_bpt = budget(0.0, self.scu.sum_sq(self.model).item(), self.scale).param_bpt
        assert self.thermal is not None
        eff = self.thermal.on_eval(result.bpt, param_bpt, p.tokens, self.n_tokens,
                                   mdl=cfg.scu.mode != "off")
        resolved = self.scu.after_eval(p.step, result.bpt, param_bpt)
        if resolved is not None:
            self.log(f"scu.target_s = auto resolved to {resolved.target_s:.5g}: S at step "
                     f"{resolved.best_step}, the best validation evaluation; the controller "
                     f"holds it from here, lambda from {resolved.lambda_start:.4g}")
        self.emit(EvalEvent(
            step=p.step, heldout_bpt=result.bpt, perplexity=result.perplexity,
            best_bpt=p.best_bpt, is_best=is_best, eval_s=eval_s, param_bpt=param_bpt,
            energy_j=self.thermal.energy_j(), **event_fields(eff)))
        self._sample()
        if eff is not None and eff.newly_diminishing:
            target = cfg.tscu.target_efficiency_bits_per_joule
            message = (f"diminishing returns: marginal information per joule below {target:g} "
                       f"bits/J for {cfg.tscu.efficiency_patience} evaluations")
            if cfg.tscu.efficiency_action == "stop":
                self.log(message + ": stopping", "warning")
                raise _Stop("diminishing_returns")
            self.log(message, "warning")
        patience = cfg.train.early_stopping_patience
        if patience and p.evals_without_best >= patience:
            self.log(f"no better held-out BPT in {patience} evaluations: stopping early")
            raise _Stop("early_stopping")

    def _sample(self) -> None:
        """The model's answers to the held-out prompts (train/samples.py)."""
        if self.samples is None or self.thermal is None:
            return
        self.thermal.duty.busy(True)
        event = self.samples(self.model, self.progress.step)
        self.thermal.duty.busy(False)
        if event is not None:
            self.emit(event)

    def _drain_commands(self, until: float | None = None) -> None:
        """Handle queued commands; with `until`, idle until then (interruptibly).

        PAUSE blocks here until RESUME or STOP; STOP raises _Stop.
        """
        paused = False
        while True:
            timeout = None if paused else (0.0 if until is None else until - time.monotonic())
            try:
                command = (self.commands.get(timeout=timeout) if timeout is None or timeout > 0
                           else self.commands.get_nowait())
            except queue.Empty:
                return
            if command in (Command.SAVE, Command.STOP) and self.parallel.distributed:
                self._requests.add(command)  # every rank acts on it after this step
                if command is Command.STOP and paused:
                    self.emit(StateEvent(state="running", step=self.progress.step))
                    return  # the others wait in the next collective: stop there together
            elif command is Command.SAVE:
                self._checkpoint("requested")
            elif command is Command.STOP:
                raise _Stop("stopped")
            elif command is Command.PAUSE and not paused:
                paused = True
                self.emit(StateEvent(state="paused", step=self.progress.step))
            elif command is Command.RESUME and paused:
                self.emit(StateEvent(state="running", step=self.progress.step))
                paused = False

    # ------------------------------------------------------------------ saving
    def _checkpoint(self, reason: str) -> None:
        p = self.progress
        if not self.parallel.is_main:
            return  # the ranks hold the same state; rank 0 writes it and tells them
        assert self._recorder is not None
        state = {"tokens": p.tokens, "elapsed_s": p.elapsed_s, "best_bpt": p.best_bpt,
                 "best_step": p.best_step,
                 "evals_without_best": p.evals_without_best, "last_bpt": p.last_bpt,
                 "last_eval_step": p.last_eval_step,
                 "sampler": {"epoch": self.sampler.state.epoch,
                             "position": self.sampler.state.position},
                 "scu": self.scu.state_dict(), "lambda_reg": self.scu.lambda_reg,
                 "fingerprint": self._fingerprint(), "history": self._recorder.history,
                 "thermal": self.thermal.state_dict() if self.thermal else {}}
        path = save_checkpoint(self.run_dir, p.step, self.model, self.optimizer, state,
                               KEEP_CHECKPOINTS)
        self._last_checkpoint = p.step  # only once it is complete and on disk
        if self.liveness is not None:
            self.liveness.checkpointed(p.step)
        self.emit(CheckpointEvent(step=p.step, path=str(path), reason=reason))

    def _emit_started(self) -> None:
        cfg, meta = self.config, self.data.meta
        s0 = self._current_s()
        self.emit(RunStarted(
            run_dir=str(self.run_dir), model=cfg.model.name, dataset=str(self.dataset_path),
            max_steps=cfg.train.max_steps, start_step=self.progress.step,
            tokens_per_step=cfg.train.batch_size * cfg.train.gradient_accumulation_steps
            * (meta.block_size - 1),
            trainable_params=self.trainable, total_params=self.total,
            train_tokens=meta.split("train").tokens,
            validation_tokens=meta.split("validation").tokens, scu_mode=cfg.scu.mode,
            s_target=self.scu.target, s_initial=s0, blas=self._compute_detail(),
            device=str(mx.default_device()),
            telemetry=self.thermal.reason if self.thermal else "",
            world_size=self.parallel.world.size, backend=self.parallel.world.backend,
            steps_per_epoch=self.plan.steps_per_epoch, test_tokens=meta.split("test").tokens))
        if self.progress.step == 0:
            self.log(f"plan: {self.plan.describe()}")
        target = self.scu.target
        if cfg.scu.mode != "pi" or self.progress.step > 0:
            return
        if target is None:
            self.log("scu.target_s = auto: no penalty until validation BPT stops improving "
                     "(after warm-up); then S* = the smoothed S at the best evaluation")
        elif s0 > 0 and max(s0 / target, target / s0) > 10:
            self.log(f"S starts at {s0:.4f}, {'far above' if s0 > target else 'far below'} "
                     f"the target {target:g}: lambda may sit at a bound for long", "warning")

    def _current_s(self) -> float:
        """S at the current weights, with DataBPT from the last eval (else log2 vocab)."""
        sq = self.scu.sum_sq(self.model).item()
        data_bpt = self.progress.last_bpt or math.log2(self.data.meta.vocab_size)
        return budget(data_bpt * math.log(2), sq, self.scale).s

    def _finish(self, reason: str, wall_s: float) -> RunFinished:
        cfg, p = self.config, self.progress
        if not self.parallel.is_main:  # nothing to write: rank 0 does
            return RunFinished(step=p.step, reason=reason, best_bpt=None, final_bpt=p.last_bpt,
                               duration_s=wall_s, run_dir=str(self.run_dir))
        assert self._recorder is not None
        lora.save_adapters(self.run_dir, self.model, self.adapter_config)
        if p.step > 0:
            self._checkpoint("stop" if reason == "stopped" else "final")
        summary = {
            "status": reason, "steps": p.step, "max_steps": cfg.train.max_steps,
            **self.plan.summary(), "best_step": p.best_step, "pairing": self.pairing,
            "test": summarize_tests(self.tests.recorded(),
                                    self.data.meta.test_source,
                                    self.data.meta.split("test").tokens),
            "tokens": p.tokens, "train_seconds": p.elapsed_s, "wall_seconds": wall_s,
            "trainable_parameters": self.trainable, "total_parameters": self.total,
            "best_heldout_bpt": p.best_bpt if math.isfinite(p.best_bpt) else None,
            "final_heldout_bpt": p.last_bpt, "final_lambda": self.scu.lambda_reg,
            "target_s": self.scu.target, "prior_center": cfg.scu.prior_center,
            "base_model": cfg.model.name, "base_model_source": model_source(cfg.model.name),
            "dataset": str(self.dataset_path),
            "dataset_hash": self.data.meta.content_hash, "blas": BLAS.detail,
            "data": self.data.meta.training_facts(),
            "cpu_kernels": native.describe() if on_cpu() else None,
            "device": str(mx.default_device()), "hardware": hardware_facts(),
            "peak_memory_bytes": peak_memory_bytes(), "peak_rss_bytes": peak_rss_bytes(),
            "grad_checkpoint": self.memory_plan.grad_checkpoint,
            "loss_chunk_tokens": self.memory_plan.loss_chunk_tokens,
            "world_size": self.parallel.world.size, "backend": self.parallel.world.backend,
            **(self.thermal.summary() if self.thermal else {}),
        }
        args = {"train": to_dict(cfg)["train"], "lora": self.adapter_config,
                "scu": to_dict(cfg)["scu"], "penalty_scale": self.scale,
                "resumed": self.resume}
        write_outputs(self.run_dir, cfg, self._recorder.history, summary, args)
        self._write_curves()
        self._write_card()
        event = RunFinished(step=p.step, reason=reason,
                            best_bpt=summary["best_heldout_bpt"], final_bpt=p.last_bpt,
                            duration_s=wall_s, run_dir=str(self.run_dir))
        self.emit(event)
        return event

    def _write_curves(self) -> None:
        """training_curves.png; a picture that fails must not fail a finished run."""
        from tscu_tui.engine.train.plots import write_curves

        assert self._recorder is not None
        try:
            write_curves(self.run_dir, self._recorder.history, self.config)
        except Exception as exc:
            self.log(f"training curves not drawn: {type(exc).__name__}: {exc}", "warning")

    def _write_card(self) -> None:
        """README.md for the run; a card that fails must not fail a finished run."""
        try:
            write_run_card(self.run_dir)
        except Exception as exc:
            self.log(f"model card not written: {type(exc).__name__}: {exc}", "warning")


def _leaves(tree: Any) -> list[mx.array]:
    from mlx.utils import tree_flatten

    return [v for _, v in tree_flatten(tree)]
