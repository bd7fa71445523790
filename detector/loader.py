"""One loader for every YAML spec: parse, validate, and turn errors into key-path messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import TypeAdapter, ValidationError

from detector.errors import ConfigError


def format_validation_error(exc: ValidationError, source: str,
                            origin: Callable[[tuple], str | None] | None = None) -> str:
    """One line per error, by key path; ``origin`` names where a key's value came from when that is
    not ``source`` (an environment variable overriding the file)."""
    lines = [f"{source}: {exc.error_count()} error(s)"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<root>"
        where = origin(err["loc"]) if origin is not None else None
        lines.append(f"  {path}: {err['msg']}" + (f" (set by {where})" if where else ""))
    return "\n".join(lines)


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return {} if data is None else data


def validate(data: Any, schema: type | TypeAdapter, source: str):
    adapter = schema if isinstance(schema, TypeAdapter) else TypeAdapter(schema)
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_yaml_model(path: str | Path, schema: type | TypeAdapter):
    return validate(read_yaml(path), schema, str(path))
