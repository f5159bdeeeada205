"""The loop: a step at a time, reported, governed, evaluated and saved when due."""

from __future__ import annotations

import math
import queue
import time

from tscu_tui.engine.events import (
    Command,
    RunStarted,
    StateEvent,
    StepEvent,
)
from tscu_tui.engine.models.peak import peak_memory_bytes
from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.models.threads import (
    set_compute_threads,
)
from tscu_tui.engine.train.objective import budget
from tscu_tui.engine.train.schedule import lr_at
from tscu_tui.engine.train.session import _Stop
from tscu_tui.engine.train.thermal import ThermalStep


class TrainingLoop:
    """Trainer's loop (a mixin until it is one object)."""

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
        change = self.blas_policy.after_step() if self.blas_policy is not None else None
        if change is not None:
            set_compute_threads(change.threads)
            self.log(change.message)
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

