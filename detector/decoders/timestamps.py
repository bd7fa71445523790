"""Event-time parsing: epoch numbers in any common unit, RFC 3339 / ISO 8601 strings, syslog stamps.

Every function returns seconds since the epoch as a float, or raises ``ValueError`` with a short reason
that the decoders turn into a :class:`~detector.errors.DecodeError`. :func:`column_to_seconds` does the
same for a whole column of a file (replay, ``evaluate nab``).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone, tzinfo

import polars as pl

from .base import short

# Epoch values are told apart by magnitude: 1e11 seconds is the year 5138, 1e11 ms is 1973, and so on,
# so any timestamp from 1973 to 5138 is read in the right unit whatever the shipper was configured with.
_SECONDS_BELOW = 1e11
_MILLIS_BELOW = 1e14
_MICROS_BELOW = 1e17
# Event times must be dates Python can show (years 1 to 9999): a nanosecond count read from a wrong
# field can land far beyond that, and would fail every alert text that prints the time.
_EARLIEST = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()

_UTC = timezone.utc

MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def epoch_to_seconds(value: float) -> float:
    """An epoch timestamp in seconds, ms, µs or ns (told apart by magnitude) as float seconds."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    size = abs(value)
    if size < _SECONDS_BELOW:
        seconds = float(value)
    elif size < _MILLIS_BELOW:
        seconds = value / 1e3
    elif size < _MICROS_BELOW:
        seconds = value / 1e6
    else:
        seconds = value / 1e9
    if not _EARLIEST <= seconds <= _LATEST:
        raise ValueError(f"not a date between the years 1 and 9999: {value!r}")
    return seconds


def iso_to_seconds(text: str, tz: tzinfo = _UTC) -> float:
    """An RFC 3339 / ISO 8601 string; one without an offset is local time in ``tz`` (the input's
    ``timezone``, UTC by default): log4j's ``%d`` and Python's asctime write the host's local time."""
    if text[-1:] == "z":
        text = text[:-1] + "Z"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()


def parse_timestamp(value: object, tz: tzinfo = _UTC) -> float:
    """Any timestamp a shipper writes: a JSON number, a numeric string, or an ISO 8601 string (read in
    ``tz`` when it has no offset; epoch numbers are UTC by definition)."""
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
            return iso_to_seconds(text, tz)
        except ValueError:
            raise ValueError(f"not a timestamp: {short(value)}") from None
    raise ValueError(f"not a timestamp: {short(value)}")


def syslog_to_seconds(month: int, day: int, clock: str, reference: float, tz: tzinfo = _UTC) -> float:
    """A year-less BSD syslog stamp (local time in ``tz``: RFC 3164 carries no offset) placed in the year
    that puts it closest to ``reference``, before or after.

    The year is taken from the record's own (broker) timestamp, never the wall clock, so replays decode
    the same way. Across New Year the stamp can be on either side: a line stamped Dec 31 that arrives on
    Jan 1 belongs to the year before, and one stamped Jan 1 from a host a few seconds ahead that arrives
    on Dec 31 to the year after.
    """
    hh, mm, ss = (int(part) for part in clock.split(":"))
    year = datetime.fromtimestamp(reference, _UTC).year
    stamps = []
    for y in (year - 1, year, year + 1):
        try:
            stamps.append(datetime(y, month, day, hh, mm, ss, tzinfo=tz).timestamp())
        except ValueError:  # Feb 29 outside a leap year
            continue
    if not stamps:
        raise ValueError(f"no such date: {month:02d}-{day:02d}")
    return min(stamps, key=lambda stamp: abs(stamp - reference))


def column_to_seconds(col: pl.Series, tz: tzinfo = _UTC) -> pl.Series:
    """A column of timestamps as float seconds since the epoch: datetimes, dates, epoch numbers (unit
    told by magnitude, as above) or text in any form :func:`parse_timestamp` reads. A datetime, date or
    text without an offset is local time in ``tz`` (the input's ``timezone``), as the decoders read it.
    Nulls stay null; raises ``ValueError`` naming the first other value that is not a timestamp."""
    dtype = col.dtype
    local = tz is not _UTC and str(tz) not in ("UTC", "Etc/UTC")  # UTC keeps the fast, vectorised path
    if isinstance(dtype, pl.Datetime):
        if local and dtype.time_zone is None:
            # Read one by one, as iso_to_seconds does: DST gaps and repeats resolve the same way.
            return pl.Series(col.name, [None if v is None else v.replace(tzinfo=tz).timestamp()
                                        for v in col.to_list()], dtype=pl.Float64)
        return col.dt.epoch(time_unit="us").cast(pl.Float64) / 1e6
    if dtype == pl.Date:
        if local:
            return column_to_seconds(col.cast(pl.Datetime("us")), tz)
        return col.cast(pl.Datetime("us")).dt.epoch(time_unit="us").cast(pl.Float64) / 1e6
    if dtype == pl.String:
        # Numbers first, as the decoders read them (and parsing numbers as dates is slow), then dates.
        text = col.str.strip_chars()
        out = _epoch_numbers(text.cast(pl.Float64, strict=False))
        # Only ISO dates (year first, dashes) go to polars: it infers a column's form from its first
        # value and would read "03/01/2024" day first, a form the decoders refuse. The decoders also
        # refuse a leap second (":60"), which polars reads as the next minute.
        iso = text.str.contains(r"^\d{4}-\d\d-\d\d") & ~text.str.contains(":60", literal=True)
        # polars would read text without an offset as UTC, so in another zone every date goes the slow way.
        rest = (out.is_null() & iso).arg_true() if not local else []
        if len(rest):
            dates = text.gather(rest).str.to_datetime(time_unit="us", strict=False, time_zone="UTC")
            out = out.scatter(rest, dates.dt.epoch(time_unit="us").cast(pl.Float64) / 1e6)
        # polars reads one date form per column, the one of its first value; rows in another form (an
        # offset on some, "Z" on others) are read one by one, as a decoder would read them.
        rest = (out.is_null() & text.is_not_null()).arg_true()
        if len(rest):
            out = out.scatter(rest, [_seconds_or_none(v, tz) for v in text.gather(rest).to_list()])
    elif dtype.is_numeric():
        out = _epoch_numbers(col.cast(pl.Float64))
    else:
        raise ValueError(f"a column of {dtype}; expected datetimes, dates, epoch numbers or text")
    bad = col.filter(out.is_null() & col.is_not_null())
    if len(bad):
        raise ValueError(f"not a timestamp: {short(bad[0])}")
    return out


def _seconds_or_none(text: str, tz: tzinfo = _UTC) -> float | None:
    try:
        return parse_timestamp(text, tz)
    except ValueError:
        return None


def _epoch_numbers(col: pl.Series) -> pl.Series:
    # epoch_to_seconds for a column: null where that raises.
    c = pl.col("t")
    a = c.abs()
    s = pl.when(a < _SECONDS_BELOW).then(c).when(a < _MILLIS_BELOW).then(c / 1e3)
    s = s.when(a < _MICROS_BELOW).then(c / 1e6).when(a.is_finite()).then(c / 1e9)
    return pl.DataFrame({"t": col}).select(pl.when(s.is_between(_EARLIEST, _LATEST)).then(s)).to_series()
