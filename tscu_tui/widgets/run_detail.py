"""One run opened: charts of its history, its analysis, its config, its log, samples.

Tabs switch with left/right while the tab bar has focus (it gets focus when a
run is opened); tab/shift+tab move into and out of a tab's content.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Log, Static, TabbedContent, TabPane, Tabs
from textual_image.widget import Image

from tscu_tui.engine.formatting import fmt, s_target
from tscu_tui.engine.runs.files import CURVES_FILE
from tscu_tui.engine.runs.reader import RunDetail, RunSummary
from tscu_tui.engine.runs.sample import DEFAULT_PROMPT, Samples
from tscu_tui.widgets.metric_chart import Reference
from tscu_tui.widgets.metric_panel import MetricPanel
from tscu_tui.widgets.run_columns import bits_per_j, duration, run_name, steps, telemetry
from tscu_tui.widgets.train_charts import PANELS, references

MAX_POINTS = 100_000

#: panel id -> (title, history list, record field)
CHARTS: dict[str, tuple[str, str, str]] = {
    "loss": ("loss (nats/token)", "steps", "loss"),
    "heldout": ("held-out BPT", "evals", "heldout_bpt"),
    "s": ("S vs S*", "steps", "s"),
    "lambda": ("lambda", "steps", "lambda_reg"),
    "power": ("watts", "steps", "power_w"),
    "temp": ("degrees", "steps", "temp_c"),
    "control": ("control factor c", "steps", "control_factor"),
    "tokens-per-s": ("tokens/s", "steps", "tokens_per_s"),
}

TABS = ("charts", "analysis", "config", "log", "sample", "picture")


def run_references(config: dict[str, Any]) -> dict[str, list[Reference]]:
    """The reference lines of a run's own config (none if it has no readable one)."""
    from tscu_tui.engine.config import config_from_dict
    from tscu_tui.engine.errors import ConfigError

    try:
        return references(config_from_dict(config, "mlx_config.json")) if config else {}
    except ConfigError:
        return {}


def series(records: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in records
            if isinstance(r.get(key), int | float) and math.isfinite(r[key])]


