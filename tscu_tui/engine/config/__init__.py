"""The tscu config: schema (dataclasses), loading with validation, rendering and saving.

Beside the config itself: `presets` (the TOML presets shipped with tscu) and
`assets` (where the package's own files lie: the embedded model, the demo
corpus, the presets). The bottom of the engine: it imports only the shared
vocabulary (`errors`, `fileio`), and every other sub-package may import it.
"""

from tscu_tui.engine.config.load import (
    all_keys,
    check_value,
    config_from_dict,
    describe_allowed,
    load_config,
    parse_override,
)
from tscu_tui.engine.config.render import render_toml, save_config, to_dict
from tscu_tui.engine.config.schema import (
    Config,
    DataConfig,
    DistributedConfig,
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
    "Config", "DataConfig", "DistributedConfig", "HubConfig", "KeysConfig", "LoraConfig",
    "ModelConfig", "OutputConfig",
    "ScuConfig", "TelemetryConfig", "TrainConfig", "TscuConfig", "all_keys", "check_value",
    "config_from_dict", "describe_allowed", "load_config", "parse_override", "render_toml",
    "save_config", "sections", "to_dict",
]
