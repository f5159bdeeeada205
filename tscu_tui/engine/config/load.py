"""Load, validate and override a tscu config.

Every problem is collected (not just the first) and reported as one line that
names the file and line, `section.key`, the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any, get_type_hints

from tscu_tui.engine.config.schema import Config, sections
from tscu_tui.engine.errors import ConfigError

_SECRET_KEYS = re.compile(r"^(.*_)?(token|secret|password|api_key)$", re.IGNORECASE)
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def section_fields(section: object) -> dict[str, Field[Any]]:
    return {f.name: f for f in fields(section)}  # type: ignore[arg-type]


def field_type(section: object, key: str) -> Any:
    return get_type_hints(type(section))[key]


NUMBER_OR_WORD = float | str  # a number within min/max, or one of the field's choices
TABLE = dict[str, Any]  # a TOML table of plain values (strings, numbers, booleans)


def all_keys() -> list[str]:
    return [f"{name}.{key}" for name, sec in sections(Config()).items()
            for key in section_fields(sec)]


def describe_allowed(section: object, key: str) -> str:
    """What a field accepts, in words (used in errors and in the UI)."""
    f = section_fields(section)[key]
    kind = field_type(section, key)
    meta = f.metadata
    choices = ", ".join(repr(c) for c in meta.get("choices") or ())
    if choices and kind == list[str]:
        return f"a list of any of {choices} (or empty)"
    if choices and kind != NUMBER_OR_WORD:
        return "one of " + choices
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             NUMBER_OR_WORD: "a number", TABLE: "a table of names to plain values"}
    text = words.get(kind, "a list of strings" + (" (may be empty)" if meta.get("empty")
                                                  else ""))
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        left = "(" if meta.get("min_exclusive") else "["
        text += f" in {left}{low:g}, {high:g}]"
    elif low is not None:
        text += f" {'>' if meta.get('min_exclusive') else '>='} {low:g}"
    elif high is not None:
        text += f" <= {high:g}"
    return text + (f" or {choices}" if choices else "")


def check_value(section: object, key: str, value: Any) -> tuple[Any, bool]:
    """Return (value coerced to the field's type, ok)."""
    kind = field_type(section, key)
    meta = section_fields(section)[key].metadata
    if kind == NUMBER_OR_WORD:
        if isinstance(value, str):
            return value, value in (meta.get("choices") or ())
        kind = float
    if kind is bool:
        return value, isinstance(value, bool)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return value, False
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value, False
        value = float(value)
    elif kind is str:
        choices = meta.get("choices") or ()
        if isinstance(value, bool) and "true" in choices and "false" in choices:
            value = "true" if value else "false"  # a TOML boolean for a true/false/... choice
        if not isinstance(value, str):
            return value, False
        return value, not meta.get("choices") or value in meta["choices"]
    elif kind == TABLE:
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str | int | float | bool)
            for k, v in value.items())
        return value, ok
    else:  # list[str]: with choices, any of them (none too); else strings, empty if allowed
        choices = meta.get("choices")
        ok = (isinstance(value, list) and (bool(value) or bool(choices) or bool(meta.get("empty")))
              and all(isinstance(v, str) and v and (not choices or v in choices)
                      for v in value))
        return value, ok
    low, high = meta.get("min"), meta.get("max")
    if value != value:  # NaN
        return value, False
    if low is not None and (value < low or (meta.get("min_exclusive") and value == low)):
        return value, False
    return value, high is None or value <= high


def field_problem(section_name: str, section: object, key: str, value: Any) -> str | None:
    """`section.key = value: must be ...` when `value` is not allowed, else None.

    The one wording of a bad value: the loader prefixes it with file and line,
    the config screen shows it under the field being edited.
    """
    if check_value(section, key, value)[1]:
        return None
    return (f"{section_name}.{key} = {_fmt(value)}: must be "
            f"{describe_allowed(section, key)}")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


