"""The train screen's eight charts: what each plots, its unit and its reference lines."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Grid

from tscu_tui.engine.config import Config
from tscu_tui.engine.events import EvalEvent, StepEvent
from tscu_tui.engine.formatting import fmt, s_target
from tscu_tui.widgets.metric_chart import Reference
from tscu_tui.widgets.metric_panel import MetricPanel


@dataclass(frozen=True)
class ChartSpec:
    title: str
    unit: str = ""
    spec: str = ".3g"


#: panel id -> what it shows; ids name the StepEvent/EvalEvent field each one plots
PANELS = {
    "power": ChartSpec("watts", "W", ".1f"), "temp": ChartSpec("degrees", "°C", ".1f"),
    "control": ChartSpec("control factor c", "", ".2f"),
    "tokens-per-s": ChartSpec("tokens/s", "", ",.0f"),
    "loss": ChartSpec("loss (nats/token)", "", ".3f"),
    "heldout": ChartSpec("held-out BPT", "bits", ".3f"), "s": ChartSpec("S vs S*", "", ".4f"),
    "lambda": ChartSpec("lambda", "", ".3g"),
}


def references(config: Config) -> dict[str, list[Reference]]:
    """The lines each chart is read against: the power budget, the temperature limits,
    the lower bound of c, the SCU's target."""
    t = config.tscu
    target = config.scu.target_s  # "auto": no line until the run resolves it
    refs: dict[str, list[Reference]] = {
        "s": [Reference("S*", target)] if not isinstance(target, str) else []}
    if t.enabled:
        refs["power"] = [Reference("budget", t.power_budget_watts)]
        refs["temp"] = [Reference("max", t.max_temperature_celsius),
                        Reference("emergency", t.emergency_shutdown_temp, limit=True)]
        refs["control"] = [Reference("min", t.control_factor_min)]
    return refs


class TrainCharts(Grid):
    """The grid of metric panels; steps and evaluations are recorded, drawn by `redraw`."""

    def compose(self) -> ComposeResult:
        for panel_id, spec in PANELS.items():
            yield MetricPanel(spec.title, id=panel_id, unit=spec.unit, spec=spec.spec)

    def panel(self, panel_id: str) -> MetricPanel:
        return self.query_one(f"#{panel_id}", MetricPanel)

    def set_references(self, config: Config) -> None:
        refs = references(config)
        for panel_id in PANELS:
            self.panel(panel_id).set_references(refs.get(panel_id, []))

    def set_target(self, target: float | None) -> None:
        """S* as the run reports it (a watched run's own, whatever the local config says;
        None while "auto" has not resolved)."""
        self._s_target = target
        self.panel("s").set_references([Reference("S*", target)] if target is not None else [])

    def record_step(self, e: StepEvent) -> None:
        self.panel("power").record(e.power_w, fmt(e.power_w, ".1f", " W"), e.step)
        self.panel("temp").record(e.temp_c, fmt(e.temp_c, ".1f", " °C"), e.step)
        self.panel("control").record(e.control_factor, fmt(e.control_factor, ".2f"), e.step)
        self.panel("tokens-per-s").record(e.tokens_per_s, f"{e.tokens_per_s:,.0f}", e.step)
        self.panel("loss").record(e.loss, f"{e.loss:.4f}", e.step)
        if e.s_target is not None and e.s_target != getattr(self, "_s_target", None):
            self.set_target(e.s_target)  # "auto" resolved during the run
        self.panel("s").record(e.s, f"{e.s:.4f} / S* {s_target(e.s_target)}", e.step)
        self.panel("lambda").record(e.lambda_reg, f"{e.lambda_reg:.4g}", e.step)

    def record_eval(self, e: EvalEvent) -> None:
        self.panel("heldout").record(
            e.heldout_bpt, f"{e.heldout_bpt:.3f} (best {e.best_bpt:.3f})", e.step)

    def redraw(self) -> None:
        for panel in self.query(MetricPanel):
            panel.redraw()

    def clear(self) -> None:
        for panel in self.query(MetricPanel):
            panel.clear()
