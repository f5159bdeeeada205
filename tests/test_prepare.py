"""`tscu prepare` and tscu_tui.engine.data: real tokenizer, real files, no mocks."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from fractions import Fraction
from pathlib import Path

import pytest

from tscu_tui.cli import main
from tscu_tui.engine.data import (
    PrepareCancelled,
    PreparedDataset,
    PrepareOptions,
    PrepareProgress,
    prepare_dataset,
)
from tscu_tui.engine.data.hub import wikitext_articles
from tscu_tui.engine.data.packing import SplitAssigner
from tscu_tui.engine.data.store import SplitMeta
from tscu_tui.engine.errors import DataError
from tscu_tui.engine.models.load import EMBEDDED_MODEL, EMBEDDED_MODEL_DIR, load_tokenizer

REPO = Path(__file__).resolve().parent.parent
WORDS = ["the", "of", "and", "a", "to", "in", "is", "was", "for", "on", "as", "with", "by",
         "at", "from", "his", "that", "it", "an", "were", "river", "castle", "engine",
         "signal", "harbour", "lantern", "orbit", "meadow", "copper", "violin"]
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


# -- fixtures ---------------------------------------------------------------------------------


def _build_tiny_tokenizer(folder: Path) -> str:
    """A byte-level BPE in the embedded model's shape: only used until it is built."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([" ".join(WORDS)] * 20, trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "bos_token": None, "chat_template": CHATML}))
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3", "eos_token_id": 0}))
    return str(folder)


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    if all((EMBEDDED_MODEL_DIR / f).is_file() for f in ("config.json", "tokenizer.json")):
        return EMBEDDED_MODEL
    return _build_tiny_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


@pytest.fixture(scope="session")
def tokenizer(model: str):  # type: ignore[no-untyped-def]
    return load_tokenizer(model)


def _docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 60))).capitalize() + "."
            for _ in range(n)]


def _chat(tokenizer, messages: list[dict[str, str]]) -> str:  # type: ignore[no-untyped-def]
    return tokenizer.apply_chat_template(messages, tokenize=False)


def _prepare(model: str, dataset: Path | str, out: Path, **kw) -> PreparedDataset:  # type: ignore[no-untyped-def]
    prepare_dataset(PrepareOptions(dataset=str(dataset), model=model, output_dir=out, **kw))
    return PreparedDataset.open(out)


def _shares(meta) -> dict[str, Fraction]:  # type: ignore[no-untyped-def]
    """The token shares the router used, read back from meta.json's sources."""
    shares = {}
    for split, source in (("validation", meta.validation_source), ("test", meta.test_source)):
        if source.startswith("fraction ") and float(source.split()[-1]) > 0:
            shares[split] = Fraction(float(source.split()[-1])).limit_denominator(1_000_000)
    return {"train": 1 - sum(shares.values(), Fraction(0)), **shares}


def _ids(tokenizer, doc: str) -> list[int]:  # type: ignore[no-untyped-def]
    return [*tokenizer.encode(doc), tokenizer.eos_token_id]


def _pieces(documents: list[list[int]], block_size: int) -> list[tuple[int, ...]]:
    """What packing makes of whole documents (data.long_records = "split"): each one a
    segment, one longer than a block cut into block-size pieces; sorted, since packing
    places them by best fit."""
    return sorted(tuple(ids[a:a + block_size]) for ids in documents
                  for a in range(0, len(ids), block_size))


def _segments(data: PreparedDataset, split: str) -> list[tuple[int, ...]]:
    return sorted(tuple(seg.tolist()) for seg in data.segments(split))


def _split_docs(data: PreparedDataset, tokenizer, docs: list[str]  # type: ignore[no-untyped-def]
                ) -> dict[str, list[list[int]]]:
    """The documents (each + EOS) each split must hold, routed by token share exactly
    as documented (packing.SplitAssigner)."""
    assigner = SplitAssigner(_shares(data.meta))
    parts: dict[str, list[list[int]]] = {s: [] for s in ("train", "validation", "test")}
    for doc in docs:
        ids = _ids(tokenizer, doc)
        parts[assigner.assign(len(ids))].append(ids)
    return parts


