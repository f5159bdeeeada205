"""The config screen, driven by keys alone on a copy of the repo's commented tscu.toml."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

import tscu_tui.engine.models.memory as memory
from tscu_tui.app import TscuApp
from tscu_tui.engine.config import load_config
from tscu_tui.engine.errors import ConfigError
from tscu_tui.screens.error import ErrorDialog

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024**3


@pytest.fixture
def fixed_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Free memory, backend, HF cache and data as on no machine in particular: 16 GiB, CPU
    with tscu's native kernels (as `make setup` builds them), an empty cache, nothing
    prepared."""
    monkeypatch.setattr(memory, "available_memory", lambda: 16 * GIB)
    monkeypatch.setattr(memory, "runs_on_cpu", lambda: True)
    monkeypatch.setattr(memory, "native_kernels", lambda: True)
    monkeypatch.setattr(memory, "HF_CACHE_DIR", str(tmp_path / "hf-cache"))
    monkeypatch.chdir(tmp_path)  # no prepared data at tscu.toml's relative data.path


@pytest.fixture
def app(tmp_path: Path, fixed_memory: None) -> TscuApp:
    path = tmp_path / "tscu.toml"
    shutil.copy(ROOT / "tscu.toml", path)
    return TscuApp(config=load_config(path), config_path=path)


