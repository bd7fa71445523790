"""Checks of constructor parameters, shared by detectors and calibrators: a spec with a value out of
range fails when it is loaded, naming the parameter, rather than on the first point it scores."""

from __future__ import annotations

import math
from typing import Any, Callable


def require(value: Any, name: str, rule: str, ok: Callable[[Any], bool]) -> None:
    """Raise ``ValueError("<name> must be <rule>, got <value>")`` unless ``value`` is a finite number
    for which ``ok`` holds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise ValueError(f"{name} must be {rule}, got {value!r}")


def whole(low: int) -> tuple[str, Callable[[Any], bool]]:
    """The rule and check for an ``int`` of at least ``low``."""
    return f"a whole number >= {low}", lambda v: isinstance(v, int) and v >= low


def require_keys(value: Any, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a non-empty list of strings: the keys of a point a
    detector reads (a bare string would be read as its letters)."""
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name} must be a non-empty list of keys, got {value!r}")
