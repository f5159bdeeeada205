"""An ablation's numbers, from its finished runs: per arm at the final step and at the
best-validation step, on the test split, and paired against `off` seed by seed.

The metric is test BPT when every run measured a test split, else validation BPT
(said plainly in the report: validation is the split the best step was selected on,
so "at best validation" is then optimistic). Each arm's runs are paired with `off`'s
run of the same seed; the pairing holds only when both recorded the same initial
adapter and data order (pairing.py), and a pair that does not is left out and named.
A paired difference is "beyond noise" when its mean exceeds twice its standard error
(sd / sqrt(n)): with three seeds a rough screen, not a significance test.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from tscu_tui.engine.config import Config
from tscu_tui.engine.fileio import read_json_object
from tscu_tui.engine.runs.files import SUMMARY_FILE
from tscu_tui.engine.runs.reader import load_run
from tscu_tui.engine.train.ablation import PlannedRun

#: (name, the arm's reading, off's reading) of each paired comparison.
COMPARISONS = (("final_vs_off_final", "final", "final"),
               ("final_vs_off_best", "final", "best"),
               ("best_vs_off_best", "best", "best"))


def _at_bound_share(steps: list[dict[str, Any]], config: Config) -> float | None:
    """Share of controlled steps (after warm-up, or after "auto" resolved) with lambda at
    lambda_min or lambda_max (pi only)."""
    scu = config.scu
    if not steps or scu.mode not in ("pi", "auto"):
        return None
    if scu.target_s == "auto":
        after = [s["lambda_reg"] for s in steps if s.get("s_target") is not None]
    else:
        after = [s["lambda_reg"] for s in steps if s["step"] > config.train.warmup_steps]
    if not after:
        return None
    low, high = scu.lambda_min * (1 + 1e-6), scu.lambda_max * (1 - 1e-6)
    return sum(1 for lam in after if lam <= low or lam >= high) / len(after)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)


def run_result(run: PlannedRun) -> dict[str, Any]:
    detail = load_run(run.run_dir)
    steps, evals = detail.history["steps"], detail.history["evals"]
    raw = read_json_object(run.run_dir / SUMMARY_FILE) or {}
    test = raw.get("test") or {}
    targets = [s["s_target"] for s in steps if s.get("s_target") is not None]
    best_step = raw.get("best_step")
    return {
        "seed": run.seed, "run_dir": str(run.run_dir), "status": detail.summary.status,
        "heldout_bpt": detail.summary.heldout_bpt_final,
        "best_bpt": detail.summary.heldout_bpt_best, "best_step": best_step,
        "base_bpt": evals[0]["heldout_bpt"] if evals and evals[0]["step"] == 0 else None,
        "test_final_bpt": test.get("final_bpt"), "test_best_bpt": test.get("best_bpt"),
        "test_base_bpt": test.get("base_bpt"),
        "pairing": raw.get("pairing"),
        "lambda_at_bound_share": _at_bound_share(steps, run.config),
        "lambda_final": steps[-1]["lambda_reg"] if steps else None,
        "target_s": targets[-1] if targets else None,
        "energy_j": detail.summary.energy_j, "wall_s": detail.summary.duration_s,
        "curve": [[e["step"], e["heldout_bpt"]] for e in evals],
    }


def _readings(result: dict[str, Any], on_test: bool) -> dict[str, float | None]:
    if on_test:
        return {"final": result["test_final_bpt"], "best": result["test_best_bpt"]}
    return {"final": result["heldout_bpt"], "best": result["best_bpt"]}


def paired(diffs: list[float]) -> dict[str, Any]:
    """Mean and sd of per-seed differences, and whether the mean is beyond 2 SE."""
    n = len(diffs)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "se": None, "beyond_noise": None}
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs) if n > 1 else None
    se = sd / math.sqrt(n) if sd is not None else None
    beyond = None if se is None else abs(mean) > 2 * se
    return {"n": n, "mean": mean, "sd": sd, "se": se, "beyond_noise": beyond,
            "diffs": diffs}


def _curve(results: list[dict[str, Any]]) -> list[dict[str, float]]:
    by_step: dict[int, list[float]] = {}
    for result in results:
        for step, bpt in result["curve"]:
            by_step.setdefault(step, []).append(bpt)
    return [{"step": step, "mean": statistics.fmean(v), "std": _std(v) or 0.0,
             "min": min(v), "max": max(v), "n": len(v)}
            for step, v in sorted(by_step.items()) if len(v) == len(results)]


def _pairing_problems(arms: dict[str, list[tuple[PlannedRun, dict[str, Any]]]]
                      ) -> dict[tuple[str, int], str]:
    """(arm, seed) -> why that run is not paired with the other arms' run of its seed."""
    first: dict[int, tuple[str, dict[str, Any] | None]] = {}
    problems = {}
    for spec, pairs in arms.items():
        for run, result in pairs:
            mine = result["pairing"]
            if run.seed not in first:
                first[run.seed] = (spec, mine)
                continue
            other_spec, theirs = first[run.seed]
            if mine is None or theirs is None:
                problems[(spec, run.seed)] = "no pairing digests recorded"
            else:
                for key in ("initial_adapter", "data_order"):
                    if mine.get(key) != theirs.get(key):
                        what = key.replace("_", " ")
                        problems[(spec, run.seed)] = (f"seed {run.seed}: its {what} differs "
                                                      f"from {other_spec}'s")
    return problems


