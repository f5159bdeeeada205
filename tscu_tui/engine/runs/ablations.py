"""Ablations on disk (`tscu ablate`'s folders), read back for the app and the report.

An ablation folder holds `ablation.json` (arms, each with its runs, means, spread,
paired differences against `off` and held-out BPT curve), `ablation.md` and
`ablation.png`; its runs are ordinary run folders under `runs/`. `table_rows` is
the one text form of the table: the Markdown report and the results screen both
show it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.fileio import read_json_object
from tscu_tui.engine.runs.files import ABLATION_JSON, ABLATION_PNG


def headers(report: dict[str, Any]) -> list[str]:
    """The table's column names; the metric (test or validation BPT) is the report's."""
    metric = report.get("metric", "held-out")
    return ["arm", "seeds", f"{metric} BPT final (mean ± sd)",
            f"{metric} BPT at best validation (step)", "final - off final",
            "final - off best", "best - off best", "lambda at bound", "S*", "wall s"]

@dataclass(frozen=True)
class Ablation:
    path: Path  # the ablation folder
    report: dict[str, Any]  # ablation.json

    @property
    def picture(self) -> Path | None:
        png = self.path / ABLATION_PNG
        return png if png.is_file() else None


def find_ablations(roots: list[Path], skipped: list[str] | None = None) -> list[Ablation]:
    """Ablation folders that are a root or one of its children, sorted by path."""
    found: dict[Path, Ablation] = {}
    for root in roots:
        if not root.is_dir():
            continue
        try:
            folders = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
        except OSError:
            continue
        for folder in folders:
            key = folder.resolve()
            if key in found or not (folder / ABLATION_JSON).is_file():
                continue
            try:
                found[key] = read_ablation(folder)
            except TscuError as exc:
                if skipped is not None:
                    skipped.append(str(exc))
    return sorted(found.values(), key=lambda a: str(a.path))


def read_ablation(folder: Path) -> Ablation:
    report = read_json_object(folder / ABLATION_JSON)
    if report is None or not isinstance(report.get("arms"), list):
        raise TscuError(f"{folder / ABLATION_JSON}: not an ablation report (no 'arms' list)")
    return Ablation(path=folder, report=report)


def _f(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def off_arm(report: dict[str, Any]) -> dict[str, Any] | None:
    """The `off` arm (older reports: the first arm without a penalty)."""
    if "off_arm" in report:
        return next((a for a in report["arms"] if a["arm"] == report["off_arm"]), None)
    return next((a for a in report["arms"] if a.get("mode") == "off"), None)


def versus_off(arm: dict[str, Any], off: dict[str, Any] | None) -> tuple[float, bool] | None:
    """(arm mean - off mean, beyond seed noise) at the final step.

    From the per-seed paired differences where the report has them (beyond noise: their
    mean exceeds twice its standard error); in older reports from the unpaired means,
    2 * sqrt(sd_arm^2 / n_arm + sd_off^2 / n_off). With three seeds this is a rough
    screen, not a significance test; the table shows the numbers behind it.
    """
    if off is None or arm is off:
        return None
    pair = (arm.get("paired") or {}).get("final_vs_off_final")
    if pair is not None and pair.get("mean") is not None:
        return pair["mean"], bool(pair["beyond_noise"])
    if arm["heldout_bpt_mean"] is None or off["heldout_bpt_mean"] is None:
        return None
    diff = arm["heldout_bpt_mean"] - off["heldout_bpt_mean"]
    noise = 2 * math.sqrt((arm["heldout_bpt_std"] or 0.0) ** 2 / len(arm["runs"])
                          + (off["heldout_bpt_std"] or 0.0) ** 2 / len(off["runs"]))
    return diff, abs(diff) > noise


def _difference(arm: dict[str, Any], name: str) -> str:
    pair = (arm.get("paired") or {}).get(name)
    if pair is None:
        return "-"
    if pair.get("mean") is None:
        return "n/a"
    spread = f" ± {pair['sd']:.4f}" if pair.get("sd") is not None else ""
    mean = f"{pair['mean']:+.4f}".replace("-0.0000", "+0.0000")
    return mean + spread + (" *" if pair.get("beyond_noise") else "")


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """The ablation table as text cells, one row per arm, columns as `headers`."""
    off = off_arm(report)
    rows = []
    for arm in report["arms"]:
        if "paired" in arm:
            final_final = _difference(arm, "final_vs_off_final")
        elif arm is off:
            final_final = "-"
        else:
            change = versus_off(arm, off)
            final_final = "n/a" if change is None else (
                f"{change[0]:+.4f}" + (" *" if change[1] else ""))
        bound = arm.get("lambda_at_bound_share")
        step = arm.get("best_step_mean")
        rows.append([
            arm["arm"], str(len(arm["runs"])),
            f"{_f(arm['heldout_bpt_mean'], '.4f')} ± {_f(arm['heldout_bpt_std'], '.4f')}",
            f"{_f(arm.get('best_bpt_mean'), '.4f')} ({_f(step, '.0f')})",
            final_final, _difference(arm, "final_vs_off_best"),
            _difference(arm, "best_vs_off_best"),
            "n/a" if bound is None else f"{bound * 100:.0f}%",
            _f(arm.get("target_s_mean"), ".4g") if arm.get("mode") == "pi" else "-",
            _f(arm.get("wall_s_mean"), ".0f")])
    return rows
