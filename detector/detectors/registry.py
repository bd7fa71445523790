"""Name -> detector class, so specs can name a detector and its parameters."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from detector.errors import ConfigError

_REGISTRY: dict[str, type] = {}

T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a detector buildable from a spec under ``name``."""

    def deco(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"detector name {name!r} is already registered by {_REGISTRY[name]!r}")
        _REGISTRY[name] = cls
        cls.registered_name = name
        return cls

    return deco


def _load_builtin() -> None:
    # Importing the modules runs their @register decorators.
    import detector.detectors.catalog  # noqa: F401


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get(name: str) -> type:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown detector {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def build(name: str, params: dict[str, Any] | None = None):
    cls = get(name)
    try:
        return cls(**(params or {}))
    except (TypeError, ValueError) as exc:  # unknown parameters, values out of range
        raise ConfigError(f"detector {name!r}: {exc}") from None
