"""The loop: a step at a time, reported, governed, evaluated and saved when due.

`Loop.run` opens the run (sensors on, the first evaluation, `RunStarted`, the
cool-down an emergency stop left owing), then steps until `train.max_steps` or a
stop. After each step: T-SCU's reading and decision (`ThermalControl`), the SCU's
lambda, one `StepEvent`, an evaluation and a checkpoint when due, and the idle the
duty cycle asks for. Commands (pause, resume, stop, save) pass the gate,
`drain_commands`, before each step and during every wait.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable

from tscu_tui.engine.events import Command, Event, RunStarted, StateEvent, StepEvent
from tscu_tui.engine.models.peak import peak_memory_bytes
from tscu_tui.engine.models.runtime import mx
from tscu_tui.engine.models.threads import BlasThreadPolicy, set_compute_threads
from tscu_tui.engine.train.evaluation import Evaluation
from tscu_tui.engine.train.objective import budget
from tscu_tui.engine.train.run_outputs import RunOutputs
from tscu_tui.engine.train.run_plan import RunPlan
from tscu_tui.engine.train.schedule import lr_at
from tscu_tui.engine.train.session import Session, compute_detail
from tscu_tui.engine.train.step import OptimizerStep, StepResult
from tscu_tui.engine.train.thermal import ThermalControl, ThermalStep


class _Stop(Exception):
    """Out of a wait (a command, an emergency) to the end of `Loop.run`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Loop:
    def __init__(self, session: Session, plan: RunPlan, step: OptimizerStep,
                 evaluation: Evaluation, thermal: ThermalControl, outputs: RunOutputs,
                 blas_policy: BlasThreadPolicy | None, commands: queue.Queue[Command],
                 emit: Callable[[Event], None], log: Callable[..., None]) -> None:
        self.session, self.plan, self.step = session, plan, step
        self.evaluation, self.thermal, self.outputs = evaluation, thermal, outputs
        self.blas_policy, self.commands, self.emit, self.log = blas_policy, commands, emit, log
        self._requests: set[Command] = set()  # STOP/SAVE, agreed over ranks each step
        self._step_s_ema: float | None = None
        self._wall_s_ema: float | None = None

    def run(self) -> str:
        """Train to train.max_steps; "completed", or why the run stopped before."""
        try:
            self._open()
            self._adapt_threads(first=True)
            while self.session.progress.step < self.session.config.train.max_steps:
                self.drain_commands()
                self._train_step()
        except _Stop as stop:
            return stop.reason
        return "completed"

    def _open(self) -> None:
        s, thermal = self.session, self.thermal
        cfg, p = s.config, s.progress
        thermal.start()
        initial = self.evaluation.measure() if p.step == 0 else None
        self._emit_started()
        thermal.announce()
        self.log(s.memory_plan.describe())
        cool = thermal.cooldown(lambda seconds: self.drain_commands(
            until=time.monotonic() + seconds))
        if s.parallel.agree_any(not cool):
            raise _Stop("emergency_stop")
        due = p.step % cfg.train.eval_steps == 0 or p.step >= cfg.train.max_steps
        if initial is None and due and p.last_eval_step < p.step:
            initial = self.evaluation.measure()  # a stop (emergency, sensor) came before
        if initial is not None:
            if (stop := self.evaluation.record(*initial)) is not None:
                raise _Stop(stop)
            if p.step == 0:
                self.evaluation.tests.run("base", 0)
        s.model.train()

    def _train_step(self) -> None:
        s, thermal = self.session, self.thermal
        cfg, p = s.config, s.progress
        thermal.duty.busy(True)
        started = time.perf_counter()
        lr = lr_at(p.step, cfg.train)
        if cfg.tscu.lr_coupling and thermal.governor.control_factor < 1.0:
            lr *= thermal.governor.control_factor  # documented opt-in, off by default
        accum = self._micro_batches()
        result = self.step(lr, accum, Command.STOP in self._requests,
                           Command.SAVE in self._requests)
        self._requests.clear()
        step_s = time.perf_counter() - started
        thermal.duty.busy(False)
        tokens = cfg.train.batch_size * (s.data.meta.block_size - 1) * accum
        p.step += 1
        p.tokens += tokens
        p.elapsed_s += step_s
        if result.skipped:
            self.log(f"non-finite loss at step {p.step}: update skipped", "warning")
        self._after_step(result, lr, step_s, tokens)
        if result.save:
            self.outputs.checkpoint("requested")
        if result.stop:
            raise _Stop("stopped")

    def _micro_batches(self) -> int:
        """Micro-batches this step: all of them, or with `tscu.adaptive_batch_sizing` a
        share that shrinks with the control factor (fewer tokens per step under
        thermal pressure, so each step computes for less time)."""
        accum = self.session.config.train.gradient_accumulation_steps
        if not self.session.config.tscu.adaptive_batch_sizing:
            return accum
        return max(1, round(accum * self.thermal.governor.control_factor))

    def _after_step(self, result: StepResult, lr: float, step_s: float, tokens: int) -> None:
        s = self.session
        cfg, p = s.config, s.progress
        self.thermal.tokens = p.tokens
        thermal = self._thermal_step(step_s)
        if thermal.stretch_s > 0:  # the simulated plant's lower clock: the step takes longer
            self.thermal.duty.busy(True)
            self.drain_commands(until=time.monotonic() + thermal.stretch_s)
            self.thermal.duty.busy(False)
        if s.parallel.liveness is not None:
            s.parallel.liveness.set_step(p.step)
        self._adapt_threads()
        skipped = result.skipped
        info = budget(math.nan if skipped else result.ce, result.sq, s.scale)
        scu = s.scu.after_step(info.s, p.step, skipped, info.data_bpt)
        # Recent speed, not the run average: the first step includes compilation. A
        # simulated clock's slower step (stretch_s) counts: it is the plant's speed.
        busy_s = step_s + thermal.stretch_s
        self._step_s_ema = busy_s if self._step_s_ema is None else (
            0.8 * self._step_s_ema + 0.2 * busy_s)
        rate = tokens / self._step_s_ema
        wall = step_s + thermal.stretch_s + thermal.idle_s
        self._wall_s_ema = wall if self._wall_s_ema is None else 0.8 * self._wall_s_ema + 0.2 * wall
        remaining = (cfg.train.max_steps - p.step) * self._wall_s_ema
        self.emit(StepEvent(
            step=p.step, max_steps=cfg.train.max_steps, loss=result.loss,
            data_bpt=info.data_bpt, param_bpt=info.param_bpt, s=info.s,
            s_smoothed=scu.s_smoothed, s_target=scu.target_s, lambda_reg=scu.lambda_reg,
            scu_p=scu.p_term, scu_i=scu.i_term, lr=lr, grad_norm=result.grad_norm,
            tokens=p.tokens, tokens_per_s=rate, step_s=step_s,
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
            self.outputs.checkpoint("emergency" if thermal.emergency else thermal.stop)
            raise _Stop(thermal.stop)
        done = p.step >= cfg.train.max_steps
        idle_s = thermal.idle_s
        if p.step % cfg.train.eval_steps == 0 or done:
            eval_s, stop = self.evaluation.evaluate()
            if stop is not None:
                raise _Stop(stop)
            # An evaluation computes too: it is part of this cycle, idled for like a step.
            idle_s += self.thermal.idle_after(eval_s)
        if p.step % cfg.train.save_steps == 0 and not done:
            self.outputs.checkpoint("periodic")
        if idle_s > 0 and not done:
            self.drain_commands(until=time.monotonic() + idle_s)  # duty cycling

    def _thermal_step(self, compute_s: float) -> ThermalStep:
        """This node's telemetry, combined with the other nodes' when distributed, and the
        governor's decision on it (the same on every rank)."""
        parallel = self.session.parallel
        if not parallel.distributed:
            return self.thermal.after_step(compute_s)
        nodes = parallel.agree_nodes(self.thermal.read(), compute_s)
        return self.thermal.decide(nodes.cluster, nodes.compute_s, nodes.nodes)

    def _adapt_threads(self, first: bool = False) -> None:
        """OpenBLAS's threads to the machine's load (models.threads): at a step's end, or
        before the first step from the load seen while the session was set up."""
        if self.blas_policy is None:
            return
        policy = self.blas_policy
        change = policy.before_first_step() if first else policy.after_step()
        if change is not None:
            set_compute_threads(change.threads)
            self.log(change.message)

    def drain_commands(self, until: float | None = None) -> None:
        """Handle queued commands; with `until`, idle until then (interruptibly).

        PAUSE blocks here until RESUME or STOP; STOP ends the loop.
        """
        paused = False
        step = self.session.progress.step
        while True:
            timeout = None if paused else (0.0 if until is None else until - time.monotonic())
            try:
                command = (self.commands.get(timeout=timeout) if timeout is None or timeout > 0
                           else self.commands.get_nowait())
            except queue.Empty:
                return
            if command in (Command.SAVE, Command.STOP) and self.session.parallel.distributed:
                self._requests.add(command)  # every rank acts on it after this step
                if command is Command.STOP and paused:
                    self.emit(StateEvent(state="running", step=step))
                    return  # the others wait in the next collective: stop there together
            elif command is Command.SAVE:
                self.outputs.checkpoint("requested")
            elif command is Command.STOP:
                raise _Stop("stopped")
            elif command is Command.PAUSE and not paused:
                paused = True
                self.emit(StateEvent(state="paused", step=step))
            elif command is Command.RESUME and paused:
                self.emit(StateEvent(state="running", step=step))
                paused = False

    def _emit_started(self) -> None:
        s = self.session
        cfg, meta, p = s.config, s.data.meta, s.progress
        s0 = self._current_s()
        self.emit(RunStarted(
            run_dir=str(s.run_dir), model=cfg.model.name, dataset=str(s.dataset_path),
            max_steps=cfg.train.max_steps, start_step=p.step,
            tokens_per_step=cfg.train.batch_size * cfg.train.gradient_accumulation_steps
            * (meta.block_size - 1),
            trainable_params=s.trainable, total_params=s.total,
            train_tokens=meta.split("train").tokens,
            validation_tokens=meta.split("validation").tokens, scu_mode=cfg.scu.mode,
            s_target=s.scu.target, s_initial=s0, blas=compute_detail(),
            device=str(mx.default_device()), telemetry=self.thermal.reason,
            world_size=s.parallel.world.size, backend=s.parallel.world.backend,
            steps_per_epoch=self.plan.steps_per_epoch, test_tokens=meta.split("test").tokens))
        if p.step == 0:
            self.log(f"plan: {self.plan.describe()}")
        target = s.scu.target
        if cfg.scu.mode != "pi" or p.step > 0:
            return
        if target is None:
            self.log("scu.target_s = auto: no penalty until validation BPT stops improving "
                     "(after warm-up); then S* = the smoothed S at the best evaluation")
        elif s0 > 0 and max(s0 / target, target / s0) > 10:
            self.log(f"S starts at {s0:.4f}, {'far above' if s0 > target else 'far below'} "
                     f"the target {target:g}: lambda may sit at a bound for long", "warning")

    def _current_s(self) -> float:
        """S at the current weights, with DataBPT from the last eval (else log2 vocab)."""
        s = self.session
        sq = s.scu.sum_sq(s.model).item()
        data_bpt = s.progress.last_bpt or math.log2(s.data.meta.vocab_size)
        return budget(data_bpt * math.log(2), sq, s.scale).s
