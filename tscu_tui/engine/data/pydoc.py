"""`--dataset pydoc`: real English that ships with every Python, offline.

`pydoc_data.topics.topics` holds the help texts of the Python language
reference (`help("assert")`, `help("with")`, ...): one document per topic, in
topic order. Its size depends on the Python version (about 465 KB of text in
79 topics on 3.11); `describe()` records which version was read.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import Any

from tscu_tui.engine.data.documents import TRAIN, ChatTemplate, Document, ReadPosition, Source

NAME = "pydoc"


def pydoc_topics() -> dict[str, str]:
    from pydoc_data.topics import topics

    return dict(topics)


class PydocSource(Source):
    """The language reference's help topics; split into train/validation by blocks."""

    def documents(self, split: str, chat: ChatTemplate,
                  position: ReadPosition) -> Iterator[Document]:
        topics = pydoc_topics() if split == TRAIN else {}
        position.reset(len(topics), "topics")
        for done, name in enumerate(sorted(topics), 1):
            yield Document(topics[name])
            position.completed = done

    def describe(self) -> dict[str, Any]:
        return {"kind": "built-in", "dataset": NAME,
                "source": f"pydoc_data.topics of Python {platform.python_version()}",
                "topics": len(pydoc_topics())}
