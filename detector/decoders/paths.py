"""Dotted field paths, compiled once per input so the hot path does plain dict lookups."""

from __future__ import annotations

from typing import Any, Callable

Getter = Callable[[dict], Any]


def compile_path(path: str) -> Getter:
    """A function returning the value at ``path`` in a decoded JSON object, or None.

    ``"service.name"`` finds ``{"service": {"name": ...}}`` as well as a flat ``{"service.name": ...}``
    (ECS loggers write dotted keys flat, Filebeat nests them), and any mix of the two such as
    ``kubernetes.labels.app.kubernetes.io/name``.
    """
    return _compile(tuple(path.split(".")))


def _compile(parts: tuple[str, ...]) -> Getter:
    if len(parts) == 1:
        key = parts[0]

        def get_key(obj: dict) -> Any:
            return obj.get(key)

        return get_key

    # Every way to read the path from this level: the whole rest as one flat key, or its first j parts as
    # a key and the remainder one level down. All keys and sub-getters are built here, once, so a miss
    # costs one dict lookup per part and no string joins.
    full_key = ".".join(parts)
    steps = tuple((".".join(parts[:j]), _compile(parts[j:])) for j in range(len(parts) - 1, 0, -1))

    def get_path(obj: dict) -> Any:
        value = obj.get(full_key)
        if value is not None:
            return value
        for key, rest in steps:
            child = obj.get(key)
            if type(child) is dict:
                value = rest(child)
                if value is not None:
                    return value
        return None

    return get_path
