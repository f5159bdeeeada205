"""What a run saves: checkpoints with their state, the summary, curves and model card."""

from __future__ import annotations

import math

from tscu_tui.engine.config import to_dict
from tscu_tui.engine.events import (
    CheckpointEvent,
    RunFinished,
)
from tscu_tui.engine.hub.model_card import hardware_facts, write_run_card
from tscu_tui.engine.models import native
from tscu_tui.engine.models.cpu_fastpath import on_cpu
from tscu_tui.engine.models.load import model_source
from tscu_tui.engine.models.peak import peak_memory_bytes, peak_rss_bytes
from tscu_tui.engine.models.runtime import BLAS, mx
from tscu_tui.engine.train import lora
from tscu_tui.engine.train.checkpoint import save_checkpoint
from tscu_tui.engine.train.outputs import write_outputs
from tscu_tui.engine.train.selection import summarize_tests
from tscu_tui.engine.train.session import KEEP_CHECKPOINTS


class RunOutputs:
    """Trainer's saving (a mixin until it is one object)."""

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

