"""A run folder, checked once: its adapter pair and its JSON files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tscu_tui.engine.fileio import read_json_object
from tscu_tui.engine.hub import ExportError
from tscu_tui.engine.runs.files import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    ANALYSIS_FILE,
    ARGS_FILE,
    CONFIG_FILE,
    SUMMARY_FILE,
)

#: which adapter of a run to export: the last weights or the best held-out ones
ADAPTER_CHOICES = ("final", "best")


@dataclass(frozen=True)
class RunFolder:
    """What an export or a model card needs from a run directory."""

    path: Path
    adapter_dir: Path
    adapter_config: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    training_args: dict[str, Any] = field(default_factory=dict)

    @property
    def adapter_weights(self) -> Path:
        return self.adapter_dir / ADAPTER_WEIGHTS

    @property
    def base_model(self) -> str:
        """The model the run trained on, as named in its config."""
        return str(self.adapter_config.get("model")
                   or self.config.get("model", {}).get("name")
                   or self.summary.get("base_model") or "")


def _read_json(file: Path) -> dict[str, Any]:
    return read_json_object(file, ExportError) or {}


def open_run(run_dir: str | Path, adapter: str = "final") -> RunFolder:
    """Check `run_dir` holds a tscu run with an adapter; raise ExportError in one line."""
    path = Path(run_dir).expanduser()
    if not path.exists():
        raise ExportError(f"run directory {path} does not exist")
    if not path.is_dir():
        raise ExportError(f"{path} is not a directory")
    if adapter not in ADAPTER_CHOICES:
        raise ExportError(f"adapter '{adapter}' is not one of {', '.join(ADAPTER_CHOICES)}")
    is_run = any((path / name).exists() for name in
                 (SUMMARY_FILE, CONFIG_FILE, ADAPTER_CONFIG, "events.jsonl"))
    if not is_run:
        raise ExportError(f"{path} is not a tscu run directory (no {SUMMARY_FILE}, "
                          f"{ADAPTER_CONFIG} or events.jsonl)")
    adapter_dir = path / "best" if adapter == "best" else path
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (adapter_dir / name).is_file():
            raise ExportError(f"{adapter_dir} has no {name}: the run saved no {adapter} "
                              "adapter (did it finish a step?)")
    adapter_config = _read_json(adapter_dir / ADAPTER_CONFIG)
    kind = adapter_config.get("fine_tune_type", "lora")
    if kind != "lora":
        raise ExportError(f"{adapter_dir / ADAPTER_CONFIG}: fine_tune_type '{kind}' is not "
                          "supported, only 'lora'")
    if not isinstance(adapter_config.get("lora_parameters"), dict):
        raise ExportError(f"{adapter_dir / ADAPTER_CONFIG} has no lora_parameters")
    return RunFolder(path=path, adapter_dir=adapter_dir, adapter_config=adapter_config,
                     summary=_read_json(path / SUMMARY_FILE),
                     analysis=_read_json(path / ANALYSIS_FILE),
                     config=_read_json(path / CONFIG_FILE),
                     training_args=_read_json(path / ARGS_FILE))
