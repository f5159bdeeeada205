"""Deterministic text corpora built from the Python standard library alone.

Two corpora from two different domains, both available wherever Python is:

* the *code* corpus (pretraining): the stdlib's ``.py`` sources, their
  docstrings and the prose of ``pydoc_data.topics``;
* the *Unicode* corpus (the demo fine-tuning set): short English records that
  describe characters of the Unicode character database (``unicodedata``).

Everything here is a pure function of the running Python's stdlib: the same
interpreter gives the same text, byte for byte. Used by
``scripts/build_tiny_model.py`` and by ``tests/test_embedded_model.py``.
"""

from __future__ import annotations

import ast
import inspect
import json
import sysconfig
import unicodedata
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

#: Folders of the stdlib left out of the code corpus (tests, the IDLE app, 2to3,
#: third-party packages) and ``pydoc_data``, whose topics are read directly.
SKIP_DIRS = frozenset({"site-packages", "test", "tests", "idlelib", "lib2to3", "pydoc_data"})

#: Every HOLDOUT_EVERY-th source file (by sorted path, from HOLDOUT_OFFSET on)
#: is held out of tokenizer and model training to measure held-out bits/token.
HOLDOUT_EVERY = 40
HOLDOUT_OFFSET = 20


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_source_files(root: Path | None = None) -> list[tuple[str, Path]]:
    """(relative posix path, path) of the stdlib's ``.py`` files, sorted by path."""
    root = root or stdlib_root()
    found = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if SKIP_DIRS.intersection(rel.parts[:-1]) or not path.is_file():
            continue
        found.append((rel.as_posix(), path))
    found.sort(key=lambda item: item[0])
    return found


def read_source(path: Path) -> str | None:
    """The file's text with ``\\n`` line ends, or None if it is not valid UTF-8."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def truncate_lines(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a line end when there is one."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut + 1] if cut > 0 else text[:limit]


def docstrings(source: str) -> list[str]:
    """Module, class and function docstrings of `source`, in source order."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    found = []
    for node in nodes:
        doc = ast.get_docstring(node, clean=False)
        if doc and doc.strip():
            found.append((getattr(node, "lineno", 0), inspect.cleandoc(doc)))
    found.sort(key=lambda item: item[0])
    return [doc for _, doc in found]


def pydoc_topics() -> list[str]:
    """The prose of ``pydoc_data.topics`` (the language reference), sorted by topic."""
    from pydoc_data.topics import topics

    return [f"{name}\n\n{topics[name].strip()}\n" for name in sorted(topics)]


@dataclass
class CodeCorpus:
    train: list[str] = field(default_factory=list)  # documents, in a fixed order
    heldout: list[str] = field(default_factory=list)  # held-out source files
    heldout_names: list[str] = field(default_factory=list)

    @property
    def train_chars(self) -> int:
        return sum(len(doc) for doc in self.train)


def code_corpus(max_chars: int = 4_400_000, per_file_chars: int = 8_000,
                heldout_chars: int = 200_000, with_topics: bool = True) -> CodeCorpus:
    """The pretraining corpus: pydoc topics, then docstrings, then sources.

    Sources are cut to `per_file_chars` each (so the long generated tables do not
    dominate) and added in path order until the corpus holds `max_chars`.
    Every HOLDOUT_EVERY-th file goes (source only, up to `heldout_chars` in all)
    to the held-out slice instead, and its docstrings are left out of training.
    """
    corpus = CodeCorpus()
    topics = pydoc_topics() if with_topics else []
    budget = max_chars - sum(len(t) for t in topics)
    doc_texts: list[str] = []
    sources: list[str] = []
    heldout_left = heldout_chars
    for index, (rel, path) in enumerate(stdlib_source_files()):
        text = read_source(path)
        if text is None or not text.strip():
            continue
        if index % HOLDOUT_EVERY == HOLDOUT_OFFSET:
            if heldout_left > 0:
                piece = truncate_lines(text, min(per_file_chars, heldout_left))
                corpus.heldout.append(f"# {rel}\n{piece}")
                corpus.heldout_names.append(rel)
                heldout_left -= len(piece)
            continue
        if budget <= 0:
            continue
        piece = f"# {rel}\n{truncate_lines(text, per_file_chars)}"
        docs = docstrings(text)
        doc_text = f"Docstrings of {rel}:\n\n" + "\n\n".join(docs) + "\n" if docs else ""
        doc_text = truncate_lines(doc_text, per_file_chars // 4)
        sources.append(piece)
        if doc_text:
            doc_texts.append(doc_text)
        budget -= len(piece) + len(doc_text)
    corpus.train = topics + doc_texts + sources
    return corpus


# --------------------------------------------------------------------------- Unicode

_CATEGORY = {
    "Lu": "an uppercase letter", "Ll": "a lowercase letter", "Lt": "a titlecase letter",
    "Lm": "a modifier letter", "Lo": "a letter without case",
    "Mn": "a nonspacing mark", "Mc": "a spacing combining mark", "Me": "an enclosing mark",
    "Nd": "a decimal digit", "Nl": "a letter number", "No": "a numeric character",
    "Pc": "a connector punctuation", "Pd": "a dash", "Ps": "an opening punctuation",
    "Pe": "a closing punctuation", "Pi": "an initial quotation mark",
    "Pf": "a final quotation mark", "Po": "a punctuation mark",
    "Sm": "a math symbol", "Sc": "a currency symbol", "Sk": "a modifier symbol",
    "So": "a symbol",
    "Zs": "a space separator", "Zl": "a line separator", "Zp": "a paragraph separator",
    "Cc": "a control character", "Cf": "a format character",
}
#: Categories left out: surrogates, private use, unassigned.
_EXCLUDED = frozenset({"Cs", "Co", "Cn"})
#: Categories whose character is not printed, only its code point.
_UNPRINTED = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
#: Characters whose names are algorithmic (a prefix plus the code point):
#: thousands of near-identical records that would swamp the corpus.
_ALGORITHMIC_NAMES = ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH", "HANGUL SYLLABLE",
                      "TANGUT IDEOGRAPH", "TANGUT COMPONENT", "KHITAN SMALL SCRIPT CHARACTER",
                      "NUSHU CHARACTER", "EGYPTIAN HIEROGLYPH", "CUNEIFORM SIGN")
