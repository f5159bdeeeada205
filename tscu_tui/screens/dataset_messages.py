"""Messages the dataset screen's workers post back (progress, results)."""

from __future__ import annotations

from textual.message import Message

from tscu_tui.engine.data import DatasetMeta, PrepareProgress
from tscu_tui.engine.data.preview import DatasetPreview


class Progressed(Message):
    """The preparation worker reached `progress`; a newer one replaces an unhandled one."""

    def __init__(self, progress: PrepareProgress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Progressed)


class Prepared(Message):
    """Preparation ended: `meta` on success, else the one-line reason."""

    def __init__(self, meta: DatasetMeta | None, error: str = "",
                 cancelled: bool = False) -> None:
        super().__init__()
        self.meta, self.error, self.cancelled = meta, error, cancelled


class Previewed(Message):
    """A preview ended: `preview` on success, else the one-line reason."""

    def __init__(self, preview: DatasetPreview | None, error: str = "") -> None:
        super().__init__()
        self.preview, self.error = preview, error