def text(app: TscuApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def row(app: TscuApp, key: str) -> list[str]:
    table = app.screen.query_one("#fields", DataTable)
    return [str(cell) for cell in table.get_row(key)]


def loader_message(toml: str) -> str:
    """What `tscu check-config` says about `toml`, less its `file:line: ` prefix."""
    with tempfile.TemporaryDirectory() as folder:
        bad = Path(folder) / "bad.toml"
        bad.write_text(toml)
        with pytest.raises(ConfigError) as caught:
            load_config(bad)
    [problem] = caught.value.problems
    return problem.removeprefix(f"{bad}:2: ")


async def open_field(pilot, section_downs: int, field_downs: int) -> None:
    """From the dataset/train screen: go to the config screen and highlight a field."""
    await pilot.press("2", *["down"] * section_downs, "tab", *["down"] * field_downs)


async def type_value(pilot, value: str) -> None:
    await pilot.press("enter", *value)


@pytest.mark.asyncio
async def test_edit_save_keeps_comments_and_loads_back(app: TscuApp) -> None:
    path = app.config_path
    async with app.run_test(size=(80, 24)) as pilot:
        await open_field(pilot, 3, 6)  # train, max_steps
        assert "train.max_steps: Optimizer steps to train." in text(app, "#help")
        await type_value(pilot, "1234")
        await pilot.press("enter")
        assert row(app, "max_steps") == ["*", "max_steps", "1234"]
        assert app.config.train.max_steps == 1234  # the app's working config
        assert load_config(path).train.max_steps == 3000  # not saved yet
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert row(app, "max_steps")[0] == " "
    saved = path.read_text()
    assert "max_steps = 1234" in saved
    assert "# Optimizer steps to train. Allowed: an integer >= 1." in saved
    assert saved.startswith("# tscu configuration.")
    assert saved.count("\n") == (ROOT / "tscu.toml").read_text().count("\n")
    assert load_config(path).train.max_steps == 1234


@pytest.mark.asyncio
async def test_invalid_value_shows_the_loader_message_and_cannot_be_kept(app: TscuApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await open_field(pilot, 3, 6)
        await type_value(pilot, "-5")
        assert text(app, "#editor-message") == loader_message("[train]\nmax_steps = -5\n")
        await pilot.press("enter")  # refused: the editor stays open
        assert isinstance(app.focused, Input) and app.focused.value == "-5"
        await pilot.press("escape")
        assert not app.screen.query_one("#editor").display
        assert row(app, "max_steps") == [" ", "max_steps", "3000"]
        await pilot.press("up", "up", "up", "enter")  # train.lr_scheduler: a list, not typed
        assert type(app.screen).__name__ == "ChoicePicker"
        await pilot.press(*"adam", "escape")
        assert app.config.train.lr_scheduler == "cosine"
    assert app.config.train.max_steps == 3000


@pytest.mark.asyncio
async def test_bools_toggle_lists_are_comma_separated_and_revert_restores(app: TscuApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await open_field(pilot, 7, 1)  # output.overwrite
        await pilot.press("enter")
        assert row(app, "overwrite") == ["*", "overwrite", "true"]
        assert "output *" in str(app.screen.query_one("#sections").get_option("output").prompt)
        await pilot.press("ctrl+z")
        assert row(app, "overwrite") == [" ", "overwrite", "false"]
        await pilot.press("shift+tab", "up", "up", "up", "up", "up", "tab", "down", "down", "down")
        await pilot.press("enter", *"q_proj, v_proj", "enter")  # lora.target_modules
        assert app.config.lora.target_modules == ["q_proj", "v_proj"]


@pytest.mark.asyncio
async def test_cross_field_problem_is_shown_and_blocks_saving(app: TscuApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await open_field(pilot, 5, 4)  # tscu.emergency_shutdown_temp
        await type_value(pilot, "70")
        await pilot.press("enter")
        assert text(app, "#problems") == ("tscu.emergency_shutdown_temp = 70: must be above "
                                          "tscu.max_temperature_celsius (75)")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ErrorDialog)
        assert text(app, "#error-cause").endswith("tscu.emergency_shutdown_temp = 70: must be "
                                                  "above tscu.max_temperature_celsius (75)")
    assert load_config(app.config_path).tscu.emergency_shutdown_temp == 85.0


@pytest.mark.asyncio
async def test_demo_preset_by_keys_and_memory_estimate(app: TscuApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        assert text(app, "#memory") == ("Memory: peak ~8.2 GiB for 2 x 1024 tokens with "
                                        "gradient checkpointing vs 16.0 GiB free, fits (from "
                                        "the built-in table)")
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("down", "enter")  # production is first, demo second
        await pilot.pause()
        assert app.config.model.name == "tscu-tiny-qwen3"
        assert row(app, "name") == ["*", "name", "tscu-tiny-qwen3"]
        memory_line = text(app, "#memory")
        assert memory_line.startswith("Memory: peak ~") and "fits (from config.json)" in memory_line
        await pilot.press("1")  # global keys work while no Input has focus
        assert app.current_mode == "dataset"


def test_config_screen_snapshot(app: TscuApp, snap_compare) -> None:
    """train section at 80x24: a changed field, an invalid value under the editor, the help
    bar and the memory line (free memory fixed at 16 GiB by `fixed_memory`)."""

    async def edit(pilot) -> None:
        await open_field(pilot, 3, 0)
        await type_value(pilot, "4")
        await pilot.press("enter", "down", "enter", *"0")  # gradient_accumulation_steps = 0
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=edit)


@pytest.mark.asyncio
async def test_keys_section_remaps_at_once(app: TscuApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await open_field(pilot, 9, 10)  # keys.save_config
        await pilot.press("enter", *"ctrl", "plus", "w", "enter")
        assert app.config.keys.save_config == "ctrl+w"
        await pilot.press("ctrl+w")  # the new key saves
        await pilot.pause()
    assert 'save_config = "ctrl+w"' in app.config_path.read_text()


@pytest.mark.asyncio
async def test_choice_fields_are_picked_from_a_list(app: TscuApp) -> None:
    from tscu_tui.engine.config import ScuConfig
    from tscu_tui.engine.config.load import section_fields
    from tscu_tui.screens.choice_picker import ChoicePicker

    async with app.run_test(size=(100, 30)) as pilot:
        await open_field(pilot, 4, list(section_fields(ScuConfig())).index("mode"))
        await pilot.press("enter")
        picker = app.screen
        assert isinstance(picker, ChoicePicker) and picker.choices == ["pi", "fixed", "off"]
        assert picker.query_one("#choice-list").highlighted == 2  # the current value, off
        await pilot.press("up", "enter")
        assert not isinstance(app.screen, ChoicePicker)
        assert app.config.scu.mode == "fixed" and row(app, "mode")[0] == "*"
        await pilot.press("enter", "escape")  # escape keeps the value
        assert app.config.scu.mode == "fixed"


@pytest.mark.asyncio
async def test_report_to_is_typed_as_a_list_any_of_its_choices_or_none(app: TscuApp) -> None:
    from tscu_tui.screens.choice_picker import ChoicePicker

    async with app.run_test(size=(100, 30)) as pilot:
        await open_field(pilot, 11, 0)  # report.to: a list, so typed, not picked
        await pilot.press("enter")
        assert not isinstance(app.screen, ChoicePicker)
        await pilot.press(*"tensorboard, wandb", "enter")
        assert app.config.report.to == ["tensorboard", "wandb"]
        await pilot.press("enter", "backspace", *"tensorbored", "enter")  # value selected
        assert app.config.report.to == ["tensorboard", "wandb"]  # refused, as check-config
        assert "must be a list of any of 'tensorboard', 'wandb' (or empty)" in text(
            app, "#editor-message")
        await pilot.press("escape", "enter", "backspace", "enter")
        assert app.config.report.to == []