def _scalar(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


def render_tree(data: dict[str, Any], indent: str = "") -> list[str]:
    """A nested dict as aligned `key  value` lines, sections indented."""
    width = max((len(k) for k, v in data.items() if not isinstance(v, dict)), default=0)
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines += [f"{indent}{key}:", *render_tree(value, indent + "  ")]
        else:
            lines.append(f"{indent}{key:<{width}}  {_scalar(value)}")
    return lines


def headline(run: RunSummary) -> str:
    """The run's key numbers in one sentence."""
    return (f"{run_name(run.path)}  {run.status}, {steps(run)} steps, "
            f"held-out {fmt(run.heldout_bpt_initial, '.3f')} -> "
            f"{fmt(run.heldout_bpt_final, '.3f')} BPT, {fmt(run.energy_j, ',.0f', ' J')}, "
            f"{fmt(run.avg_power_w, '.1f', ' W')}, {bits_per_j(run.efficiency_bits_per_j)} "
            f"bits/J, {duration(run.duration_s)}, telemetry {telemetry(run)}")


class RunDetailView(Vertical):
    BINDINGS = [Binding("escape", "screen.back", "Back")]  # to the runs list
    DEFAULT_CSS = """
    RunDetailView #detail-headline { height: auto; max-height: 2; padding: 0 1; color: $accent; }
    RunDetailView TabbedContent { height: 1fr; }
    RunDetailView TabPane { padding: 0; height: 1fr; }
    RunDetailView #detail-charts { grid-size: 2; grid-gutter: 0 1; height: 1fr; }
    RunDetailView VerticalScroll { height: 1fr; padding: 0 1; }
    RunDetailView #detail-log { height: 1fr; }
    RunDetailView #sample-prompt { margin: 0 1; }
    RunDetailView #sample-state { height: 1; padding: 0 1; color: $text-muted; }
    RunDetailView #sample-outputs { height: 1fr; }
    RunDetailView #picture-note { height: 1; padding: 0 1; color: $text-muted; }
    RunDetailView #picture-image { width: auto; height: 1fr; }
    RunDetailView .sample-pane { width: 1fr; height: 1fr; padding: 0 1;
                                 border: round $primary-darken-2; }
    """

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self.detail: RunDetail | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="detail-headline", markup=False)
        with TabbedContent(initial="charts", id="detail-tabs"):
            with TabPane("Charts", id="charts"), Grid(id="detail-charts"):
                for panel_id, (title, _, _) in CHARTS.items():
                    spec = PANELS[panel_id]
                    yield MetricPanel(title, id=f"chart-{panel_id}", unit=spec.unit,
                                      spec=spec.spec, history=MAX_POINTS)
            with TabPane("Analysis", id="analysis"), VerticalScroll():
                yield Static("", id="detail-analysis", markup=False)
            with TabPane("Config", id="config"), VerticalScroll():
                yield Static("", id="detail-config", markup=False)
            with TabPane("Log", id="log"):
                yield Log(id="detail-log", max_lines=5000)
            with TabPane("Sample", id="sample"):
                yield Input(DEFAULT_PROMPT, placeholder="prompt, enter generates",
                            id="sample-prompt")
                yield Static("", id="sample-state", markup=False)
                with Horizontal(id="sample-outputs"):
                    with VerticalScroll(classes="sample-pane") as base:
                        base.border_title = "base"
                        yield Static("", id="sample-base", markup=False)
                    with VerticalScroll(classes="sample-pane") as adapted:
                        adapted.border_title = "base + adapter"
                        yield Static("", id="sample-adapted", markup=False)
            with TabPane("Picture", id="picture"):
                yield Static("", id="picture-note", markup=False)
                # Kitty graphics or sixels where the terminal has them, else half blocks.
                yield Image(id="picture-image")

    # -- filling ---------------------------------------------------------------------------

    def show(self, detail: RunDetail) -> None:
        """Fill every tab from `detail` (a different run clears the samples)."""
        if self.detail is None or self.detail.summary.path != detail.summary.path:
            self.show_samples(None, "")
        self.detail = detail
        self.query_one("#detail-headline", Static).update(headline(detail.summary))
        self._fill_charts(detail)
        analysis = detail.analysis or {"note": "no analysis yet: the run has not ended"}
        lines = render_tree(analysis)
        picture = detail.summary.path / CURVES_FILE
        if picture.is_file():  # held-out BPT, loss, watts, °C, c, S, lambda against step
            lines = [f"picture: {picture} (the Picture tab shows it)", "", *lines]
        self.query_one("#detail-analysis", Static).update("\n".join(lines))
        self._show_picture(picture)
        config = detail.config or {"note": "no mlx_config.json in this run"}
        self.query_one("#detail-config", Static).update("\n".join(render_tree(config)))
        log = self.query_one("#detail-log", Log)
        log.clear()
        log.write(detail.log_tail or "(no log yet)")
        log.scroll_end(animate=False)

    def _show_picture(self, picture: Path) -> None:
        image = self.query_one("#picture-image", Image)
        if not picture.is_file():
            self.query_one("#picture-note", Static).update(
                f"no {CURVES_FILE} yet: it is drawn when the run ends")
            image.image = None
            image.display = False
            return
        self.query_one("#picture-note", Static).update(str(picture))
        if image.image != str(picture):
            try:
                image.image = str(picture)
            except Exception as exc:  # not a picture this terminal's renderer can read
                self.query_one("#picture-note", Static).update(
                    f"{picture} (not shown: {type(exc).__name__})")
                return
        image.display = True

    def _fill_charts(self, detail: RunDetail) -> None:
        history = detail.history
        last = (history["steps"] or [{}])[-1]
        refs = run_references(detail.config)
        for panel_id, (_, kind, key) in CHARTS.items():
            panel = self.query_one(f"#chart-{panel_id}", MetricPanel)
            panel.clear()
            panel.set_references(refs.get(panel_id, []))
            points = [(int(r.get("step", i)), float(r[key])) for i, r in enumerate(history[kind])
                      if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
            for step, value in points:
                panel.record(value, "", step)
            values = [v for _, v in points]
            panel.record(None, self._readout(panel_id, values, last, detail))
            panel.redraw()

    @staticmethod
    def _readout(panel_id: str, values: list[float], last: dict[str, Any],
                 detail: RunDetail) -> str:
        latest = values[-1] if values else None
        match panel_id:
            case "heldout":
                return (f"{fmt(latest, '.3f')} (best {fmt(min(values), '.3f')})"
                        if values else "n/a")
            case "s":
                return f"{fmt(latest, '.4f')} / S* {s_target(last.get('s_target'))}"
            case "power":
                return fmt(latest, ".1f", " W")
            case "temp":
                return fmt(latest, ".1f", " °C")
            case "control":
                return fmt(latest, ".2f")
            case "tokens-per-s":
                return fmt(latest, ",.0f")
            case "lambda":
                return fmt(latest, ".4g")
        return fmt(latest, ".4f")

    def show_samples(self, samples: Samples | None, state: str) -> None:
        self.query_one("#sample-state", Static).update(state)
        self.query_one("#sample-base", Static).update(samples.prompt + samples.base
                                                       if samples else "")
        self.query_one("#sample-adapted", Static).update(samples.prompt + samples.adapted
                                                          if samples else "")

    # -- navigation ------------------------------------------------------------------------

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#detail-tabs", TabbedContent)

    def open_tab(self, tab: str) -> None:
        self.tabs.active = tab
        if tab == "sample":
            self.query_one("#sample-prompt", Input).focus()
        else:
            self.tabs.query_one(Tabs).focus()

    @property
    def prompt(self) -> str:
        return self.query_one("#sample-prompt", Input).value
