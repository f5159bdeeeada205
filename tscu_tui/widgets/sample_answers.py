"""The model's latest answers to the held-out prompts, one line each (train screen).

Hidden until a run's first samples arrive (`data.sample_max_tokens` = 0 has none);
each evaluation replaces the lines, so the panel shows what the model says now.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tscu_tui.engine.events import SampleEvent

PROMPT_CHARS = 36  # the end of each prompt: the question, not the template's header


def _flat(text: str) -> str:
    return " ".join(text.split())


class SampleAnswers(Static):
    """`answers at step N` and `...prompt -> answer` lines."""

    DEFAULT_CSS = """
    SampleAnswers { height: auto; max-height: 5; padding: 0 1; display: none;
                    border-top: solid $primary-darken-2; }
    """

    def show(self, event: SampleEvent) -> None:
        text = Text(f"answers at step {event.step} (greedy):", style="bold")
        for prompt, answer in zip(event.prompts, event.answers, strict=True):
            asked = _flat(prompt)
            asked = asked if len(asked) <= PROMPT_CHARS else "..." + asked[-PROMPT_CHARS:]
            text.append("\n")
            text.append(asked, style="dim")
            text.append(" -> ")
            text.append(_flat(answer) or "(nothing)")
        self.update(text)
        self.display = True

    def clear(self) -> None:
        self.update("")
        self.display = False