def summarize(runs: list[PlannedRun], meta: dict[str, Any]) -> dict[str, Any]:
    """ablation.json's content from the finished runs (arms in the order given)."""
    arms: dict[str, list[tuple[PlannedRun, dict[str, Any]]]] = {}
    for run in runs:
        arms.setdefault(run.arm.spec, []).append((run, run_result(run)))
    results = [r for pairs in arms.values() for _, r in pairs]
    on_test = all(r["test_final_bpt"] is not None and r["test_best_bpt"] is not None
                  for r in results)
    problems = _pairing_problems(arms)
    off_spec = next((spec for spec in arms if spec.split("@")[0] == "off"), None)
    off = {run.seed: _readings(r, on_test) for run, r in arms.get(off_spec, [])} \
        if off_spec else {}
    rows = []
    for spec, pairs in arms.items():
        mine = [r for _, r in pairs]
        readings = {run.seed: _readings(r, on_test) for run, r in pairs}
        finals = [v["final"] for v in readings.values() if v["final"] is not None]
        bests = [v["best"] for v in readings.values() if v["best"] is not None]
        config = pairs[0][0].config
        comparisons = {}
        for name, own, theirs in COMPARISONS:
            diffs = [readings[seed][own] - off[seed][theirs] for seed in readings
                     if seed in off and readings[seed][own] is not None
                     and off[seed][theirs] is not None and (spec, seed) not in problems
                     and (off_spec, seed) not in problems]
            comparisons[name] = None if spec == off_spec and own == theirs \
                else paired(diffs)
        rows.append({
            "arm": spec, "mode": pairs[0][0].plan.scu_mode,
            "prior_center": config.scu.prior_center,
            "weight_decay": config.train.weight_decay, "dropout": config.lora.dropout,
            "runs": mine,
            "heldout_bpt_mean": _mean(finals), "heldout_bpt_std": _std(finals),
            "best_bpt_mean": _mean(bests), "best_bpt_std": _std(bests),
            "best_step_mean": _mean([r["best_step"] for r in mine]),
            "paired": comparisons,
            "lambda_at_bound_share": _mean([r["lambda_at_bound_share"] for r in mine]),
            "target_s_mean": _mean([r["target_s"] for r in mine]),
            "energy_j_mean": _mean([r["energy_j"] for r in mine]),
            "wall_s_mean": _mean([r["wall_s"] for r in mine]),
            "curve": _curve(mine),
        })
    base_tests = [r["test_base_bpt"] for r in results if r["test_base_bpt"] is not None]
    return {**meta, "metric": "test" if on_test else "validation",
            "base_heldout_bpt": _mean([r["base_bpt"] for r in results]),
            "base_test_bpt": _mean(base_tests) if base_tests else None,
            "off_arm": off_spec,
            "pairing_problems": [f"{spec}: {why}" for (spec, _), why in problems.items()],
            "arms": rows}
