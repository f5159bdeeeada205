"""One ablation (`tscu ablate`): its table and its held-out BPT curves, in the terminal.

The table is the report's own text (engine.runs.ablations.table_rows, as in
ablation.md); the plot draws the same per-arm means as ablation.png, whose path
is shown for the full picture with the seed spread.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from tscu_tui.engine.formatting import fmt
from tscu_tui.engine.runs.ablations import Ablation, headers, table_rows


def ablation_title(ablation: Ablation) -> str:
    report = ablation.report
    seeds = report.get("seeds") or []
    return (f"{ablation.path}  {report.get('model', '?')}, {len(report['arms'])} arms x "
            f"{len(seeds)} seeds, {report.get('steps', '?')} steps, base model held-out "
            f"{fmt(report.get('base_heldout_bpt'), '.4f')} BPT")


def curves(ablation: Ablation) -> dict[str, tuple[list[int], list[float]]]:
    """Arm -> (steps, mean held-out BPT): what the plot draws."""
    return {arm["arm"]: ([p["step"] for p in arm.get("curve") or []],
                         [p["mean"] for p in arm.get("curve") or []])
            for arm in ablation.report["arms"] if arm.get("curve")}


ABLATION_COLUMNS = ("ablation", "arms x seeds", "steps", "best arm (BPT)")


def best_arm(ablation: Ablation) -> str:
    arms = [a for a in ablation.report["arms"] if a.get("heldout_bpt_mean") is not None]
    best = min(arms, key=lambda a: a["heldout_bpt_mean"], default=None)
    return "n/a" if best is None else f"{best['arm']} ({best['heldout_bpt_mean']:.4f})"


def fill_ablations(table: DataTable[str], ablations: list[Ablation]) -> None:
    """The results screen's list of ablations (hidden when there are none)."""
    table.clear()
    for ablation in ablations:
        report = ablation.report
        table.add_row(str(ablation.path), f"{len(report['arms'])} x "
                      f"{len(report.get('seeds') or [])}", str(report.get("steps", "?")),
                      best_arm(ablation), key=str(ablation.path))
    table.display = bool(ablations)


class AblationView(Vertical):
    BINDINGS = [Binding("escape", "screen.back", "Back")]  # to the runs list
    DEFAULT_CSS = """
    AblationView #ablation-title { height: auto; max-height: 2; padding: 0 1; color: $accent; }
    AblationView #ablation-table { height: auto; max-height: 10; }
    AblationView #ablation-plot { height: 1fr; min-height: 8; }
    AblationView #ablation-picture { height: 1; padding: 0 1; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="ablation-title", markup=False)
        yield DataTable(id="ablation-table", cursor_type="row", zebra_stripes=True)
        yield PlotextPlot(id="ablation-plot")
        yield Static("", id="ablation-picture", markup=False)

    def show(self, ablation: Ablation) -> None:
        self.query_one("#ablation-title", Static).update(ablation_title(ablation))
        table = self.query_one("#ablation-table", DataTable)
        table.clear(columns=True)
        table.add_columns(*headers(ablation.report))
        for row in table_rows(ablation.report):
            table.add_row(*row, key=row[0])
        plot = self.query_one("#ablation-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.title("held-out BPT vs step (mean over seeds)")
        for arm, (steps, means) in curves(ablation).items():
            plt.plot(steps, means, label=arm, marker="braille")
        plot.refresh()
        picture = ablation.picture
        self.query_one("#ablation-picture", Static).update(
            f"picture with the seed spread: {picture}" if picture else "no ablation.png yet")
