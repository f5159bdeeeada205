"""The dataset screen's read-outs: a prepared dataset's meta, a preview, a progress line.

Plain functions turn engine objects into text (tested without a terminal); the
panels are Statics that show that text, so long paths and documents end in an
ellipsis instead of wrapping the layout out of an 80x24 terminal.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tscu_tui.engine.data import DatasetMeta, PrepareProgress
from tscu_tui.engine.data.preview import DatasetPreview

STAGES = {"resolving": "opening dataset", "tokenizer": "loading tokenizer",
          "hashing": "hashing", "done": "done"}


def short(n: float) -> str:
    """1234 -> 1.2k, 5_600_000 -> 5.6M: counts that fit a narrow panel."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            return f"{n / limit:.1f}{suffix}"
    return f"{n:.0f}"


def meta_text(meta: DatasetMeta) -> str:
    train, valid, test = meta.split("train"), meta.split("validation"), meta.split("test")
    source = meta.source.get("dataset", "?")
    capped = f", capped at {meta.max_tokens:,}" if meta.truncated and meta.max_tokens else ""
    documents = f"{train.documents:,} + {valid.documents:,}"
    return "\n".join([
        f"train {train.content_tokens:>11,} tok {train.blocks:>8,} blk",
        f"valid {valid.content_tokens:>11,} tok {valid.blocks:>8,} blk",
        *([f"test  {test.content_tokens:>11,} tok {test.blocks:>8,} blk"]
          if meta.has_test else []),
        f"documents {documents}{f' + {test.documents:,}' if meta.has_test else ''}{capped}",
        loss_text(meta),
        f"block {meta.block_size}, vocab {meta.vocab_size:,}, {meta.dtype}",
        f"source {source} ({meta.source.get('kind', '?')})",
        f"held out: valid {_held_out(meta.validation_source)}, "
        f"test {_held_out(meta.test_source)}",
        f"hash {meta.content_hash}",
    ])


def loss_text(meta: DatasetMeta) -> str:
    """The share of training tokens that carry loss, what trains, and the padding."""
    if not meta.has_flags:
        return f"loss on every token (format {meta.format_version}: prepare again for masks)"
    share = meta.loss_token_share
    what = meta.train_on if meta.chat_template is not None else "text"
    padding = sum(s.padding for s in meta.splits.values())
    total = sum(s.tokens for s in meta.splits.values())
    pad = f", pad {padding / total:.0%}" if total else ""
    return f"loss on {share:.1%} ({what}){pad}" if share is not None else \
        f"loss on no token ({what})"


def example_text(meta: DatasetMeta) -> Text | None:
    """A prepared chat record as rendered, the text that trains highlighted."""
    if meta.chat_template is None or not meta.example:
        return None
    text = Text()
    for piece, trained in meta.example:
        text.append(str(piece), style="bold reverse" if trained else "dim")
    return text


def _held_out(source: str) -> str:
    """meta.json's split source, short: "fraction 0.1" -> "0.1", "dataset split" -> "own"."""
    return {"dataset split": "own"}.get(source, source.removeprefix("fraction "))


def preview_text(preview: DatasetPreview) -> str:
    n = len(preview.documents)
    lines = [f"{n} document{'s' if n != 1 else ''}: mean {preview.mean_tokens:,.0f} tokens, "
             f"median {preview.median_tokens:,.0f}, {preview.chars_per_token:.2f} chars/token"]
    if preview.estimated_blocks is not None:
        about = ("size unknown" if preview.estimated_tokens is None
                 else f"about {short(preview.estimated_tokens)} tokens in the source")
        limit = f" (limit {preview.max_tokens:,})" if preview.max_tokens else ""
        lines.append(f"{about} -> ~{preview.estimated_blocks:,} blocks of "
                     f"{preview.block_size}{limit}")
    else:
        lines.append("source size unknown (streamed); set a token limit to bound it")
    for i, doc in enumerate(preview.documents, 1):
        text = " ".join(doc.text.split())  # one line per document: newlines become spaces
        lines.append(f"{i:>2} {doc.tokens:>6,} tok  {text}")
    return "\n".join(lines)


def progress_text(p: PrepareProgress, elapsed_s: float) -> str:
    """Stage, documents, tokens and rate in one line."""
    label = STAGES.get(p.stage, f"reading {p.split or ''}".strip())
    rate = (f"  {short(p.tokens / elapsed_s)} tok/s"
            if p.stage == "reading" and elapsed_s > 0 else "")
    return f"{label}: {p.documents:,} docs  {short(p.tokens)} tok{rate}"


class _Plain(Static):
    """A Static that never parses markup: paths and document text may hold brackets."""

    def __init__(self, *, id: str) -> None:
        super().__init__("", id=id, markup=False)


class MetaPanel(_Plain):
    """The prepared dataset at data.path: its meta, or why there is none."""

    DEFAULT_CSS = """
    MetaPanel { border: round $primary-darken-2; border-title-color: $text-muted;
                padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    MetaPanel.-missing { color: $text-muted; }
    MetaPanel.-error { color: $error; }
    """

    def on_mount(self) -> None:
        self.border_title = "Prepared dataset"

    def show_meta(self, meta: DatasetMeta) -> None:
        self.set_classes("")
        self.update(meta_text(meta))

    def show_missing(self, path: str) -> None:
        self.set_classes("-missing")
        self.update(f"none yet at {path}")

    def show_error(self, line: str) -> None:
        self.set_classes("-error")
        self.update(line)


class PreviewPanel(_Plain):
    """The first documents of the source and their token statistics."""

    DEFAULT_CSS = """
    PreviewPanel { text-wrap: nowrap; text-overflow: ellipsis; }
    PreviewPanel.-empty { color: $text-muted; }
    PreviewPanel.-example { text-wrap: wrap; }
    """

    def show_hint(self, line: str) -> None:
        self.set_classes("-empty")
        self.update(line)

    def show_preview(self, preview: DatasetPreview) -> None:
        self.set_classes("")
        self.update(preview_text(preview))

    def show_example(self, example: Text) -> None:
        """A prepared record, wrapped: the template's markup and the trained answers."""
        self.set_classes("-example")
        self.update(example)