def _check_split(data: PreparedDataset, split: str, tokenizer, docs: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert _segments(data, split) == _pieces([_ids(tokenizer, d) for d in docs],
                                             data.meta.block_size), split
    assert data.meta.splits[split].documents == len(docs)


def _check_tokens(data: PreparedDataset, tokenizer, docs: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Token count = sum(len(encode(doc)) + 1) plus padding; every split holds whole
    documents (pieces of long ones), EOS after each, as the router assigns them."""
    meta = data.meta
    assert sum(s.content_tokens for s in meta.splits.values()) == sum(
        len(tokenizer.encode(d)) + 1 for d in docs)
    for split, expected in _split_docs(data, tokenizer, docs).items():
        assert _segments(data, split) == _pieces(expected, meta.block_size), split
        assert meta.splits[split].tokens % meta.block_size == 0
    assert sum(s.documents for s in meta.splits.values()) == len(docs)


# -- local files: token counts and document boundaries ----------------------------------------


@pytest.mark.parametrize("mode", ["paragraph", "line", "document"])
def test_txt_tokens_match_per_document_encoding(tmp_path: Path, model: str, tokenizer,
                                                mode: str) -> None:
    docs = _docs(120)
    text = "\n\n".join(docs) + "\n" if mode == "paragraph" else "\n".join(docs) + "\n"
    (tmp_path / "corpus.txt").write_text(text)
    if mode == "document":  # one document cannot be split: held-out splits take whole ones
        with pytest.raises(DataError, match="took 0 of 1 documents"):
            _prepare(model, tmp_path / "corpus.txt", tmp_path / "out", block_size=32,
                     txt_split=mode, validation_fraction=0.1)
    data = _prepare(model, tmp_path / "corpus.txt", tmp_path / "out", block_size=32,
                    txt_split=mode, validation_fraction=0.0 if mode == "document" else 0.1)
    _check_tokens(data, tokenizer, [text] if mode == "document" else docs)
    assert data.meta.source["files"]["train"][0]["format"] == f"txt ({mode})"


def test_jsonl_text_format(tmp_path: Path, model: str, tokenizer) -> None:
    docs = _docs(80, seed=1)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    data = _prepare(model, tmp_path / "d.jsonl", tmp_path / "out", block_size=16)
    _check_tokens(data, tokenizer, docs)


def test_jsonl_prompt_completion_uses_the_chat_template(tmp_path: Path, model: str,
                                                        tokenizer) -> None:
    pairs = list(zip(_docs(60, seed=2), _docs(60, seed=3), strict=True))
    (tmp_path / "d.jsonl").write_text("".join(
        json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in pairs))
    data = _prepare(model, tmp_path / "d.jsonl", tmp_path / "out", block_size=16)
    docs = [_chat(tokenizer, [{"role": "user", "content": p},
                              {"role": "assistant", "content": c}]) for p, c in pairs]
    _check_tokens(data, tokenizer, docs)
    assert data.meta.source["files"]["train"][0]["format"] == "completions (chat template)"


def test_jsonl_messages_format(tmp_path: Path, model: str, tokenizer) -> None:
    chats = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
             for q, a in zip(_docs(50, seed=4), _docs(50, seed=5), strict=True)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"messages": m}) + "\n" for m in chats))
    data = _prepare(model, tmp_path / "d.jsonl", tmp_path / "out", block_size=16)
    _check_tokens(data, tokenizer, [_chat(tokenizer, m) for m in chats])


def test_folder_of_files_is_read_recursively_in_path_order(tmp_path: Path, model: str,
                                                           tokenizer) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "b" / "c").mkdir(parents=True)
    (corpus / ".git").mkdir()
    a, b, c = _docs(40, seed=6), _docs(40, seed=7), _docs(40, seed=8)
    (corpus / "a.txt").write_text("\n\n".join(a))
    (corpus / "b" / "c" / "z.jsonl").write_text("".join(json.dumps({"text": d}) + "\n"
                                                        for d in c))
    (corpus / "b" / "b.txt").write_text("\n\n".join(b))
    (corpus / ".git" / "x.txt").write_text("hidden: never read")
    (corpus / "README.md").write_text("not a data file")
    data = _prepare(model, corpus, tmp_path / "out", block_size=16)
    _check_tokens(data, tokenizer, a + b + c)
    files = [f["path"] for f in data.meta.source["files"]["train"]]
    assert files == ["a.txt", "b/b.txt", "b/c/z.jsonl"]


# -- the prepared format ---------------------------------------------------------------------


def test_blocks_shape_validation_share_and_meta(tmp_path: Path, model: str) -> None:
    (tmp_path / "c.txt").write_text("\n\n".join(_docs(400, seed=9)))
    data = _prepare(model, tmp_path / "c.txt", tmp_path / "out", block_size=64,
                    validation_fraction=0.05)
    meta = data.meta
    n = meta.splits["train"].blocks + meta.splits["validation"].blocks
    assert n >= 100
    assert data.blocks("train").shape == (meta.splits["train"].blocks, 64)
    assert data.blocks("validation").shape == (meta.splits["validation"].blocks, 64)
    total = sum(s.content_tokens for s in meta.splits.values())
    assert abs(meta.splits["validation"].content_tokens / total - 0.05) < 0.01
    assert meta.splits["test"] == SplitMeta(0, 0, 0, 0, 0) and not meta.has_test
    assert not data.blocks("train").flags.writeable
    assert meta.validation_source == "fraction 0.05" and meta.test_source == "none"
    assert meta.dtype in ("uint16", "uint32") and meta.format_version == 3
    assert meta.content_hash.startswith("sha256:") and meta.created.endswith("Z")
    data.verify()
    on_disk = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert on_disk["splits"]["train"]["blocks"] == meta.splits["train"].blocks
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "meta.json", "test.bin", "test.flags.bin", "train.bin", "train.flags.bin",
        "validation.bin", "validation.flags.bin"]


def test_damaged_dataset_is_refused_with_one_line(tmp_path: Path, model: str) -> None:
    (tmp_path / "c.txt").write_text("\n\n".join(_docs(100)))
    out = tmp_path / "out"
    data = _prepare(model, tmp_path / "c.txt", out, block_size=16)
    with (out / "validation.bin").open("r+b") as f:  # same size, other content
        f.write(b"\xff\xff")
    with pytest.raises(DataError, match="do not match the content_hash"):
        PreparedDataset.open(out).verify()
    with (out / "train.bin").open("ab") as f:
        f.write(b"\0\0")
    with pytest.raises(DataError, match=r"train\.bin is \d+ bytes but meta\.json says"):
        PreparedDataset.open(out)
    meta = json.loads((out / "meta.json").read_text())
    del meta["block_size"]
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="'block_size' is missing"):
        PreparedDataset.open(out)
    assert data.meta.block_size == 16


def test_max_tokens_caps_the_total_exactly(tmp_path: Path, model: str) -> None:
    (tmp_path / "c.txt").write_text("\n\n".join(_docs(300)))
    data = _prepare(model, tmp_path / "c.txt", tmp_path / "out", block_size=16,
                    max_tokens=1000, validation_fraction=0.1)
    meta = data.meta
    assert sum(s.content_tokens for s in meta.splits.values()) == 1000
    assert meta.truncated and meta.max_tokens == 1000


def test_local_dataset_folder_goes_through_the_datasets_library(tmp_path: Path, model: str,
                                                                tokenizer) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "hfdata"
    folder.mkdir()
    train, val = _docs(200, seed=10), _docs(30, seed=11)
    pq.write_table(pa.table({"body": train, "n": list(range(200))}),
                   folder / "train-00000-of-00001.parquet")
    pq.write_table(pa.table({"body": val, "n": list(range(30))}),
                   folder / "validation-00000-of-00001.parquet")
    data = _prepare(model, folder, tmp_path / "out", block_size=16, text_column="body")
    assert data.meta.validation_source == "dataset split"
    assert data.meta.source["kind"] == "local dataset"
    for split, docs in (("train", train), ("validation", val)):
        _check_split(data, split, tokenizer, docs)
    with pytest.raises(DataError, match=r"no column 'text' \(columns: body, n\)"):
        _prepare(model, folder, tmp_path / "out2", block_size=16)
    assert not (tmp_path / "out2").exists()


def test_mlx_lm_layout_uses_its_own_validation_file(tmp_path: Path, model: str,
                                                    tokenizer) -> None:
    folder = tmp_path / "mlx"
    folder.mkdir()
    train, valid = _docs(100, seed=12), _docs(20, seed=13)
    for name, docs in (("train.jsonl", train), ("valid.jsonl", valid)):
        (folder / name).write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    data = _prepare(model, folder, tmp_path / "out", block_size=16)
    assert data.meta.validation_source == "dataset split" and data.meta.test_source == "none"
    _check_split(data, "validation", tokenizer, valid)
    _check_split(data, "train", tokenizer, train)


def test_mlx_lm_layout_with_test_jsonl_uses_all_three_files(tmp_path: Path, model: str,
                                                           tokenizer) -> None:
    folder = tmp_path / "mlx"
    folder.mkdir()
    splits = {"train": _docs(100, seed=12), "validation": _docs(20, seed=13),
              "test": _docs(20, seed=14)}
    for name, docs in (("train.jsonl", splits["train"]), ("valid.jsonl", splits["validation"]),
                       ("test.jsonl", splits["test"])):
        (folder / name).write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    data = _prepare(model, folder, tmp_path / "out", block_size=16, test_fraction=0.2)
    assert data.meta.test_source == "dataset split" and data.meta.has_test
    for split, docs in splits.items():  # the file's own split wins over the fraction
        _check_split(data, split, tokenizer, docs)


@pytest.mark.parametrize("own_validation", [False, True])
def test_test_fraction_takes_whole_documents_from_training(tmp_path: Path, model: str,
                                                           tokenizer, own_validation: bool
                                                           ) -> None:
    docs = _docs(300, seed=15)
    if own_validation:
        folder = tmp_path / "mlx"
        folder.mkdir()
        (folder / "train.jsonl").write_text("".join(json.dumps({"text": d}) + "\n"
                                                    for d in docs))
        (folder / "valid.jsonl").write_text(json.dumps({"text": "held out " * 40}) + "\n")
        source = folder
    else:
        source = tmp_path / "c.txt"
        source.write_text("\n\n".join(docs))
    data = _prepare(model, source, tmp_path / "out", block_size=16, validation_fraction=0.1,
                    test_fraction=0.15)
    meta = data.meta
    assert meta.test_source == "fraction 0.15" and meta.has_test
    if own_validation:
        assert meta.validation_source == "dataset split"
        expected = SplitAssigner({"train": Fraction(17, 20), "test": Fraction(3, 20)})
        parts: dict[str, list[list[int]]] = {"train": [], "test": []}
        for doc in docs:
            ids = _ids(tokenizer, doc)
            parts[expected.assign(len(ids))].append(ids)
        for split, documents in parts.items():  # whole documents, each on one side
            assert _segments(data, split) == _pieces(documents, 16), split
    else:
        _check_tokens(data, tokenizer, docs)
    routed = meta.splits["train"].content_tokens + meta.splits["test"].content_tokens + (
        0 if own_validation else meta.splits["validation"].content_tokens)
    assert abs(meta.splits["test"].content_tokens / routed - 0.15) < 0.02


def _older_format(out: Path, version: int) -> None:
    """Make a prepared folder what an older tscu wrote: no flag files (format < 3), no
    test split (format 1), the hash over the token files alone."""
    from tscu_tui.engine.data.packing import sha256_files

    meta = json.loads((out / "meta.json").read_text())
    meta["format_version"] = version
    for key in ("train_on", "long_records", "chat_template", "loss_token_share", "example",
                "sample_prompts"):
        del meta[key]
    for split in meta["splits"].values():
        del split["padding"], split["loss_tokens"]
    for flags in out.glob("*.flags.bin"):
        flags.unlink()
    names = ["train.bin", "validation.bin"]
    if version == 1:
        del meta["splits"]["test"], meta["test_source"]
        (out / "test.bin").unlink()
    else:
        names.append("test.bin")
    meta["content_hash"] = "sha256:" + sha256_files([out / n for n in names])
    (out / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("version", [1, 2])
def test_older_formats_still_open_training_every_target(tmp_path: Path, model: str,
                                                        version: int) -> None:
    (tmp_path / "c.txt").write_text("\n\n".join(_docs(100)))
    out = tmp_path / "out"
    _prepare(model, tmp_path / "c.txt", out, block_size=16, test_fraction=0.1)
    _older_format(out, version)
    data = PreparedDataset.open(out)
    assert not data.meta.has_flags and data.flags("train") is None
    assert data.meta.split("train").trained_tokens == data.meta.split("train").tokens - \
        data.meta.split("train").blocks
    if version == 1:
        assert data.meta.splits["test"] == SplitMeta(0, 0, 0)
        assert data.meta.test_source == "none"
        assert data.blocks("test").shape == (0, 16)
    else:
        assert data.meta.has_test
    data.verify()  # an older format's hash is the hash of its token files


def test_wikitext_lines_are_rebuilt_into_articles() -> None:
    lines = ["", " = Alpha = \n", "", " Alpha is a letter . \n", " = = History = = \n",
             " It is old . \n", "", " = Beta = \n", " Beta follows . \n", ""]
    assert list(wikitext_articles(lines)) == [
        "= Alpha = \n\n Alpha is a letter . \n = = History = = \n It is old .",
        "= Beta = \n Beta follows ."]


# -- progress, cancel, memory -----------------------------------------------------------------


def test_progress_is_reported_and_cancel_leaves_nothing(tmp_path: Path, model: str) -> None:
    (tmp_path / "c.txt").write_text("\n\n".join(_docs(3000)))
    seen: list[PrepareProgress] = []
    _prepare_with = PrepareOptions(dataset=str(tmp_path / "c.txt"), model=model,
                                   output_dir=tmp_path / "out", block_size=16)
    prepare_dataset(_prepare_with, progress=seen.append)
    stages = [p.stage for p in seen]
    assert stages[0] == "resolving" and stages[-1] == "done" and "reading" in stages
    assert seen[-1].tokens > 0 and seen[-1].documents == 3000
    assert len(seen) < 50  # throttled

    cancel = threading.Event()

    def stop(p: PrepareProgress) -> None:
        if p.stage == "reading":
            cancel.set()

    options = PrepareOptions(dataset=str(tmp_path / "c.txt"), model=model,
                             output_dir=tmp_path / "cancelled", block_size=16)
    with pytest.raises(PrepareCancelled, match="cancelled"):
        prepare_dataset(options, progress=stop, cancel=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "out"]


def test_memory_does_not_grow_with_corpus_size(tmp_path: Path, model: str) -> None:
    def peak(n_docs: int) -> int:
        path = tmp_path / f"c{n_docs}.txt"
        path.write_text("\n\n".join(_docs(n_docs, seed=n_docs)))

        started: list[bool] = []

        def on_progress(p: PrepareProgress) -> None:
            if p.stage == "reading" and not started:  # measure reading and packing only
                started.append(True)
                tracemalloc.reset_peak()

        tracemalloc.start()
        try:
            prepare_dataset(PrepareOptions(dataset=str(path), model=model, block_size=64,
                                           output_dir=tmp_path / f"out{n_docs}"),
                            progress=on_progress)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(300)  # warm-up: first-call imports and caches are not the corpus
    small, large = peak(2500), peak(10000)
    corpus_bytes = (tmp_path / "c10000.txt").stat().st_size
    assert corpus_bytes > 1_000_000
    # Peaks stay flat (~1 MB): batches and hash chunks, not the corpus.
    assert large < small * 1.2 + 100_000, (small, large)


# -- the CLI: one-line errors, nothing left behind ---------------------------------------------


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("\n  \n\n")
    (tmp_path / "binary.txt").write_bytes(b"ELF\x00\x01\x02" * 100)
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n\n{"text": "fine"}\n{"text": oops}\n')
    (tmp_path / "nokey.jsonl").write_text('{"text": "ok"}\n{"body": "x"}\n')
    (tmp_path / "mixed.jsonl").write_text(
        '{"text": "ok"}\n{"messages": [{"role": "user", "content": "hi"}]}\n')
    (tmp_path / "tiny.txt").write_text("Just a few words.")
    return {
        "missing": (str(tmp_path / "nope.txt"), "no such file or folder"),
        "empty": (str(tmp_path / "empty.txt"), "empty.txt: empty file"),
        "blank": (str(tmp_path / "blank.txt"), "blank.txt: no documents"),
        "binary": (str(tmp_path / "binary.txt"), "binary.txt: binary file"),
        "latin1": (str(tmp_path / "latin1.txt"), "latin1.txt: not UTF-8"),
        "malformed": (str(tmp_path / "bad.jsonl"), "bad.jsonl:4: invalid JSON"),
        "missing key": (str(tmp_path / "nokey.jsonl"), "nokey.jsonl:2: no 'text'"),
        "mixed": (str(tmp_path / "mixed.jsonl"), "mixed.jsonl:2: a 'chat' record"),
        "too small": (str(tmp_path / "tiny.txt"), "too little text for a validation set"),
        "unknown": ("wikitxt", "unknown dataset 'wikitxt': did you mean 'wikitext'?"),
        "c4 unbounded": ("c4", "bound it with --max-tokens"),
    }


def test_cli_bad_inputs_fail_with_one_line_and_leave_nothing(
        tmp_path: Path, model: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no tscu.toml here: built-in defaults
    for case, (dataset, message) in _bad_inputs(tmp_path).items():
        out = tmp_path / "out"
        rc = main(["prepare", "--dataset", dataset, "--model", model, "--output-dir", str(out),
                   "--block-size", "64"])
        err = capsys.readouterr().err
        assert rc == 1, case
        assert err.count("\n") == 1 and err.startswith("tscu: error: "), (case, err)
        assert message in err, (case, err)
        assert not out.exists(), case
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], case


def test_cli_option_errors_and_overwrite(tmp_path: Path, model: str,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text("\n\n".join(_docs(200)))
    base = ["prepare", "--dataset", "c.txt", "--model", model, "--output-dir", "out"]
    for extra, message in ((["--block-size", "1"], "--block-size must be an integer >= 2"),
                           (["--validation-fraction", "0.7"], "--validation-fraction must be"),
                           (["--test-fraction", "-0.1"], "--test-fraction must be between"),
                           (["--test-fraction", "0.5", "--validation-fraction", "0.5"],
                            "--validation-fraction 0.5 and --test-fraction 0.5 leave no "
                            "training data")):
        assert main([*base, *extra]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert main([*base, "--block-size", "16"]) == 0
    assert "train" in capsys.readouterr().out
    assert main([*base, "--block-size", "16"]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main([*base, "--block-size", "32", "--overwrite"]) == 0
    assert PreparedDataset.open(tmp_path / "out").meta.block_size == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "out"]


def _run_cli(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tscu_tui", "prepare", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})
    return proc, time.monotonic() - started


def _hub_reachable() -> bool:
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info("Salesforce/wikitext", timeout=3)
    except Exception:
        return False
    return True


def test_cli_subprocess_wikitext_fails_fast_when_hub_unreachable(tmp_path: Path,
                                                                  model: str) -> None:
    if _hub_reachable():
        pytest.skip("the Hugging Face Hub is reachable from here")
    proc, elapsed = _run_cli(tmp_path, "--dataset", "wikitext", "--model", model,
                             "--output-dir", "out", HF_HUB_ETAG_TIMEOUT="3")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("tscu: error: cannot reach the Hugging Face Hub for dataset "
                                  "'wikitext'")
    assert "local .txt/.jsonl files and folders work offline" in proc.stderr
    assert elapsed < 15 and not (tmp_path / "out").exists()


def test_hub_unreachable_at_a_dead_endpoint_fails_fast(tmp_path: Path, model: str) -> None:
    # The same code path, deterministic even where the real Hub is reachable.
    proc, elapsed = _run_cli(tmp_path, "--dataset", "someone/some-dataset", "--model", model,
                             "--output-dir", "out", HF_ENDPOINT="http://127.0.0.1:9",
                             HF_HUB_ETAG_TIMEOUT="3")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot reach the Hugging Face Hub for dataset 'someone/some-dataset'" in proc.stderr
    assert elapsed < 15 and not (tmp_path / "out").exists()


def test_overwrite_never_replaces_a_folder_that_is_not_a_prepared_dataset(
        tmp_path: Path, model: str) -> None:
    (tmp_path / "c.txt").write_text("\n\n".join(_docs(200)))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.md").write_text("precious")
    with pytest.raises(DataError, match="not a prepared dataset"):
        _prepare(model, tmp_path / "c.txt", tmp_path / "notes", overwrite=True)
    with pytest.raises(DataError, match="contains the dataset"):
        _prepare(model, tmp_path / "c.txt", tmp_path, overwrite=True)
    assert (tmp_path / "notes" / "keep.md").read_text() == "precious"