class _Collector:
    """Applies raw values to a Config, gathering one message per problem."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sections = sections(config)
        self.problems: list[str] = []
        self.layer = 0  # 0: the file, 1: --set overrides
        self.given: dict[str, int] = {}  # section.key -> the last layer that set it

    def unknown(self, where: str, name: str) -> None:
        candidates = list(self.sections) if "." not in name else all_keys()
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        kind = "section" if "." not in name else "key"
        self.problems.append(f"{where}: unknown {kind} '{name}'{hint}")

    def apply(self, where: str, section_name: str, key: str, value: Any) -> None:
        name = f"{section_name}.{key}"
        if _SECRET_KEYS.search(key):
            self.problems.append(f"{where}: {name}: secrets are never config fields; set "
                                 "HF_TOKEN or run `hf auth login` instead")
            return
        section = self.sections.get(section_name)
        if section is None:
            self.unknown(where, section_name)
            return
        if key not in section_fields(section):
            self.unknown(where, name)
            return
        problem = field_problem(section_name, section, key, value)
        if problem:
            self.problems.append(f"{where}: {problem}")
            return
        setattr(section, key, check_value(section, key, value)[0])
        self.given[name] = self.layer


def _line_of(text: str, section: str, key: str | None) -> int | None:
    """1-based line of `[section]` (or of `key` inside it) in TOML text."""
    in_section = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            in_section = stripped.strip("[] ") == section
            if in_section and key is None:
                return number
        elif in_section and key and re.match(rf"{re.escape(key)}\s*=", stripped):
            return number
    return None


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.search(str(exc))
        message = _TOML_POSITION.sub("", str(exc)).strip()
        where = f"{origin}:{match.group(1)}:{match.group(2)}" if match else origin
        raise ConfigError([f"{where}: invalid TOML: {message}"]) from None


def apply_document(collector: _Collector, data: dict[str, Any], origin: str,
                   text: str = "") -> None:
    for section_name, body in data.items():
        if not isinstance(body, dict):
            line = _line_of(text, section_name, None)
            collector.problems.append(f"{origin}: '{section_name}' must be a [section] table"
                                      if line is None else
                                      f"{origin}:{line}: '{section_name}' must be a [section]")
            continue
        if section_name not in collector.sections:
            line = _line_of(text, section_name, None)
            collector.unknown(f"{origin}:{line}" if line else origin, section_name)
            continue
        for key, value in body.items():
            line = _line_of(text, section_name, key)
            where = f"{origin}:{line}" if line else origin
            collector.apply(where, section_name, key, value)


def parse_override(item: str) -> tuple[str, str, Any]:
    """`section.key=value` -> (section, key, value); value parsed as TOML, else a string."""
    name, sep, raw = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ConfigError([f"--set {item}: expected section.key=value"])
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def one_run_length(config: Config, given: dict[str, int]) -> None:
    """Let a later layer's train.epochs or train.max_steps replace the other one.

    A file that gives only `epochs` runs by epochs (max_steps' default does not count),
    and `--set train.epochs=3` over a file's max_steps trains 3 epochs. Both given in
    one layer stays an error for `cross_checks` to name.
    """
    train = config.train
    epochs, steps = given.get("train.epochs"), given.get("train.max_steps")
    if epochs is not None and train.epochs > 0 and (steps is None or steps < epochs):
        train.max_steps = 0
    elif steps is not None and train.max_steps > 0 and epochs is not None and epochs < steps:
        train.epochs = 0.0


def cross_checks(config: Config, origin: str) -> list[str]:
    problems = []
    t, s, train = config.tscu, config.scu, config.train
    if train.epochs > 0 and train.max_steps > 0:
        problems.append(f"{origin}: train.epochs = {train.epochs:g} and train.max_steps = "
                        f"{train.max_steps} are both set: give one of them (set the other "
                        "to 0)")
    elif train.epochs == 0 and train.max_steps == 0:
        problems.append(f"{origin}: train.max_steps = 0 and train.epochs = 0: set one of them "
                        "(how long to train)")
    if t.emergency_shutdown_temp <= t.max_temperature_celsius:
        problems.append(f"{origin}: tscu.emergency_shutdown_temp = {t.emergency_shutdown_temp:g}"
                        f": must be above tscu.max_temperature_celsius "
                        f"({t.max_temperature_celsius:g})")
    if s.lambda_min > s.lambda_max:
        problems.append(f"{origin}: scu.lambda_min = {s.lambda_min:g}: must not exceed "
                        f"scu.lambda_max ({s.lambda_max:g})")
    elif s.mode in ("pi", "auto") and not s.lambda_min <= s.lambda_init <= s.lambda_max:
        problems.append(f"{origin}: scu.lambda_init = {s.lambda_init:g}: must lie in "
                        f"[scu.lambda_min, scu.lambda_max] = [{s.lambda_min:g}, "
                        f"{s.lambda_max:g}]")
    if s.target_s == 1.0:
        problems.append(f"{origin}: scu.target_s = 1: must be below 1 (S = 1 means DataBPT = 0)")
    if config.telemetry.source == "replay" and not config.telemetry.replay_path:
        problems.append(f"{origin}: telemetry.replay_path: required when telemetry.source "
                        "is 'replay'")
    return problems


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
                ) -> Config:
    """Load `path` (None = built-in defaults), apply `--set` overrides, validate once."""
    config = Config()
    collector = _Collector(config)
    origin = "defaults"
    if path is not None:
        origin = str(path)
        file = Path(path)
        if not file.is_file():
            raise ConfigError([f"{origin}: no such config file"])
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{origin}: cannot read config ({exc})"]) from None
        apply_document(collector, parse_toml(text, origin), origin, text)
    collector.layer = 1
    for item in overrides:
        try:
            section, key, value = parse_override(item)
        except ConfigError as exc:
            collector.problems.extend(exc.problems)
            continue
        collector.apply(f"--set {item}", section, key, value)
    if not collector.problems:
        one_run_length(config, collector.given)
        collector.problems.extend(cross_checks(config, origin))
    if collector.problems:
        raise ConfigError(collector.problems)
    return config


def config_from_dict(data: dict[str, Any], origin: str) -> Config:
    """A Config from its `to_dict` form (a run's mlx_config.json), validated like a file."""
    config = Config()
    collector = _Collector(config)
    apply_document(collector, data, origin)
    if collector.problems:
        raise ConfigError(collector.problems)
    return config


def default_of(section: object, key: str) -> Any:
    f = section_fields(section)[key]
    return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
