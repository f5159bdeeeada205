"""Every key of every screen, as currently mapped, with what it does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tscu_tui.host import TscuHost
from tscu_tui.keys import key_help

#: (heading, bindings) for each group of keys the help lists
KeyGroups = Sequence[tuple[str, Sequence[Binding | tuple[str, ...]]]]

INTRO = """\
[b]tscu[/b]: LoRA fine-tuning on MLX under a Thermodynamic Shannon Control Unit.

The [b]SCU[/b] sets the regularisation strength lambda so that S = ParamBPT / (DataBPT + \
ParamBPT) tracks its target. The [b]T-SCU governor[/b] reads watts and degrees and lowers \
the compute share c (duty cycling) to keep the run inside its power and temperature budget.

Every key below can be remapped in the [b]\\[keys][/b] section of tscu.toml. \
ctrl+p opens the command palette with every action.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", "Close", id="close_help")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 100; height: 90%; padding: 1 2;
                                  border: thick $accent; background: $panel; }
    HelpScreen .section { text-style: bold; color: $accent; margin-top: 1; }
    """

    def __init__(self, groups: KeyGroups) -> None:
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        app = cast(TscuHost, self.app)
        with VerticalScroll():
            yield Static(INTRO, id="help-intro")
            for title, bindings in self.groups:
                rows = [self._row(app, b) for b in bindings
                        if isinstance(b, Binding) and b.id]
                if rows:
                    yield Static(title, classes="section")
                    yield Static("\n".join(rows), markup=False)

    def _row(self, app: TscuHost, binding: Binding) -> str:
        keys = app.keymap_for(binding)
        shown = ", ".join(self.app.get_key_display(Binding(k, "")) for k in keys.split(","))
        assert binding.id is not None
        return f"  {shown:<16} {key_help(binding.id)}"
