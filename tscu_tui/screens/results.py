"""The results screen: every run on disk, one opened, two compared, samples, upload.

Runs are found under the config's output directory, its parent and
`demo_output` (a shallow search); ablations (`tscu ablate`) there and in
`ablation_output` are listed under the runs, and enter on one shows its table
and curves. Enter opens the run under the cursor
(charts, analysis, config, log, samples), escape goes back, `m` marks runs and
two marks compare them side by side. `g` generates greedily from the base
model and from base + the run's adapter in the app's one MLX worker; `u`
uploads the run to the Hub in its own thread worker.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, DataTable, Footer, Header, Input, Static
from textual.worker import Worker, WorkerState

from tscu_tui.engine.errors import ModelError
from tscu_tui.engine.runs.ablations import Ablation, find_ablations
from tscu_tui.engine.runs.reader import RunSummary, find_runs, load_run, run_roots, shown_roots
from tscu_tui.engine.runs.sample import DEFAULT_TOKENS, Samples, check_adapter
from tscu_tui.keys import bind
from tscu_tui.messages import ConfigChanged
from tscu_tui.screens.base import MLX_GROUP, TscuScreen
from tscu_tui.screens.error import one_line
from tscu_tui.screens.upload import UploadDialog
from tscu_tui.widgets.ablation_view import ABLATION_COLUMNS, AblationView, fill_ablations
from tscu_tui.widgets.run_columns import (
    COLUMNS,
    next_sort,
    reversed_sort,
    run_name,
    sort_words,
)
from tscu_tui.widgets.run_compare import RunCompareView
from tscu_tui.widgets.run_detail import RunDetailView, headline
from tscu_tui.widgets.runs_table import RunsTable

SAMPLE_WORKER = "Sample generation"
UPLOAD_WORKER = "Hub upload"
LIVE_POLL_S = 2.0  # how often a run still being written is re-read while shown


class ResultsScreen(TscuScreen):
    CSS_PATH = "results.tcss"
    BINDINGS = [
        bind("refresh_runs", "Refresh"),
        bind("sort_runs", "Sort"),
        bind("reverse_sort", "Reverse", show=False),
        bind("compare_runs", "Mark/compare"),
        bind("generate_sample", "Sample"),
        bind("upload_run", "Upload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunSummary] = []
        self.ablations: list[Ablation] = []
        self.skipped: list[str] = []
        self.marked: list[Path] = []  # at most two, oldest first
        self.opened: RunSummary | None = None  # the run in the detail view
        self.samples: dict[Path, Samples] = {}
        self.sorted_by: tuple[str, bool] | None = None  # column key, descending
        self.uploading = False
        self._last_repo_id = ""

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with ContentSwitcher(initial="runs-view", id="views"):
            with Vertical(id="runs-view"):
                yield Static("", id="runs-title", markup=False)
                yield RunsTable(id="runs", cursor_type="row", zebra_stripes=True)
                yield Static("", id="run-headline", markup=False)
                yield Static("", id="runs-note", markup=False)
                yield DataTable(id="ablations", cursor_type="row", zebra_stripes=True)
            yield RunDetailView(id="detail-view")
            yield RunCompareView(id="compare-view")
            yield AblationView(id="ablation-view")
        yield Static("", id="activity", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self._activity("")
        self.query_one("#runs", RunsTable).add_run_columns()
        self.query_one("#ablations", DataTable).add_columns(*ABLATION_COLUMNS)
        self.refresh_runs()
        self.set_interval(LIVE_POLL_S, self._follow_live_runs)

    def on_screen_resume(self) -> None:
        if self.view == "runs-view":
            self.refresh_runs()

    def on_config_changed(self, message: ConfigChanged) -> None:
        self.refresh_runs()

    @property
    def view(self) -> str:
        return self.query_one("#views", ContentSwitcher).current or "runs-view"

    @property
    def detail(self) -> RunDetailView:
        return self.query_one("#detail-view", RunDetailView)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        view = self.view
        match action:
            case "compare_runs" | "sort_runs" | "reverse_sort":
                return view == "runs-view"
            case "generate_sample" | "upload_run":
                return view in ("runs-view", "detail-view")
        return True

    # -- the list --------------------------------------------------------------------------

    def refresh_runs(self) -> None:
        """Rescan the output directories and redraw the table, keeping the cursor's run."""
        roots = run_roots(self.tscu.config)
        self.skipped = []
        self.runs = find_runs(roots, self.skipped)
        paths = {run.path for run in self.runs}
        self.marked = [path for path in self.marked if path in paths]
        self._fill_table()
        where = ", ".join(str(root) for root in shown_roots(roots))
        title = (f"{len(self.runs)} run{'s' if len(self.runs) != 1 else ''} in {where}"
                 if self.runs else f"No runs in {where} yet: train one on the Train screen")
        self.query_one("#runs-title", Static).update(title)
        note = ""
        if self.skipped:
            note = (f"{len(self.skipped)} folder{'s' if len(self.skipped) > 1 else ''} "
                    f"skipped: {self.skipped[0]}")
        self.query_one("#runs-note", Static).update(note)
        self.query_one("#runs-note").display = bool(note)
        self.ablations = find_ablations([*roots, Path("ablation_output")])
        fill_ablations(self.query_one("#ablations", DataTable), self.ablations)

    def _fill_table(self) -> None:
        self.query_one("#runs", RunsTable).fill(self.runs, self.sorted_by, self.marked)

    def cursor_run(self) -> RunSummary | None:
        return self.query_one("#runs", RunsTable).run_under_cursor(self.runs)

    def current_run(self) -> RunSummary | None:
        """The opened run in the detail view, else the one under the list's cursor."""
        if self.view == "detail-view" and self.opened is not None:
            return self.opened
        return self.cursor_run()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "runs":
            self.action_open_run()
        elif event.data_table.id == "ablations" and event.row_key.value is not None:
            self.open_ablation(Path(event.row_key.value))

    def open_ablation(self, path: Path) -> None:
        ablation = next((a for a in self.ablations if a.path == path), None)
        if ablation is None:
            return
        self.query_one("#ablation-view", AblationView).show(ablation)
        self.query_one("#views", ContentSwitcher).current = "ablation-view"
        self.query_one("#ablation-table", DataTable).focus()
        self.refresh_bindings()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "runs":
            run = self.cursor_run()
            self.query_one("#run-headline", Static).update(headline(run) if run else "")

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if event.data_table.id != "runs" or key not in {c.key for c in COLUMNS}:
            return
        same = self.sorted_by is not None and self.sorted_by[0] == key
        self.sorted_by = (key, not self.sorted_by[1]) if same and self.sorted_by else (key, False)
        self._fill_table()

    def action_sort_runs(self) -> None:
        """Sort by the next column (after the last: back to the order by folder)."""
        self.sorted_by = next_sort(self.sorted_by)
        self._fill_table()
        self._activity(sort_words(self.sorted_by, self._key("sort_runs"),
                                  self._key("reverse_sort")))

    def action_reverse_sort(self) -> None:
        self.sorted_by = reversed_sort(self.sorted_by)
        self._fill_table()
        self._activity(sort_words(self.sorted_by, self._key("sort_runs"),
                                  self._key("reverse_sort")))

    # -- actions ---------------------------------------------------------------------------

    def action_refresh_runs(self) -> None:
        self.refresh_runs()
        if self.view == "detail-view":
            self._reload_opened(quiet=False)
        self._activity(f"rescanned: {len(self.runs)} runs")

    def _follow_live_runs(self) -> None:
        """Runs still being written (no summary yet) are re-read while this screen shows."""
        if self.app.screen is not self:
            return
        if self.view == "detail-view":
            if self.opened is not None and self.opened.status == "in progress":
                self._reload_opened(quiet=True)
        elif self.view == "runs-view" and any(r.status == "in progress" for r in self.runs):
            self.refresh_runs()

    def _reload_opened(self, *, quiet: bool) -> None:
        """Re-read the opened run in place (same tab, same focus)."""
        if self.opened is None:
            return
        try:
            detail = load_run(self.opened.path)
        except Exception as exc:
            if not quiet:
                self.tscu.show_error(f"Cannot reload {run_name(self.opened.path)}",
                                     one_line(exc))
            return
        self.opened = detail.summary
        self.detail.show(detail)

    def action_open_run(self) -> None:
        run = self.cursor_run()
        if run is not None:
            self.open_run(run)

    def open_run(self, run: RunSummary, tab: str = "charts") -> None:
        try:
            detail = load_run(run.path)
        except Exception as exc:  # a run rewritten or deleted since the scan
            self.tscu.show_error(f"Cannot open {run_name(run.path)}", one_line(exc))
            return
        self.opened = detail.summary
        view = self.detail
        view.show(detail)
        view.show_samples(self.samples.get(run.path), self._sample_note(run.path))
        self.query_one("#views", ContentSwitcher).current = "detail-view"
        view.open_tab(tab)
        self.refresh_bindings()

    def action_back(self) -> None:
        self.query_one("#views", ContentSwitcher).current = "runs-view"
        self.query_one("#runs", DataTable).focus()
        self.refresh_bindings()

    def action_compare_runs(self) -> None:
        """Mark (or unmark) the run under the cursor; with two marked, compare them."""
        run = self.cursor_run()
        if run is None:
            return
        if run.path in self.marked:
            self.marked.remove(run.path)
        else:
            self.marked = [*self.marked, run.path][-2:]
        self._fill_table()
        if len(self.marked) < 2:
            self._activity(f"marked {len(self.marked)} of 2: press "
                           f"{self._key('compare_runs')} on another run to compare")
            return
        a, b = (next(r for r in self.runs if r.path == path) for path in self.marked)
        self.query_one("#compare-view", RunCompareView).show(a, b)
        self.query_one("#views", ContentSwitcher).current = "compare-view"
        self.query_one("#compare-table", DataTable).focus()
        self._activity("comparing A and B; escape goes back")
        self.refresh_bindings()

    # -- samples ---------------------------------------------------------------------------

    def action_generate_sample(self) -> None:
        run = self.current_run()
        if run is None:
            self.notify("No run to sample from.", severity="warning")
            return
        if self.tscu.mlx_busy():
            self.notify("Another MLX job (training or a sample) is running; try again when "
                        "it ends.", severity="warning")
            return
        model = run.base_model or self.tscu.config.model.name
        if self.opened is None or self.opened.path != run.path or self.view != "detail-view":
            self.open_run(run, tab="sample")
        else:
            self.detail.open_tab("sample")
        try:
            check_adapter(run.path)
        except ModelError as exc:
            self.detail.show_samples(None, str(exc))
            return
        prompt = self.detail.prompt
        self.samples.pop(run.path, None)
        self.detail.show_samples(None, f"generating {DEFAULT_TOKENS} tokens greedily from "
                                       f"{model}, then with the adapter...")
        self._generate(model, run.path, prompt)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "sample-prompt":
            self.action_generate_sample()

    @work(thread=True, exclusive=True, exit_on_error=False, group=MLX_GROUP, name=SAMPLE_WORKER)
    def _generate(self, model: str, run_dir: Path, prompt: str) -> tuple[Path, Samples]:
        from tscu_tui.engine.models.runtime import release_streams
        from tscu_tui.engine.runs.sample import generate_samples

        try:
            return run_dir, generate_samples(model, run_dir, prompt)
        finally:
            release_streams()  # MLX needs each thread to release its streams

    def _sample_note(self, path: Path) -> str:
        if path in self.samples:
            return f"greedy, {DEFAULT_TOKENS} new tokens each (prompt shown first)"
        return "enter (or g) generates from base and from base + adapter"

    # -- upload ----------------------------------------------------------------------------

    def action_upload_run(self) -> None:
        run = self.current_run()
        if run is None:
            self.notify("No run to upload.", severity="warning")
            return
        if self.uploading:
            self.notify("An upload is already running.", severity="warning")
            return
        hub = self.tscu.config.hub
        dialog = UploadDialog(run_name(run.path), self._last_repo_id or hub.hub_model_id,
                              hub.private)
        self.app.push_screen(dialog, callback=partial(self._start_upload, run.path))

    def _start_upload(self, run_dir: Path, repo_id: str | None) -> None:
        if not repo_id:
            return
        self._last_repo_id = repo_id
        self.uploading = True
        self._activity(f"uploading {run_name(run_dir)} to {repo_id}...")
        hub = self.tscu.config.hub
        self._upload(run_dir, repo_id, hub.private, hub.revision)

    @work(thread=True, exclusive=True, exit_on_error=False, group="hub", name=UPLOAD_WORKER)
    def _upload(self, run_dir: Path, repo_id: str, private: bool, revision: str) -> str:
        from tscu_tui.engine.hub.push import push_run

        def progress(line: str) -> None:
            self.app.call_from_thread(self._activity, f"upload: {line}")

        return push_run(run_dir, repo_id, private=private, revision=revision,
                        progress=progress)

    # -- workers ending --------------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Show results inline; TscuScreen's own handler (Textual calls both) also hands
        failures to the app's one error dialog."""
        worker, state = event.worker, event.state
        if worker.name == SAMPLE_WORKER:
            if state == WorkerState.SUCCESS and worker.result is not None:
                run_dir, samples = worker.result
                self.samples[run_dir] = samples
                if self.opened is not None and self.opened.path == run_dir:
                    self.detail.show_samples(samples, self._sample_note(run_dir))
                self.refresh_bindings()
            elif state == WorkerState.ERROR and worker.error is not None:
                self.detail.show_samples(None, f"generation failed: {one_line(worker.error)}")
        elif worker.name == UPLOAD_WORKER and state in (
                WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self.uploading = False
            if state == WorkerState.SUCCESS:
                self._activity(f"uploaded: {worker.result}")
                self.notify(f"Uploaded to {worker.result}")
            elif worker.error is not None:
                self._activity(f"upload failed: {one_line(worker.error)} "
                               f"(press {self._key('upload_run')} to retry)")

    # -- helpers ---------------------------------------------------------------------------

    def _activity(self, line: str) -> None:
        activity = self.query_one("#activity", Static)
        activity.update(line)
        activity.display = bool(line)

    def _key(self, binding_id: str) -> str:
        binding = next(b for b in self.BINDINGS
                       if isinstance(b, Binding) and b.id == binding_id)
        return self.tscu.keymap_for(binding)
