"""The end-of-run picture: held-out BPT, loss, watts, °C, c, S and lambda against step.

Drawn with matplotlib's Agg backend (no display needed) into the run folder as
`training_curves.png`, written atomically; the model card links it and the
results screen points at it. The budget, the temperature limits and the SCU's
target are drawn as reference lines, as on the train screen.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from tscu_tui.engine.config import Config
from tscu_tui.engine.fileio import atomic_write_bytes
from tscu_tui.engine.runs.files import CURVES_FILE

#: (history list, record key, title, [(label, value, colour)] from the config)
Panel = tuple[str, str, str, list[tuple[str, float, str]]]


def panels(config: Config) -> list[Panel]:
    t = config.tscu
    governed = t.enabled
    return [
        ("evals", "heldout_bpt", "held-out bits/token", []),
        ("steps", "loss", "loss (nats/token)", []),
        ("steps", "power_w", "power (W)",
         [("budget", t.power_budget_watts, "tab:orange")] if governed else []),
        ("steps", "temp_c", "temperature (°C)",
         [("max", t.max_temperature_celsius, "tab:orange"),
          ("emergency", t.emergency_shutdown_temp, "tab:red")] if governed else []),
        ("steps", "control_factor", "control factor c",
         [("min", t.control_factor_min, "tab:orange")] if governed else []),
        ("steps", "s", "S = ParamBPT / (DataBPT + ParamBPT)",
         [("S*", config.scu.target_s, "tab:orange")]),
        ("steps", "lambda_reg", "lambda", []),
    ]


def _points(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pairs = [(int(r["step"]), float(r[key])) for r in records
             if isinstance(r.get(key), int | float) and r[key] == r[key]]  # no NaN
    return [s for s, _ in pairs], [v for _, v in pairs]


def render_curves(history: dict[str, list[dict[str, Any]]], config: Config, title: str
                  ) -> bytes:
    """The PNG's bytes: one panel per metric, shared step axis, references dashed."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    chosen = panels(config)
    figure = Figure(figsize=(9, 2.0 * len(chosen)), dpi=100, layout="constrained")
    axes = figure.subplots(len(chosen), 1, sharex=True)
    for ax, (kind, key, label, references) in zip(axes, chosen, strict=True):
        steps, values = _points(history.get(kind, []), key)
        if values:
            ax.plot(steps, values, marker="o" if kind == "evals" else None, markersize=3,
                    linewidth=1.2, color="tab:blue")
        else:
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center",
                    va="center", color="grey")
        for ref_label, value, colour in references:
            ax.axhline(value, linestyle="--", linewidth=1, color=colour, label=ref_label)
        if references:
            ax.legend(loc="upper right", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("optimizer step")
    figure.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_curves(run_dir: Path, history: dict[str, list[dict[str, Any]]], config: Config
                 ) -> Path:
    path = run_dir / CURVES_FILE
    title = f"{config.model.name} on {Path(config.data.path).name}: {run_dir.name}"
    atomic_write_bytes(path, render_curves(history, config, title))
    return path
