"""Typed configuration: YAML files validated by pydantic, with `--set key.path=value` overrides.

Each stage owns a `*Config` class (in its subpackage's `config.py`) built on `StrictConfig`;
`qrdistill.config.RunConfig` composes them. Unknown keys and wrong types are errors that name the
key and what is allowed, never silently ignored.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from qrdistill.errors import ConfigError


class StrictConfig(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


T = TypeVar("T", bound=BaseModel)
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.lr=1e-4' -> (['train', 'lr'], 0.0001). The value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.path=value, e.g. train.epochs=2")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': value is not valid YAML ({err})") from None
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "1e-4" (no dot) as a string
    return parts, value


def set_dotted(data: dict, parts: list[str], value: Any, label: str) -> None:
    """Set data[a][b][0][c] = value for parts ['a', 'b', '0', 'c']; integer parts index lists."""
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"override '{label}': '{part}' is not an index of a list of {len(node)}"
                )
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"override '{label}': '{parts[depth - 1]}' is not a section")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for text in overrides:
        parts, value = parse_override(text)
        set_dotted(data, parts, value, text)
    return data


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Walk the model along `loc` to list the keys allowed at the place of an unknown key."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        current = _first_model(annotation)
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}).keys())


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def format_validation_error(err: ValidationError, model: type[BaseModel], source: str) -> str:
    lines = []
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, tuple(item["loc"]))
            hint = difflib.get_close_matches(str(item["loc"][-1]), allowed, n=1)
            msg = f"unknown key '{key}'"
            if hint:
                msg += f" (did you mean '{hint[0]}'?)"
            if allowed:
                msg += f"; allowed here: {', '.join(allowed)}"
        else:
            where = f"'{key}': " if key else ""
            msg = f"{where}{item['msg'].removeprefix('Value error, ')}"
            value = item.get("input")
            if not isinstance(value, (dict, list)):  # a whole section is too long to echo back
                msg += f" (got {value!r:.80})"
        lines.append(msg)
    return f"{source}: invalid configuration: " + "; ".join(lines)


def validate_config(model: type[T], data: dict, source: str = "config") -> T:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model, source)) from None


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: is a directory, not a config file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the config as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def load_config(
    model: type[T],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict | None = None,
) -> T:
    """Load `path` (or `base`, or defaults) into `model`, apply overrides, validate."""
    data = load_yaml(path) if path is not None else dict(base or {})
    apply_overrides(data, overrides or [])
    return validate_config(model, data, str(path) if path else "config")


def dump_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