_COMPAT_TAGS = {
    "font": "a font variant", "noBreak": "a no-break variant", "initial": "an initial form",
    "medial": "a medial form", "final": "a final form", "isolated": "an isolated form",
    "circle": "an encircled form", "super": "a superscript form", "sub": "a subscript form",
    "vertical": "a vertical form", "wide": "a wide form", "narrow": "a narrow form",
    "small": "a small form", "square": "a squared form", "fraction": "a fraction form",
    "compat": "a compatibility variant",
}


def _u(cp: int) -> str:
    return f"U+{cp:04X}"


def _codes(hexes: list[str]) -> str:
    return " ".join(_u(int(h, 16)) for h in hexes)


def _shown(ch: str) -> str:
    """The character as written in a record: marks on a dotted circle."""
    return "\u25cc" + ch if unicodedata.category(ch).startswith("M") else ch


def _number(value: float) -> str:
    frac = Fraction(value).limit_denominator(1000)
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"


def describe_char(ch: str) -> str | None:
    """One English sentence about `ch`, or None for characters left out."""
    cp = ord(ch)
    cat = unicodedata.category(ch)
    if cat in _EXCLUDED:
        return None
    name = unicodedata.name(ch, "")
    if name.startswith(_ALGORITHMIC_NAMES):
        return None
    kind = f"{_CATEGORY[cat]} ({cat})"
    if cat in _UNPRINTED:
        head = f"{_u(cp)} {name} is {kind}" if name else f"{_u(cp)} is {kind} with no name"
    else:
        head = f'"{_shown(ch)}" is {_u(cp)} {name}, {kind}'
    clauses = []
    decomposition = unicodedata.decomposition(ch).split()
    if decomposition and decomposition[0].startswith("<"):
        tag = decomposition[0].strip("<>")
        form = _COMPAT_TAGS.get(tag, "a compatibility variant")
        clauses.append(f"it is {form} of {_codes(decomposition[1:])}")
    elif decomposition:
        clauses.append(f"it decomposes to {_codes(decomposition)}")
    combining = unicodedata.combining(ch)
    if combining:
        clauses.append(f"its canonical combining class is {combining}")
    upper, lower = ch.upper(), ch.lower()
    if upper != ch and len(upper) == 1:
        clauses.append(f'its uppercase is "{upper}" ({_u(ord(upper))})')
    if lower != ch and len(lower) == 1:
        clauses.append(f'its lowercase is "{lower}" ({_u(ord(lower))})')
    value = unicodedata.numeric(ch, None)
    if value is not None:
        clauses.append(f"its numeric value is {_number(value)}")
    if unicodedata.mirrored(ch):
        clauses.append("it is mirrored in right-to-left text")
    return head + ("; " + "; ".join(clauses) if clauses else "") + "."


def unicode_documents(max_bytes: int = 1_250_000, chars_per_doc: int = 32) -> list[str]:
    """Documents of records about consecutive characters, in code point order.

    Each document covers one aligned run of `chars_per_doc` code points (those
    assigned and not left out); documents are added until the JSONL file they
    make (see `jsonl_line`) would pass `max_bytes`.
    """
    docs: list[str] = []
    size = 0
    for start in range(0, 0x110000, chars_per_doc):
        records = []
        for cp in range(start, start + chars_per_doc):
            record = describe_char(chr(cp))
            if record is not None:
                records.append(record)
        if not records:
            continue
        doc = (f"Unicode characters {_u(start)} to {_u(start + chars_per_doc - 1)}:\n"
               + "\n".join(records))
        line_size = len(jsonl_line(doc).encode("utf-8"))
        if size + line_size > max_bytes:
            break
        docs.append(doc)
        size += line_size
    return docs


def jsonl_line(text: str) -> str:
    """One ``{"text": ...}`` JSONL line, stable formatting, UTF-8 kept as is."""
    return json.dumps({"text": text}, ensure_ascii=False) + "\n"


def unicode_heldout(docs: list[str], every: int = 20) -> list[str]:
    """A deterministic, evenly spread slice of the Unicode documents."""
    return docs[every // 2 :: every]
