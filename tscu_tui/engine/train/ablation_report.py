"""An ablation's report: ablation.json, the Markdown table and the held-out BPT picture.

"Beyond seed noise" is a plain two-sided check: an arm differs from `off` when
the difference of the mean final held-out BPTs exceeds twice its standard
error, 2 * sqrt(sd_arm^2 / n_arm + sd_off^2 / n_off). With three seeds this is
a rough screen, not a significance test; the table shows the numbers behind it.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from tscu_tui.engine.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from tscu_tui.engine.train.ablation import REPORT_JSON, REPORT_MD, REPORT_PNG


def _f(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def versus_off(arm: dict[str, Any], off: dict[str, Any] | None) -> tuple[float, bool] | None:
    """(arm mean - off mean, beyond seed noise) for the final held-out BPT."""
    if off is None or arm is off or arm["heldout_bpt_mean"] is None \
            or off["heldout_bpt_mean"] is None:
        return None
    diff = arm["heldout_bpt_mean"] - off["heldout_bpt_mean"]
    n_arm, n_off = len(arm["runs"]), len(off["runs"])
    noise = 2 * math.sqrt((arm["heldout_bpt_std"] or 0.0) ** 2 / n_arm
                          + (off["heldout_bpt_std"] or 0.0) ** 2 / n_off)
    return diff, abs(diff) > noise


def off_arm(report: dict[str, Any]) -> dict[str, Any] | None:
    return next((a for a in report["arms"] if a["mode"] == "off"), None)


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """The table as text cells (also what the app shows)."""
    off = off_arm(report)
    rows = []
    for arm in report["arms"]:
        change = versus_off(arm, off)
        if arm is off:
            delta = "-"
        elif change is None or off is None:
            delta = "n/a"
        else:
            diff, beyond = change
            delta = (f"{diff:+.4f} ({diff / off['heldout_bpt_mean'] * 100:+.1f}%)"
                     + (" *" if beyond else ""))
        bound = arm["lambda_at_bound_share"]
        rows.append([
            arm["arm"], str(len(arm["runs"])),
            f"{_f(arm['heldout_bpt_mean'], '.4f')} ± {_f(arm['heldout_bpt_std'], '.4f')}",
            delta, _f(arm["best_bpt_mean"], ".4f"),
            "n/a" if bound is None else f"{bound * 100:.0f}%",
            _f(arm.get("target_s_mean"), ".4g") if arm["mode"] == "pi" else "-",
            _f(arm["energy_j_mean"], ".0f"), _f(arm["wall_s_mean"], ".0f")])
    return rows


HEADERS = ["arm", "seeds", "held-out BPT (mean ± sd)", "vs off", "best BPT", "lambda at bound",
           "S*", "energy J", "wall s"]


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Ablation: {report['model']} on {report['data']}", "",
             f"Config `{report['config']}`, {report['steps']} steps, seeds "
             f"{', '.join(str(s) for s in report['seeds'])}"
             + (f", overrides `{' '.join(report['overrides'])}`" if report["overrides"] else "")
             + ".", "",
             f"Base model held-out BPT (step 0): {_f(report['base_heldout_bpt'], '.4f')}", "",
             "| " + " | ".join(HEADERS) + " |",
             "|" + "|".join("---" for _ in HEADERS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    lines += ["", "Held-out BPT is the last evaluation's, averaged over seeds. *vs off*: the "
              "change of that mean against `off`; `*` marks a change beyond seed noise "
              "(more than twice its standard error). *lambda at bound*: share of steps after "
              "warm-up with lambda at lambda_min or lambda_max (controlled arms only). *S\\**: "
              "the target, as resolved for `auto`.", "", f"![held-out BPT]({REPORT_PNG})", ""]
    return "\n".join(lines)


def render_png(report: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for arm in report["arms"]:
        curve = arm["curve"]
        if not curve:
            continue
        steps = [p["step"] for p in curve]
        line, = ax.plot(steps, [p["mean"] for p in curve], marker="o", markersize=3,
                        label=f"{arm['arm']} (n={len(arm['runs'])})")
        ax.fill_between(steps, [p["min"] for p in curve], [p["max"] for p in curve],
                        color=line.get_color(), alpha=0.15, linewidth=0)
    if report.get("base_heldout_bpt") is not None:
        ax.axhline(report["base_heldout_bpt"], color="grey", linestyle=":", linewidth=1,
                   label="base model")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("held-out bits per token")
    ax.set_title(f"{report['model']} on {Path(report['data']).name}: mean over seeds, "
                 "band = min..max", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def write_report(output_dir: Path, report: dict[str, Any]) -> None:
    """ablation.json, ablation.png, then ablation.md (which names the picture)."""
    atomic_write_json(output_dir / REPORT_JSON, report)
    atomic_write_bytes(output_dir / REPORT_PNG, render_png(report))
    atomic_write_text(output_dir / REPORT_MD, render_markdown(report))
