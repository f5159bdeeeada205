"""Config: defaults, validation messages, overrides and comment-keeping saves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tscu_tui.engine.config import Config, load_config, render_toml, save_config
from tscu_tui.engine.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def problems_of(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> list[str]:
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(file, overrides)
    return info.value.problems


def test_repo_tscu_toml_carries_the_seed_production_defaults():
    config = load_config(ROOT / "tscu.toml")
    assert config == Config()
    assert config.model.name == "Qwen/Qwen3-4B-MLX-4bit"
    assert (config.train.batch_size, config.train.gradient_accumulation_steps) == (2, 4)
    assert config.train.learning_rate == 2e-4 and config.train.lr_scheduler == "cosine"
    assert (config.train.warmup_steps, config.train.max_steps) == (100, 3000)
    assert (config.train.save_steps, config.train.eval_steps,
            config.train.logging_steps) == (300, 150, 20)
    assert (config.lora.r, config.lora.alpha, config.lora.dropout) == (32, 64.0, 0.05)
    assert config.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj",
                                          "gate_proj", "up_proj", "down_proj"]
    assert config.tscu.power_budget_watts == 20.0
    assert config.tscu.max_temperature_celsius == 75.0
    assert config.tscu.emergency_shutdown_temp == 85.0
    assert config.data.block_size == 1024 and config.data.dataset == "wikitext"


def test_repo_tscu_toml_is_the_documented_render_of_the_schema():
    # The committed file documents every field; regenerate it with render_toml if this fails.
    assert (ROOT / "tscu.toml").read_text() == render_toml(Config())


def test_every_problem_is_one_line_naming_file_line_key_value_and_what_is_allowed(tmp_path):
    problems = problems_of(tmp_path, '[train]\nbatch_size = -1\nlearning_rat = 0.1\n'
                                     '[scu]\nmode = "pid"\n[lora]\nr = "eight"\n')
    assert problems == [
        f"{tmp_path}/bad.toml:2: train.batch_size = -1: must be an integer >= 1",
        f"{tmp_path}/bad.toml:3: unknown key 'train.learning_rat' "
        "(did you mean train.learning_rate?)",
        f"{tmp_path}/bad.toml:5: scu.mode = \"pid\": must be one of 'pi', 'fixed', 'off', 'auto'",
        f"{tmp_path}/bad.toml:7: lora.r = \"eight\": must be an integer in [1, 4096]",
    ]
    assert all("\n" not in p for p in problems)


def test_toml_syntax_error_names_line_and_column(tmp_path):
    assert problems_of(tmp_path, "[train]\nbatch_size = \n") == [
        f"{tmp_path}/bad.toml:2:14: invalid TOML: Invalid value"]


def test_unknown_section_gets_did_you_mean(tmp_path):
    assert problems_of(tmp_path, "[trian]\nmax_steps = 3\nseed = 1\n") == [
        f"{tmp_path}/bad.toml:1: unknown section 'trian' (did you mean train?)"]


def test_secrets_are_refused_as_config_fields(tmp_path):
    [problem] = problems_of(tmp_path, '[hub]\nhub_token = "hf_x"\n')
    assert "hub.hub_token: secrets are never config fields" in problem


def test_cross_field_rules(tmp_path):
    [problem] = problems_of(tmp_path, "[tscu]\nemergency_shutdown_temp = 70.0\n")
    assert "tscu.emergency_shutdown_temp = 70: must be above tscu.max_temperature_celsius" \
        in problem


def test_overrides_are_typed_and_validated():
    config = load_config(None, ["train.max_steps=50", "model.name=tscu-tiny-qwen3",
                                "lora.target_modules=['q_proj']", "tscu.enabled=false"])
    assert config.train.max_steps == 50 and config.model.name == "tscu-tiny-qwen3"
    assert config.lora.target_modules == ["q_proj"] and config.tscu.enabled is False
    with pytest.raises(ConfigError) as info:
        load_config(None, ["train.max_steps=abc", "nodot=1"])
    assert info.value.problems == [
        '--set train.max_steps=abc: train.max_steps = "abc": must be an integer >= 0',
        "--set nodot=1: expected section.key=value",
    ]


def test_float_fields_accept_integers_but_bools_are_not_numbers():
    assert load_config(None, ["train.learning_rate=1"]).train.learning_rate == 1.0
    with pytest.raises(ConfigError):
        load_config(None, ["train.batch_size=true"])


def test_save_keeps_comments_and_order_and_round_trips(tmp_path):
    file = tmp_path / "tscu.toml"
    original = ("# my notes\n[train]\n# why two\nbatch_size = 2  # small GPU\nmax_steps = 10\n"
                "\n[model]\nname = \"tscu-tiny-qwen3\"\n")
    file.write_text(original)
    config = load_config(file)
    config.train.batch_size = 4
    save_config(file, config)
    text = file.read_text()
    assert "# my notes\n[train]\n# why two\nbatch_size = 4  # small GPU\nmax_steps = 10\n" in text
    assert text.index("[train]") < text.index("[model]")
    assert load_config(file) == config
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file


def test_save_to_a_new_file_writes_the_commented_render(tmp_path):
    file = tmp_path / "new.toml"
    config = load_config(None, ["train.max_steps=7"])
    save_config(file, config)
    assert file.read_text() == render_toml(config)
    assert load_config(file).train.max_steps == 7


def test_a_table_field_saves_as_an_inline_table_and_reads_back(tmp_path):
    file = tmp_path / "tscu.toml"
    file.write_text("[data]\ntrain_on = \"last_turn\"\n")
    config = load_config(file, ['data.chat_template_kwargs={enable_thinking=false}'])
    assert config.data.chat_template_kwargs == {"enable_thinking": False}
    save_config(file, config)
    assert "chat_template_kwargs = {enable_thinking = false}" in file.read_text()
    assert load_config(file) == config
