"""Field values as typed text: read like `--set`, written back so they read the same."""

from __future__ import annotations

import pytest

from tscu_tui.engine.config import Config
from tscu_tui.engine.config.edit import parse_text, value_text
from tscu_tui.engine.config.load import check_value, field_problem, section_fields


@pytest.mark.parametrize("section_name", ["model", "data", "lora", "train", "scu", "tscu",
                                          "telemetry", "output", "hub", "keys"])
def test_every_default_round_trips_through_text(section_name: str) -> None:
    section = getattr(Config(), section_name)
    for key in section_fields(section):
        value = getattr(section, key)
        parsed = parse_text(section, key, value_text(value))
        assert check_value(section, key, parsed) == (value, True), f"{section_name}.{key}"


def test_text_is_read_like_set_overrides() -> None:
    config = Config()
    assert parse_text(config.train, "learning_rate", "1e-3") == 0.001
    assert parse_text(config.train, "max_steps", " 12 ") == 12
    assert parse_text(config.train, "max_steps", "twelve") == "twelve"  # then rejected
    assert parse_text(config.model, "name", "Qwen/Qwen3-4B") == "Qwen/Qwen3-4B"  # no quotes
    assert parse_text(config.lora, "target_modules", "q_proj, v_proj,") == ["q_proj", "v_proj"]
    assert field_problem("train", config.train, "max_steps", "twelve") == (
        'train.max_steps = "twelve": must be an integer >= 0')
    assert field_problem("lora", config.lora, "target_modules", []) == (
        "lora.target_modules = []: must be a list of strings")
    assert field_problem("train", config.train, "max_steps", 5) is None


def test_tables_and_lists_that_may_be_empty() -> None:
    """data.chat_template_kwargs is a TOML table (braces optional when typed);
    data.sample_prompts a list that may be empty, unlike lora.target_modules."""
    data = Config().data
    assert parse_text(data, "chat_template_kwargs", "enable_thinking = false") == {
        "enable_thinking": False}
    assert parse_text(data, "chat_template_kwargs", '{a = 1, b = "x"}') == {"a": 1, "b": "x"}
    assert value_text({"enable_thinking": False}) == "{enable_thinking = false}"
    assert field_problem("data", data, "chat_template_kwargs", {"a": [1]}) == (
        "data.chat_template_kwargs = {'a': [1]}: must be a table of names to plain values")
    assert field_problem("data", data, "sample_prompts", []) is None
    assert parse_text(data, "sample_prompts", "Hi there., What is 2+2?") == [
        "Hi there.", "What is 2+2?"]
