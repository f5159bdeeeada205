"""Chat records: which tokens carry loss, on the real templates of Qwen3, SmolLM2 (ChatML),
Llama 3 and Gemma; packing that keeps documents apart; bad chat input.

The templates are the published ones: tests/data/chat_templates/*.jinja hold the
`chat_template` of Qwen/Qwen3-0.6B, meta-llama/Meta-Llama-3-8B-Instruct,
meta-llama/Llama-3.2-3B-Instruct and google/gemma-2-2b-it as their
tokenizer_config.json publishes them (llama.cpp keeps the same copies under
models/templates/); SmolLM2's is read from its GGUF's metadata with the gguf
package, the embedded model's from its tokenizer_config.json. Their tokenizers
are not available offline, so those templates run on the embedded model's
tokenizer with their special tokens added as such, as in the real tokenizers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tscu_tui.cli import main
from tscu_tui.engine.data import PreparedDataset, PrepareOptions, prepare_dataset
from tscu_tui.engine.data.chat import ChatTemplate, render_record
from tscu_tui.engine.data.documents import Document
from tscu_tui.engine.data.encoding import PAD, START, TRAINED, Encoder
from tscu_tui.engine.models.load import EMBEDDED_MODEL, load_tokenizer

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
SPECIAL = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
           "<bos>", "<start_of_turn>", "<end_of_turn>"]
CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris, on the Seine."},
    {"role": "user", "content": "And of Italy?\nOne word."},
    {"role": "assistant", "content": "Rome.\nIt has been since 1871."},
]
#: (template file, end-of-turn marker, extra template variables, system role allowed)
PUBLISHED = {
    "qwen3": ("qwen3.jinja", "<|im_end|>\n", {"enable_thinking": False}, True),
    "llama3": ("llama3.jinja", "<|eot_id|>", {}, True),
    "llama3.2": ("llama3.2.jinja", "<|eot_id|>", {}, True),
    "gemma2": ("gemma2.jinja", "<end_of_turn>\n", {}, False),
}


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    return load_tokenizer(EMBEDDED_MODEL)


@pytest.fixture(scope="module")
def with_specials():  # type: ignore[no-untyped-def]
    """The embedded tokenizer with the published templates' special tokens (and Qwen3's
    <think> tags, added tokens there too) as single tokens."""
    tokenizer = load_tokenizer(EMBEDDED_MODEL)
    tokenizer._tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL})
    tokenizer._tokenizer.add_tokens(["<think>", "</think>"])
    tokenizer._tokenizer.bos_token = "<bos>"
    return tokenizer


def _trained_runs(tokenizer, text: str, spans) -> list[str]:  # type: ignore[no-untyped-def]
    """Each run of trained tokens, decoded."""
    encoder = Encoder(tokenizer, "test")
    batch = encoder.encode([Document(text, templated=True, spans=spans)])
    trained = (batch.flags & TRAINED).astype(bool)
    ids = batch.tokens.tolist()
    runs, current = [], []
    for token, on in zip(ids, trained, strict=True):
        if on:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [encoder.decode(run) for run in runs]


def _expect(messages: list[dict[str, str]], marker: str, eos: str, trim: bool,
            last_only: bool = False) -> list[str]:
    answers = [m["content"].strip() if trim else m["content"] for m in messages
               if m["role"] == "assistant"]
    runs = [a + marker for a in answers]
    runs[-1] += eos  # the last turn ends the record: the appended EOS trains too
    return runs[-1:] if last_only else runs


@pytest.mark.parametrize("name", list(PUBLISHED))
@pytest.mark.parametrize("train_on", ["completions", "last_turn"])
def test_published_templates_train_exactly_the_answers_and_end_markers(
        with_specials, name: str, train_on: str) -> None:  # type: ignore[no-untyped-def]
    file, marker, kwargs, system = PUBLISHED[name]
    chat = ChatTemplate(with_specials, (TEMPLATES / file).read_text(), kwargs, file)
    messages = CONVERSATION if system else CONVERSATION[1:]
    rendered = render_record(chat, messages, None, train_on, "test")
    assert chat.end_marker == marker
    runs = _trained_runs(with_specials, rendered.text, rendered.spans)
    trim = name != "qwen3"  # Llama 3 and Gemma render `content | trim`
    assert runs == _expect(messages, marker, "<|endoftext|>", trim, train_on == "last_turn")


def test_qwen3_in_thinking_mode_trains_the_empty_think_block_it_writes(with_specials
                                                                        ) -> None:  # type: ignore[no-untyped-def]
    """Without enable_thinking=false, Qwen3's generation prompt stops at the header and
    its template writes an empty think block into the last turn: the model writes that
    block itself at inference, so it is trained; earlier turns render without one."""
    chat = ChatTemplate(with_specials, (TEMPLATES / "qwen3.jinja").read_text(), {}, "qwen3")
    rendered = render_record(chat, CONVERSATION, None, "completions", "test")
    runs = _trained_runs(with_specials, rendered.text, rendered.spans)
    assert runs == ["Paris, on the Seine.<|im_end|>\n",
                    "<think>\n\n</think>\n\nRome.\nIt has been since 1871.<|im_end|>\n"
                    "<|endoftext|>"]


def test_chatml_of_the_embedded_model_and_of_smollm2(tiny, smollm2_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from tscu_tui.engine.models.gguf import read_header
    from tscu_tui.engine.models.gguf_cache import gguf_file

    smol_template = read_header(gguf_file("smollm2-135m")).metadata["tokenizer.chat_template"]
    assert "<|im_start|>" in smol_template  # ChatML, with a default system prompt
    smol = load_tokenizer("smollm2-135m")
    for tokenizer, template, eos in ((tiny, None, "<|endoftext|>"),
                                     (smol, smol_template, "<|im_end|>")):
        chat = ChatTemplate(tokenizer, template)
        for train_on in ("completions", "last_turn"):
            rendered = render_record(chat, CONVERSATION[1:], None, train_on, "test")
            assert _trained_runs(tokenizer, rendered.text, rendered.spans) == _expect(
                CONVERSATION[1:], "<|im_end|>\n", eos, False, train_on == "last_turn")


# -- prepare: masks on disk, packing, summary ------------------------------------------------


def _write_chats(path: Path, n: int, *, last_user: bool = False) -> list[list[dict[str, str]]]:
    chats = []
    for i in range(n):
        messages = [{"role": "user", "content": f"Question {i}: what is {i} plus {i}?"},
                    {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]
        if i % 3 == 0:
            messages += [{"role": "user", "content": "Explain."},
                         {"role": "assistant", "content": "Adding a number to itself "
                                                          "doubles it. " * (i % 7)}]
        if last_user:
            messages.append({"role": "user", "content": "Thanks."})
        chats.append(messages)
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in chats))
    return chats


def test_prepare_records_masks_share_and_keeps_documents_apart(tmp_path: Path,
                                                                capsys) -> None:  # type: ignore[no-untyped-def]
    _write_chats(tmp_path / "chat.jsonl", 120)
    rc = main(["prepare", "--dataset", str(tmp_path / "chat.jsonl"), "--model", EMBEDDED_MODEL,
               "--output-dir", str(tmp_path / "out"), "--block-size", "64",
               "--validation-fraction", "0.1"])
    out = capsys.readouterr().out
    assert rc == 0
    data = PreparedDataset.open(tmp_path / "out")
    meta = data.meta
    train = meta.split("train")
    assert meta.train_on == "completions" and meta.chat_template is not None
    flags = data.flags("train")
    assert flags is not None and train.loss_tokens == int(np.count_nonzero(flags & TRAINED))
    assert meta.loss_token_share == pytest.approx(train.loss_tokens / train.content_tokens)
    assert 0.1 < meta.loss_token_share < 0.7  # the prompts and headers do not train
    assert f"loss on {meta.loss_token_share:.1%} of the training tokens" in out
    on_disk = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert on_disk["loss_token_share"] == meta.loss_token_share
    # Every block starts a segment, and no segment crosses a block edge.
    blocks = data.flag_blocks("train")
    assert blocks is not None and np.all(blocks[:, 0] & START)
    assert not np.any(blocks[:, 0] & TRAINED)  # nothing before a block's first token
    # Padding carries no loss, and only ends blocks.
    pad = (blocks & PAD).astype(bool)
    assert not np.any(blocks[pad] & TRAINED)
    assert all(not row[np.argmax(row):].size or np.all(row[np.argmax(row):])
               for row in pad if row.any())
    # The example shown on the dataset screen marks the answers, not the questions.
    pieces = {text: on for text, on in meta.example or []}
    assert any(on and "plus" in text and "Question" not in text for text, on in pieces.items())
    assert any(not on and "Question" in text for text, on in pieces.items())
    prompts = meta.sample_prompts or []
    assert prompts and prompts[0]["text"].endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("mode", ["truncate", "drop", "split"])
def test_long_records_are_split_truncated_or_dropped_and_counted(tmp_path: Path, mode: str,
                                                                 capsys) -> None:  # type: ignore[no-untyped-def]
    docs = ["short one. " * 2, "a long one that needs several blocks. " * 30, "short two."] * 8
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    rc = main(["prepare", "--dataset", str(tmp_path / "d.jsonl"), "--model", EMBEDDED_MODEL,
               "--output-dir", str(tmp_path / "out"), "--block-size", "32",
               "--validation-fraction", "0", "--long-records", mode])
    out = capsys.readouterr().out
    assert rc == 0
    data = PreparedDataset.open(tmp_path / "out")
    long = data.meta.long_records or {}
    counted = {"split": "split", "truncate": "truncated", "drop": "dropped"}[mode]
    assert long["mode"] == mode and long[counted] == 8
    assert "warning: 8 documents longer than a block of 32 were" in out
    lengths = sorted({len(s) for s in data.segments("train")})
    if mode == "drop":
        assert data.meta.split("train").documents == 16 and max(lengths) < 32
    elif mode == "truncate":
        assert lengths[-1] == 32 and data.meta.split("train").documents == 24


# -- bad chat input: one line naming file, line and key; nothing written --------------------


def test_bad_chat_input_fails_with_one_line_and_leaves_nothing(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    _write_chats(tmp_path / "no_answer.jsonl", 5, last_user=False)
    with (tmp_path / "no_answer.jsonl").open("a") as f:
        f.write(json.dumps({"messages": [{"role": "user", "content": "hello?"}]}) + "\n")
    (tmp_path / "role.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"},
                                 {"role": "bot", "content": "hello"}]}) + "\n")
    _write_chats(tmp_path / "good.jsonl", 40)
    (tmp_path / "syntax.jinja").write_text("{% for m in messages %}\n{{ m.content }\n")
    (tmp_path / "raises.jinja").write_text("{{ raise_exception('no system role') }}")
    cases = {
        "no assistant turn": (["--dataset", "no_answer.jsonl"],
                              "no_answer.jsonl:6: messages: no assistant turn to train on "
                              "(--train-on = \"completions\")"),
        "unknown role": (["--dataset", "role.jsonl"],
                         "role.jsonl:1: messages[1].role: unknown role 'bot'"),
        "template syntax": (["--dataset", "good.jsonl", "--chat-template", "syntax.jinja"],
                            "syntax.jinja:2: --chat-template does not render"),
        "template raises": (["--dataset", "good.jsonl", "--chat-template", "raises.jinja"],
                            "raises.jinja: --chat-template does not render a "
                            "user/assistant exchange (no system role)"),
        "missing template": (["--dataset", "good.jsonl", "--chat-template", "none.jinja"],
                             "--chat-template: no such file none.jinja"),
    }
    for case, (args, message) in cases.items():
        rc = main(["prepare", *args, "--model", EMBEDDED_MODEL, "--output-dir", "out",
                   "--block-size", "64"])
        err = capsys.readouterr().err
        assert rc == 1, case
        assert err.count("\n") == 1 and err.startswith("tscu: error: "), (case, err)
        assert message in err, (case, err)
        assert not (tmp_path / "out").exists(), case
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], case
    # The same record trains with data.train_on = "all": every token is the point.
    assert main(["prepare", "--dataset", "no_answer.jsonl", "--model", EMBEDDED_MODEL,
                 "--output-dir", "out", "--block-size", "16", "--validation-fraction", "0",
                 "--train-on", "all"]) == 0


def test_custom_template_and_kwargs_are_applied_and_recorded(tmp_path: Path) -> None:
    _write_chats(tmp_path / "chat.jsonl", 40)
    template = tmp_path / "plain.jinja"
    template.write_text("{% for m in messages %}[{{ m.role }}{% if shout %}!{% endif %}] "
                        "{{ m.content }}\n{% endfor %}"
                        "{% if add_generation_prompt %}[assistant{% if shout %}!{% endif %}] "
                        "{% endif %}")
    prepare_dataset(PrepareOptions(dataset=str(tmp_path / "chat.jsonl"), model=EMBEDDED_MODEL,
                                   output_dir=tmp_path / "out", block_size=64,
                                   validation_fraction=0.1, chat_template=str(template),
                                   chat_template_kwargs={"shout": True}))
    meta = PreparedDataset.open(tmp_path / "out").meta
    assert meta.chat_template == {"source": str(template), "kwargs": {"shout": True},
                                  "text": template.read_text()}
    trained = "".join(text for text, on in meta.example or [] if on)
    untrained = "".join(text for text, on in meta.example or [] if not on)
    assert "[assistant!]" in untrained and "[assistant!]" not in trained
    assert "0 plus 0 is 0." in trained and "Question" in untrained
