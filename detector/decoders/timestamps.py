"""Event-time parsing: epoch numbers in any common unit, RFC 3339 / ISO 8601 strings, syslog stamps.

Every function returns seconds since the epoch as a float, or raises ``ValueError`` with a short reason
that the decoders turn into a :class:`~detector.errors.DecodeError`.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from .base import short

# Epoch values are told apart by magnitude: 1e11 seconds is the year 5138, 1e11 ms is 1973, and so on,
# so any timestamp from 1973 to 5138 is read in the right unit whatever the shipper was configured with.
_SECONDS_BELOW = 1e11
_MILLIS_BELOW = 1e14
_MICROS_BELOW = 1e17

_UTC = timezone.utc

MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def epoch_to_seconds(value: float) -> float:
    """An epoch timestamp in seconds, ms, µs or ns (told apart by magnitude) as float seconds."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    size = abs(value)
    if size < _SECONDS_BELOW:
        return float(value)
    if size < _MILLIS_BELOW:
        return value / 1e3
    if size < _MICROS_BELOW:
        return value / 1e6
    return value / 1e9


def iso_to_seconds(text: str) -> float:
    """An RFC 3339 / ISO 8601 string; one without an offset is taken as UTC."""
    if text[-1:] == "z":
        text = text[:-1] + "Z"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_UTC)
    return dt.timestamp()


def parse_timestamp(value: object) -> float:
    """Any timestamp a shipper writes: a JSON number, a numeric string, or an ISO 8601 string."""
    # bool is an int subclass; a true/false "timestamp" is a mapping mistake, not the epoch.
    if type(value) is int or type(value) is float:
        return epoch_to_seconds(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty string")
        head = text[0]
        if head.isdigit() or head == "-":
            # "1700000000.5" and "1700000000123" are epochs; "2024-01-15T..." has a dash at index 4.
            if len(text) < 5 or text[4] != "-":
                try:
                    return epoch_to_seconds(float(text))
                except ValueError:
                    pass
        try:
            return iso_to_seconds(text)
        except ValueError:
            raise ValueError(f"not a timestamp: {short(value)}") from None
    raise ValueError(f"not a timestamp: {short(value)}")


def syslog_to_seconds(month: int, day: int, clock: str, reference: float) -> float:
    """A year-less BSD syslog stamp placed in the year that puts it closest before ``reference``.

    The year is taken from the record's own (broker) timestamp, never the wall clock, so replays decode
    the same way; a line stamped Dec 31 that arrives on Jan 1 belongs to the year before.
    """
    hh, mm, ss = clock.split(":")
    year = datetime.fromtimestamp(reference, _UTC).year
    stamp = datetime(year, month, day, int(hh), int(mm), int(ss), tzinfo=_UTC).timestamp()
    if stamp > reference + 86_400:
        stamp = datetime(year - 1, month, day, int(hh), int(mm), int(ss), tzinfo=_UTC).timestamp()
    return stamp
