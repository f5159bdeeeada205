"""Benchmark: the same power budget under three policies on the simulated plant.

    duty-only         tscu.frequency_control = "off" (idle between steps, as before)
    frequency-first   tscu.frequency_control = "simulated", objective = "budget"
    energy-optimal    the same knob, objective = "energy", max_slowdown = 0.10

Each arm is the real T-SCU chain (`ThermalControl`: sampler, governor, frequency
policy, energy profile, duty cycle) on its own simulated plant (P = P_s + k f^3,
16 + 24 W flat out, 5 W idle; throughput proportional to the clock: see
`telemetry.plant`), in simulated time, so the figures do not depend on this
machine's speed or load. A step is `--tokens` tokens at `--rate` tokens/s at the
full clock; the model it trains is a small least-squares problem (numpy), the same
data and the same updates in every arm, so the loss per token must come out
identical: the policies change only time and joules.

The arms run in alternating matched windows (window k of each arm in turn); the
first `--warmup` steps of each arm are discarded (the governor settling, the
energy profile). Printed per arm: J/token, tokens/s, average W and loss per token,
then the ratios to duty-only, for each budget.

    python bench/energy_policies.py [--budgets 24 40] [--steps 600] [--window 20]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np

from tscu_tui.engine.config import load_config
from tscu_tui.engine.telemetry.simulated import SimulatedSource, ThermalPlant
from tscu_tui.engine.train.duty import DutyMeter
from tscu_tui.engine.train.thermal import ThermalControl

ARMS = {"duty-only": ['tscu.frequency_control="off"'],
        "frequency-first": ['tscu.frequency_control="simulated"', 'tscu.objective="budget"'],
        "energy-optimal": ['tscu.frequency_control="simulated"', 'tscu.objective="energy"',
                           "tscu.max_slowdown=0.10"]}


class SimClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Learner:
    """Least squares by SGD: the same draws and updates whatever the arm."""

    def __init__(self, seed: int = 0, dim: int = 16) -> None:
        rng = np.random.default_rng(seed)
        self.true_w = rng.normal(size=dim)
        self.w = np.zeros(dim)
        self.rng = np.random.default_rng(seed + 1)

    def step(self, tokens: int) -> float:
        x = self.rng.normal(size=(tokens, self.true_w.size))
        y = x @ self.true_w + 0.1 * self.rng.normal(size=tokens)
        err = x @ self.w - y
        self.w -= 0.01 * (x.T @ err) / tokens
        return float(np.mean(err ** 2))  # loss per token of this step


@dataclass
class Arm:
    name: str
    thermal: ThermalControl
    clock: SimClock
    duty: DutyMeter
    learner: Learner
    steps: int = 0
    measured: dict[str, float] = field(default_factory=lambda: {
        "joules": 0.0, "tokens": 0.0, "seconds": 0.0, "loss_sum": 0.0, "loss_n": 0.0})
    profile: object = None

    def window(self, n: int, tokens: int, rate: float, count: bool) -> None:
        e0, t0 = self.thermal.energy_j() or 0.0, self.clock.t
        done = 0
        for _ in range(n):
            loss = self.learner.step(tokens)
            compute_s = tokens / rate
            self.duty.busy(True)
            self.clock.t += compute_s
            self.duty.busy(False)
            self.steps += 1
            self.thermal.tokens = self.steps * tokens
            step = self.thermal.after_step(compute_s)
            self.duty.busy(True)
            self.clock.t += step.stretch_s  # the lower clock: the step took longer
            self.duty.busy(False)
            self.clock.t += step.idle_s
            done += tokens
            if count:
                self.measured["loss_sum"] += loss
                self.measured["loss_n"] += 1
        self.thermal.sampler.poll_once()
        if count:
            self.measured["joules"] += (self.thermal.energy_j() or 0.0) - e0
            self.measured["tokens"] += done
            self.measured["seconds"] += self.clock.t - t0


def make_arm(name: str, budget_w: float) -> Arm:
    config = load_config(None, ['telemetry.source="simulated"', "telemetry.interval_seconds=0.05",
                                f"tscu.power_budget_watts={budget_w}", *ARMS[name]])
    clock = SimClock()
    duty = DutyMeter(clock)
    source = SimulatedSource(ThermalPlant(), duty=duty.fraction, clock=clock)
    thermal = ThermalControl(config, on_warning=lambda m: None, source=source, duty=duty,
                             clock=clock)
    thermal.start(background=False)
    return Arm(name, thermal, clock, duty, Learner())


def run_budget(budget_w: float, steps: int, window: int, warmup: int, tokens: int,
               rate: float) -> dict[str, dict[str, float]]:
    arms = [make_arm(name, budget_w) for name in ARMS]
    try:
        for k in range(steps // window):
            for arm in arms:  # alternating matched windows
                arm.window(window, tokens, rate, count=(k * window) >= warmup)
    finally:
        for arm in arms:
            arm.profile = arm.thermal.frequency.summary() if arm.thermal.frequency else None
            arm.thermal.stop()
    out = {}
    for arm in arms:
        m = arm.measured
        out[arm.name] = {"j_per_token": m["joules"] / m["tokens"],
                         "tokens_per_s": m["tokens"] / m["seconds"],
                         "avg_w": m["joules"] / m["seconds"],
                         "loss_per_token": m["loss_sum"] / m["loss_n"],
                         "setting": arm.profile}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[24.0, 40.0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--rate", type=float, default=2048.0, help="tokens/s at the full clock")
    args = ap.parse_args()
    print("simulated plant (a model, not a measurement): P = 16 + 24 f^3 W busy, 5 W idle, "
          "throughput proportional to f; simulated time")
    for budget in args.budgets:
        res = run_budget(budget, args.steps, args.window, args.warmup, args.tokens, args.rate)
        base = res["duty-only"]
        print(f"\nbudget {budget:g} W ({args.steps} steps per arm, first {args.warmup} "
              f"discarded, windows of {args.window} alternating)")
        print(f"  {'arm':<16} {'J/token':>9} {'tokens/s':>9} {'avg W':>7} {'loss/token':>12}"
              f" {'dJ/token':>9} {'dtokens/s':>10}  setting")
        for name, r in res.items():
            setting = r["setting"] or {}
            chosen = (setting.get("energy_profile") or {}).get("chosen")
            where = (f"kept {chosen['speed']:.2f} f_max" if chosen else
                     f"ended at {setting['speed']:.2f} f_max" if setting else "full clock")
            print(f"  {name:<16} {r['j_per_token']:>9.5f} {r['tokens_per_s']:>9.1f} "
                  f"{r['avg_w']:>7.2f} {r['loss_per_token']:>12.6g} "
                  f"{r['j_per_token'] / base['j_per_token'] - 1:>+9.1%} "
                  f"{r['tokens_per_s'] / base['tokens_per_s'] - 1:>+10.1%}  {where}")


if __name__ == "__main__":
    main()
