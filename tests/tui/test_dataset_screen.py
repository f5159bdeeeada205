"""The dataset screen, driven by keys alone: fields, preview, prepare, cancel, errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static

from tscu_tui.app import TscuApp
from tscu_tui.engine.config import Config
from tscu_tui.engine.config.assets import DEMO_CORPUS
from tscu_tui.engine.data import PreparedDataset, PrepareOptions, prepare_dataset
from tscu_tui.engine.models.load import EMBEDDED_MODEL
from tscu_tui.screens.dataset import DatasetScreen
from tscu_tui.screens.dataset_form import join_dataset, parse_field, split_dataset

DEADLINE_S = 30


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """The demo corpus, 64-token blocks, a 20k token cap: a preparation of ~1 s."""
    config = Config()
    config.model.name = EMBEDDED_MODEL
    config.data.dataset = str(DEMO_CORPUS)
    config.data.path = str(tmp_path / "prepared")
    config.data.block_size = 64
    config.data.max_tokens = 20_000
    # ~17 documents of the demo corpus: a held-out split takes whole documents, so 1%
    # would be none of them.
    config.data.validation_fraction = 0.1
    return config


def _app(config: Config, tmp_path: Path) -> TscuApp:
    return TscuApp(config=config, config_path=tmp_path / "tscu.toml")


async def _until(pilot: Pilot[None], condition: Callable[[], bool],
                 timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the dataset screen"
        await pilot.pause(0.05)


def _text(screen: DatasetScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


async def _open(pilot: Pilot[None]) -> DatasetScreen:
    await pilot.press("1")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, DatasetScreen)
    return screen


async def _focus(pilot: Pilot[None], widget_id: str, key: str = "tab") -> None:
    """Tab (or shift+tab) until `widget_id` has the focus."""
    for _ in range(12):
        if pilot.app.focused is not None and pilot.app.focused.id == widget_id:
            return
        await pilot.press(key)
    raise AssertionError(f"{key} never reached #{widget_id}")


async def _type_into(pilot: Pilot[None], input_id: str, text: str) -> None:
    """Tab to the field, clear it and type `text`, as a person would."""
    await _focus(pilot, input_id)
    await pilot.press("end", "ctrl+u", *text)


# -- fields <-> config, without a terminal -----------------------------------------------------

def test_fields_use_the_config_loaders_rules_and_words() -> None:
    assert parse_field("block_size", " 128 ") == (128, None)
    assert parse_field("block_size", "1")[1] == "data.block_size = 1: must be an integer >= 2"
    assert parse_field("block_size", "abc")[1] == ('data.block_size = "abc": must be an '
                                                   'integer >= 2')
    assert parse_field("validation_fraction", "0.7")[1] == (
        "data.validation_fraction = 0.7: must be a number in [0, 0.5]")
    assert parse_field("max_tokens", "0") == (0, None)
    assert "is empty" in (parse_field("path", "  ")[1] or "")
    assert split_dataset("wikitext-103") == ("wikitext", "")
    assert split_dataset("allenai/c4-mini") == ("hub", "allenai/c4-mini")
    assert split_dataset("notes.txt") == ("local", "notes.txt")
    assert join_dataset("c4", "ignored") == "c4" and join_dataset("local", " a.txt ") == "a.txt"


# -- Pilot: keys alone -------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_type_preview_and_prepare_by_keys(config: Config, tmp_path: Path) -> None:
    app = _app(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        assert "none yet at" in _text(screen, "#meta")
        assert str(screen.query_one("#model", Static).content) == EMBEDDED_MODEL

        await _type_into(pilot, "block-size", "1")
        assert _text(screen, "#hint") == "data.block_size = 1: must be an integer >= 2"
        assert app.config.data.block_size == 64  # an invalid value never reaches the config
        await pilot.press("ctrl+r")
        assert _text(screen, "#status").startswith("fix the field marked in red first")
        await pilot.press("6")  # "16"
        assert app.config.data.block_size == 16 and "must be" not in _text(screen, "#hint")

        await pilot.press("ctrl+e")  # in an Input, ctrl+e would move to the line end
        await _until(pilot, lambda: not screen.previewing)
        preview = _text(screen, "#preview").splitlines()
        assert preview[0].startswith("5 documents: mean ") and "chars/token" in preview[0]
        assert "blocks of 16 (limit 20,000)" in preview[1]
        assert preview[2].split()[2:5] == ["tok", "Unicode", "characters"]

        await pilot.press("ctrl+r")
        await _until(pilot, lambda: not screen.preparing)
        meta = PreparedDataset.open(tmp_path / "prepared").meta
        assert meta.block_size == 16 and meta.splits["train"].tokens > 0
        assert _text(screen, "#status") == f"done: dataset written to {tmp_path / 'prepared'}"
        shown = _text(screen, "#meta")
        assert f"{meta.splits['train'].content_tokens:,} tok" in shown
        assert meta.content_hash[:20] in shown and f"loss on {meta.loss_token_share:.1%}" in shown

        # A second prepare asks before it replaces the dataset.
        await pilot.press("ctrl+r")
        assert "press ctrl+r again to replace it" in _text(screen, "#status")
        assert not screen.preparing
        app.mlx_busy = lambda: True  # type: ignore[method-assign]  (a training is running)
        await pilot.press("ctrl+r")
        assert _text(screen, "#status").startswith("a training is running")
        assert not screen.preparing


@pytest.mark.asyncio
async def test_cancel_by_key_leaves_no_dataset(config: Config, tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"  # ~10 MB: tens of seconds to prepare, were it not cancelled
    big.write_bytes(DEMO_CORPUS.read_bytes() * 8)
    config.data.dataset = str(big)
    config.data.max_tokens = 0
    app = _app(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        await pilot.press("ctrl+r")
        await _until(pilot, lambda: _text(screen, "#readout").startswith("reading"))
        await pilot.press("ctrl+x")
        await _until(pilot, lambda: not screen.preparing)
        assert _text(screen, "#status") == "cancelled: no dataset was written"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["big.jsonl"]  # no staging left
        assert "none yet at" in _text(screen, "#meta")


@pytest.mark.asyncio
async def test_bad_path_and_bad_jsonl_line_show_one_line_inline(
        config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n{"text": oops}\n')
    config.data.dataset = "nope.jsonl"
    app = _app(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        await pilot.press("ctrl+e")
        await _until(pilot, lambda: not screen.previewing)
        assert _text(screen, "#status") == "dataset not found: no such file or folder nope.jsonl"
        assert screen.query_one("#status").has_class("-error")

        await _type_into(pilot, "source-id", "bad.jsonl")
        assert app.config.data.dataset == "bad.jsonl"
        await pilot.press("ctrl+r")
        await _until(pilot, lambda: not screen.preparing)
        status = _text(screen, "#status")
        assert status.startswith("bad.jsonl:3: invalid JSON") and "\n" not in status
        assert not (tmp_path / "prepared").exists()
        assert len(app.screen_stack) == 1  # inline, not the app's error dialog


@pytest.mark.asyncio
async def test_errors_name_the_field_and_its_data_key_not_a_cli_flag(
        config: Config, tmp_path: Path) -> None:
    config.data.dataset, config.data.max_tokens = "c4", 0  # c4 needs a token limit
    app = _app(config, tmp_path)
    async with app.run_test(size=(100, 24)) as pilot:
        screen = await _open(pilot)
        await pilot.press("ctrl+e")
        await _until(pilot, lambda: not screen.previewing)
        status = _text(screen, "#status")
        assert "bound it with Token limit (data.max_tokens)" in status, status
        assert "--" not in status


def test_engine_messages_in_the_apps_and_the_clis_words() -> None:
    from tscu_tui.commands.prepare import in_flags
    from tscu_tui.screens.dataset_form import in_fields

    message = "data.text_column is empty; data.path exists; allow overwriting to replace it"
    assert in_fields(message) == ("Text column (data.text_column) is empty; Output folder "
                                  "(data.path) exists; press prepare again to replace it")
    assert in_flags(message) == ("--text-column is empty; --output-dir exists; pass "
                                 "--overwrite to replace it")
    assert in_fields("data.path_x data.dataset") == "data.path_x Id or path (data.dataset)"


@pytest.mark.asyncio
async def test_network_boundary_unreachable_hub_is_one_line_within_seconds(
        config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    # A closed loopback port stands in for the Hub: refused at once, never the internet.
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 3)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    config.data.dataset = "someone/some-dataset"
    app = _app(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        assert str(screen.query_one("#source-kind").value) == "hub"  # type: ignore[attr-defined]
        started = time.monotonic()
        await pilot.press("ctrl+e")
        await _until(pilot, lambda: not screen.previewing, timeout_s=15)
        status = _text(screen, "#status")
        assert status.startswith("cannot reach the Hugging Face Hub for dataset "
                                 "'someone/some-dataset'") and "\n" not in status
        assert time.monotonic() - started < 10


# -- snapshot ----------------------------------------------------------------------------------

def test_snapshot_80x24_with_meta_and_preview(snap_compare, tmp_path: Path,  # type: ignore[no-untyped-def]
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths only: the picture is the same on any machine
    lines = [f'{{"text": "Document {i}: the quick brown fox jumps over the lazy dog, '
             f'{i} times over, and then rests [briefly]."}}' for i in range(120)]
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    prepare_dataset(PrepareOptions(dataset="corpus.jsonl", model=EMBEDDED_MODEL,
                                   output_dir=Path("prepared"), block_size=32,
                                   validation_fraction=0.1))
    config = Config()
    config.model.name = EMBEDDED_MODEL
    config.data.dataset, config.data.path = "corpus.jsonl", "prepared"
    config.data.block_size, config.data.validation_fraction = 32, 0.1

    async def preview(pilot: Pilot[None]) -> None:
        screen = await _open(pilot)
        await pilot.press("ctrl+e")
        await _until(pilot, lambda: not screen.previewing)
        await pilot.press("tab")  # the cursor leaves the Select, so nothing blinks
        await pilot.pause()

    assert snap_compare(_app(config, tmp_path), terminal_size=(80, 24), run_before=preview)


@pytest.mark.asyncio
async def test_source_kind_by_keys_and_a_config_replaced_elsewhere(
        config: Config, tmp_path: Path) -> None:
    app = _app(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        assert app.focused is screen.query_one("#source-kind")
        await pilot.press("enter", "up", "up", "up", "enter")  # local -> hub -> c4 -> wikitext-2
        assert app.config.data.dataset == "wikitext-2"
        assert screen.query_one("#source-id").disabled
        await pilot.press("enter", "down", "down", "down", "enter")  # back to the local file
        assert str(screen.query_one("#source-kind", Select).value) == "local"
        assert app.config.data.dataset == str(DEMO_CORPUS)

        # Typing a Hub id letter by letter: "o", "ow", ... look like local names on the
        # way, and must not flip the source kind under the user's fingers.
        await pilot.press("enter", "up", "enter")
        await _type_into(pilot, "source-id", "owner/name")
        assert str(screen.query_one("#source-kind", Select).value) == "hub"
        assert app.config.data.dataset == "owner/name"
        await _type_into(pilot, "block-size", "x")  # invalid, then another field changes:
        await _type_into(pilot, "output-path", "out")
        assert screen.query_one("#block-size", Input).value == "x"  # the typing survives
        assert app.config.data.path == "out" and app.config.data.block_size == 64

        # A preset loaded on the config screen shows up here.
        replaced = Config()
        replaced.data.block_size, replaced.data.path = 128, "elsewhere"
        app.set_config(replaced)
        await pilot.pause()
        assert screen.query_one("#block-size", Input).value == "128"
        assert str(screen.query_one("#source-kind", Select).value) == "wikitext"
        assert "none yet at elsewhere" in _text(screen, "#meta")

        await _focus(pilot, "source-kind", "shift+tab")
        await pilot.press("3")  # outside an Input the number keys still switch screens
        assert app.current_mode == "train"


@pytest.mark.asyncio
async def test_an_unexpected_failure_goes_to_the_app_dialog(
        config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tscu_tui.engine.data as prep
    from tscu_tui.screens.error import ErrorDialog

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(prep, "prepare_dataset", broken)
    app = _app(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        await pilot.press("ctrl+r")
        await _until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert str(app.screen.query_one("#error-cause", Static).content) == (
            "RuntimeError: disk on fire")
        assert not screen.preparing and _text(screen, "#status") == "preparation failed"


@pytest.mark.asyncio
async def test_a_chat_dataset_shows_its_loss_share_and_a_highlighted_example(
        tmp_path: Path) -> None:
    import json

    from rich.text import Text

    from tscu_tui.widgets.dataset_panels import PreviewPanel

    records = [{"messages": [{"role": "user", "content": f"Say {i}."},
                             {"role": "assistant", "content": f"I say {i}."}]}
               for i in range(60)]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    prepare_dataset(PrepareOptions(dataset=str(tmp_path / "chat.jsonl"), model=EMBEDDED_MODEL,
                                   output_dir=tmp_path / "prepared", block_size=64,
                                   validation_fraction=0.1))
    config = Config()
    config.model.name = EMBEDDED_MODEL
    config.data.dataset, config.data.path = str(tmp_path / "chat.jsonl"), str(
        tmp_path / "prepared")
    meta = PreparedDataset.open(tmp_path / "prepared").meta
    async with _app(config, tmp_path).run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        assert f"loss on {meta.loss_token_share:.1%} (completions)" in _text(
            screen, "#meta")
        assert screen.query_one("#preview-box").border_title == (
            "Prepared example: trained text highlighted")
        shown = screen.query_one(PreviewPanel).content
        assert isinstance(shown, Text)
        trained = [shown.plain[s.start:s.end] for s in shown.spans if s.style == "bold reverse"]
        assert trained == ["I say 0.<|im_end|>\n<|endoftext|>"]
        assert "<|im_start|>user\nSay 0." in shown.plain
