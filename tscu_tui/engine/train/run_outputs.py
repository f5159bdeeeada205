"""What a run saves: checkpoints with their state, and at the end the adapters, the
summary and the other JSON files (`outputs`), the curves picture and the model card.

Rank 0 alone writes; the other ranks hold the same state and are told of each
checkpoint (`distributed.liveness`), so a lost rank's report names the last one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tscu_tui.engine.config import to_dict
from tscu_tui.engine.events import CheckpointEvent, Event, RunFinished
from tscu_tui.engine.hub.model_card import hardware_facts, write_run_card
from tscu_tui.engine.models import native
from tscu_tui.engine.models.cpu_fastpath import on_cpu
from tscu_tui.engine.models.load import model_source
from tscu_tui.engine.models.peak import peak_memory_bytes, peak_rss_bytes
from tscu_tui.engine.models.runtime import BLAS, mx
from tscu_tui.engine.train import lora
from tscu_tui.engine.train.checkpoint import save_checkpoint
from tscu_tui.engine.train.outputs import write_outputs
from tscu_tui.engine.train.recorder import RunRecorder
from tscu_tui.engine.train.run_plan import RunPlan
from tscu_tui.engine.train.selection import TestSplit, summarize_tests
from tscu_tui.engine.train.session import Session
from tscu_tui.engine.train.thermal import ThermalControl

KEEP_CHECKPOINTS = 2


class RunOutputs:
    def __init__(self, session: Session, plan: RunPlan, thermal: ThermalControl,
                 tests: TestSplit, recorder: RunRecorder | None,
                 emit: Callable[[Event], None], log: Callable[..., None]) -> None:
        """`recorder` is rank 0's (None on the others): its history goes into each file."""
        self.session, self.plan, self.thermal, self.tests = session, plan, thermal, tests
        self.recorder, self.emit, self.log = recorder, emit, log
        # the last complete checkpoint on disk (a lost rank's report names it)
        step = session.saved.get("step")
        self.last_checkpoint: int | None = None if step is None else int(step)

    def checkpoint(self, reason: str) -> None:
        s = self.session
        p = s.progress
        if not s.parallel.is_main:
            return  # the ranks hold the same state; rank 0 writes it and tells them
        assert self.recorder is not None
        state = {"tokens": p.tokens, "elapsed_s": p.elapsed_s, "best_bpt": p.best_bpt,
                 "best_step": p.best_step,
                 "evals_without_best": p.evals_without_best, "last_bpt": p.last_bpt,
                 "last_eval_step": p.last_eval_step,
                 "sampler": {"epoch": s.sampler.state.epoch,
                             "position": s.sampler.state.position},
                 "scu": s.scu.state_dict(), "lambda_reg": s.scu.lambda_reg,
                 "fingerprint": s.fingerprint(), "history": self.recorder.history,
                 "thermal": self.thermal.state_dict()}
        path = save_checkpoint(s.run_dir, p.step, s.model, s.optimizer, state,
                               KEEP_CHECKPOINTS)
        self.last_checkpoint = p.step  # only once it is complete and on disk
        if s.parallel.liveness is not None:
            s.parallel.liveness.checkpointed(p.step)
        self.emit(CheckpointEvent(step=p.step, path=str(path), reason=reason))

    def finish(self, reason: str, wall_s: float) -> RunFinished:
        """The run's files (rank 0), then RunFinished."""
        s = self.session
        p = s.progress
        if not s.parallel.is_main:  # nothing to write: rank 0 does
            return RunFinished(step=p.step, reason=reason, best_bpt=None, final_bpt=p.last_bpt,
                               duration_s=wall_s, run_dir=str(s.run_dir))
        assert self.recorder is not None
        lora.save_adapters(s.run_dir, s.model, s.adapter_config)
        if p.step > 0:
            self.checkpoint("stop" if reason == "stopped" else "final")
        summary = self._summary(reason, wall_s)
        cfg = s.config
        args = {"train": to_dict(cfg)["train"], "lora": s.adapter_config,
                "scu": to_dict(cfg)["scu"], "penalty_scale": s.scale,
                "resumed": s.resumed}
        write_outputs(s.run_dir, cfg, self.recorder.history, summary, args)
        self._write_curves()
        self._write_card()
        event = RunFinished(step=p.step, reason=reason,
                            best_bpt=summary["best_heldout_bpt"], final_bpt=p.last_bpt,
                            duration_s=wall_s, run_dir=str(s.run_dir))
        self.emit(event)
        return event

    def _summary(self, reason: str, wall_s: float) -> dict[str, Any]:
        s = self.session
        cfg, p, meta, world = s.config, s.progress, s.data.meta, s.parallel.world
        return {
            "status": reason, "steps": p.step, "max_steps": cfg.train.max_steps,
            **self.plan.summary(), "best_step": p.best_step, "pairing": s.pairing,
            "test": summarize_tests(self.tests.recorded(), meta.test_source,
                                    meta.split("test").tokens),
            "tokens": p.tokens, "train_seconds": p.elapsed_s, "wall_seconds": wall_s,
            "trainable_parameters": s.trainable, "total_parameters": s.total,
            "best_heldout_bpt": p.best_bpt if math.isfinite(p.best_bpt) else None,
            "final_heldout_bpt": p.last_bpt, "final_lambda": s.scu.lambda_reg,
            "target_s": s.scu.target, "prior_center": cfg.scu.prior_center,
            "base_model": cfg.model.name, "base_model_source": model_source(cfg.model.name),
            "dataset": str(s.dataset_path),
            "dataset_hash": meta.content_hash, "blas": BLAS.detail,
            "data": meta.training_facts(),
            "cpu_kernels": native.describe() if on_cpu() else None,
            "device": str(mx.default_device()), "hardware": hardware_facts(),
            "peak_memory_bytes": peak_memory_bytes(), "peak_rss_bytes": peak_rss_bytes(),
            "grad_checkpoint": s.memory_plan.grad_checkpoint,
            "loss_chunk_tokens": s.memory_plan.loss_chunk_tokens,
            "world_size": world.size, "backend": world.backend,
            **self.thermal.summary(),
        }

    def _write_curves(self) -> None:
        """training_curves.png; a picture that fails must not fail a finished run."""
        from tscu_tui.engine.train.plots import write_curves

        assert self.recorder is not None
        try:
            write_curves(self.session.run_dir, self.recorder.history, self.session.config)
        except Exception as exc:
            self.log(f"training curves not drawn: {type(exc).__name__}: {exc}", "warning")

    def _write_card(self) -> None:
        """README.md for the run; a card that fails must not fail a finished run."""
        try:
            write_run_card(self.session.run_dir)
        except Exception as exc:
            self.log(f"model card not written: {type(exc).__name__}: {exc}", "warning")
