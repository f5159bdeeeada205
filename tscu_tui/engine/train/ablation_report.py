"""An ablation's report: ablation.json, the Markdown table and the held-out BPT picture.

The table's text (and what "beyond seed noise" means) lives in runs/ablations.py,
which the app reads too; this module writes the files.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from tscu_tui.engine.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from tscu_tui.engine.runs.ablations import headers, table_rows
from tscu_tui.engine.runs.files import ABLATION_JSON, ABLATION_MD, ABLATION_PNG


def _base(report: dict[str, Any]) -> str:
    base = report.get("base_heldout_bpt")
    return "n/a" if base is None or not math.isfinite(base) else f"{base:.4f}"


def _length(report: dict[str, Any]) -> str:
    epochs = report.get("epochs")
    return f"{report['steps']} steps" + (f" ({epochs:.3g} epochs)" if epochs else "")


def _metric_note(report: dict[str, Any]) -> str:
    if report.get("metric") == "validation":
        return ("**This dataset has no test split**: every number is validation BPT, the "
                "split the best step was selected on, so the best-validation readings are "
                "optimistic. Prepare with `--test-fraction` for a test split.")
    return ("Every number is BPT on the test split, which no run trained or selected on; "
            "the best step is chosen on validation.")


def render_markdown(report: dict[str, Any]) -> str:
    head = headers(report)
    base_test = report.get("base_test_bpt")
    lines = [f"# Ablation: {report['model']} on {report['data']}", "",
             f"Config `{report['config']}`, {_length(report)}, seeds "
             f"{', '.join(str(s) for s in report['seeds'])}"
             + (f", overrides `{' '.join(report['overrides'])}`" if report["overrides"] else "")
             + ".", "", _metric_note(report), "",
             f"Base model validation BPT (step 0): {_base(report)}"
             + (f"; test BPT: {base_test:.4f}" if base_test is not None else ""), "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    lines += ["", "*final*: the run's last step; *at best validation*: the adapter of its "
              "best validation evaluation (early stopping; mean step in brackets). The three "
              "differences are paired by seed (arms share seeds: the same initial adapter "
              "and data order, checked from the runs' digests) against `off`'s final and "
              "best-validation readings: mean ± sd of the per-seed differences; `*` marks a "
              "mean beyond twice its standard error (sd / sqrt(seeds)). *lambda at bound*: "
              "share of controlled steps with lambda at lambda_min or lambda_max. *S\\**: "
              "the target, as resolved for `auto`."]
    if report.get("pairing_problems"):
        lines += ["", "Left out of the paired differences: "
                  + "; ".join(report["pairing_problems"]) + "."]
    lines += ["", f"![held-out BPT]({ABLATION_PNG})", ""]
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
    ax.set_ylabel("validation bits per token")
    ax.set_title(f"{report['model']}, {_length(report)}: validation BPT, mean over "
                 "seeds (band: min to max)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def write_report(output_dir: Path, report: dict[str, Any]) -> None:
    """ablation.json, ablation.png, then ablation.md (which names the picture)."""
    atomic_write_json(output_dir / ABLATION_JSON, report)
    atomic_write_bytes(output_dir / ABLATION_PNG, render_png(report))
    atomic_write_text(output_dir / ABLATION_MD, render_markdown(report))
