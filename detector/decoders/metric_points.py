"""What every metric format shares: numeric values, label tuples and the entity a point belongs to."""

from __future__ import annotations

import math
from typing import Any

from detector.errors import InvalidField

from .base import json_type, short

# Labels that name "what is this about" in the usual exporters, in order of preference.
ENTITY_LABELS = ("service", "job", "app", "host", "instance")


class EntityChooser:
    """Picks a point's entity from its labels: the configured label, else the common ones, else the default."""

    __slots__ = ("candidates", "default")

    def __init__(self, entity_label: str | None, default: str) -> None:
        self.candidates = (entity_label,) if entity_label else ENTITY_LABELS
        self.default = default

    def __call__(self, labels: dict[str, str]) -> str:
        if labels:
            for name in self.candidates:
                value = labels.get(name)
                if value:
                    return value
        return self.default


def number(value: Any, field: str) -> float:
    """A finite float from a JSON number or numeric string; booleans count as 1 / 0 (like Prometheus' up)."""
    kind = type(value)
    if kind is float or kind is int:
        result = float(value)
    elif kind is bool:
        return 1.0 if value else 0.0
    elif kind is str:
        try:
            if "_" in value:  # Python reads "1_000" as 1000; no producer means that (line protocol refuses it)
                raise ValueError(value)
            result = float(value)
        except ValueError:
            raise InvalidField(f"field {field!r} is not a number: {short(value)}") from None
    else:
        raise InvalidField(f"field {field!r} is not a number: {short(value)}")
    if not math.isfinite(result):
        # A NaN or infinity would poison every running mean and variance downstream.
        raise InvalidField(f"field {field!r} is not finite: {short(value)}")
    return result


def string_labels(labels: Any, where: str) -> dict[str, str]:
    """A label/tag object with every value as a string."""
    if labels is None:
        return {}
    if type(labels) is not dict:
        raise InvalidField(f"{where} is not an object: {short(labels)}")
    for key, value in labels.items():
        if type(value) is not str:
            labels[key] = _label_text(value, key, where)
    return labels


def _label_text(value: Any, key: str, where: str) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        # Its Python repr would become the series' identity: a producer bug, not a label value.
        raise InvalidField(f"{where}: label {key!r} is {json_type(value)}, not a string, number or boolean: "
                           f"{short(value)}")
    return str(value)


def sorted_labels(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items())) if labels else ()
