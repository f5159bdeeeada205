"""Errors meant for people: one line that names what was wrong and where."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line, or its type name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class TscuError(Exception):
    """A failure caused by input or environment, reported as one line, no traceback."""


class ConfigError(TscuError):
    """A config file or override is invalid. Carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(self.problems[0] if len(self.problems) == 1 else
                         f"{len(self.problems)} config problems: " + "; ".join(self.problems))


class DataError(TscuError):
    """Dataset input cannot be read or prepared."""


class ModelError(TscuError):
    """A model (or its tokenizer) cannot be found or loaded."""
