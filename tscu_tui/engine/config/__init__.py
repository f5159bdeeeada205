"""The tscu config: schema (dataclasses), loading with validation, rendering and saving."""

from tscu_tui.engine.config.load import (
    all_keys,
    check_value,
    describe_allowed,
    load_config,
    parse_override,
)
from tscu_tui.engine.config.render import render_toml, save_config, to_dict
from tscu_tui.engine.config.schema import (
    Config,
    DataConfig,
    HubConfig,
    KeysConfig,
    LoraConfig,
    ModelConfig,
    OutputConfig,
    ScuConfig,
    TelemetryConfig,
    TrainConfig,
    TscuConfig,
    sections,
)

__all__ = [
    "Config", "DataConfig", "HubConfig", "KeysConfig", "LoraConfig", "ModelConfig", "OutputConfig",
    "ScuConfig", "TelemetryConfig", "TrainConfig", "TscuConfig", "all_keys", "check_value",
    "describe_allowed", "load_config", "parse_override", "render_toml", "save_config",
    "sections", "to_dict",
]
