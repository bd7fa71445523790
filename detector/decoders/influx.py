"""InfluxDB line protocol, possibly many lines per Kafka message.

    measurement[,tag=value...] field=value[,field=value...] [timestamp]

One point per numeric field, named ``<measurement>_<field>``, with the tags as labels. Integers (``12i``),
unsigned integers (``12u``) and floats are values, booleans become 1 / 0, string fields are skipped.
Timestamps are nanoseconds as the protocol defines; a writer set to s/ms/µs precision is recognised by
magnitude. Any malformed line rejects the whole message, naming the line.
"""

from __future__ import annotations

import math

from detector.errors import DecodeError, InvalidField, MalformedRecord, MissingField, NotText
from detector.records import MetricPoint, RawRecord

from .base import Decoder, binary_reason, short
from .metric_points import EntityChooser, sorted_labels
from .timestamps import epoch_to_seconds

_TRUE = frozenset(("t", "T", "true", "True", "TRUE"))
_FALSE = frozenset(("f", "F", "false", "False", "FALSE"))
# Python's int() and float() accept more than the protocol's numbers ("1_000", "inf", " 1", non-ASCII
# digits), which a line-protocol writer never means. Limited to these characters, what they accept is
# exactly the protocol's forms (a set test costs less per field than a regex).
_INTEGER_CHARS = frozenset("0123456789+-")
_FLOAT_CHARS = frozenset("0123456789+-.eE")
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)


class InfluxLineDecoder(Decoder):
    format = "influx"

    def __init__(self, entity_label: str | None, default_entity: str) -> None:
        self._entity = EntityChooser(entity_label, default_entity)

    def _decode(self, raw: RawRecord) -> list[MetricPoint]:
        try:
            text = raw.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = binary_reason(raw.value) or f"invalid UTF-8 at byte {exc.start}: line protocol is UTF-8 text"
            raise NotText(reason) from None
        out: list[MetricPoint] = []
        for number, line in enumerate(text.split("\n"), 1):
            line = line.strip()
            if not line or line[0] == "#":
                continue
            try:
                self._line(line, raw, out)
            except DecodeError as exc:
                binary = binary_reason(raw.value)  # Avro or protobuf on the wrong topic: say so, as for JSON
                if binary:
                    raise NotText(binary) from None
                raise type(exc)(f"line {number}: {exc}") from None  # the same kind, with the line
        if not out:
            raise MissingField("no numeric fields: nothing to score in this message")
        return out

    def _line(self, line: str, raw: RawRecord, out: list[MetricPoint]) -> None:
        if "\\" in line or '"' in line:
            series, fields, stamp = _sections_escaped(line)
        else:
            series, _, rest = line.partition(" ")
            fields, _, stamp = rest.strip().partition(" ")
            stamp = stamp.strip()
        if not fields:
            raise MalformedRecord(f"no fields in {short(line)}")

        parts = _split(series, ",")
        measurement = _unescape(parts[0])
        if not measurement:
            raise MalformedRecord("empty measurement name")
        tags: dict[str, str] = {}
        for part in parts[1:]:
            key, sep, value = _partition(part)
            if not sep or not key:
                raise MalformedRecord(f"tag {short(part)} is not key=value")
            key = _unescape(key)
            if key in tags:  # which value the writer meant is unknowable; keeping one would hide the bug
                raise MalformedRecord(f"duplicate tag key {key!r}")
            tags[key] = _unescape(value)

        if stamp:
            try:
                number = int(stamp)
            except ValueError:
                raise InvalidField(f"timestamp {short(stamp)} is not an integer") from None
            try:
                timestamp = epoch_to_seconds(number)
            except ValueError as exc:
                raise InvalidField(f"timestamp {exc}") from None
        elif raw.timestamp is not None:
            timestamp = raw.timestamp
        else:
            raise MissingField("no timestamp and the record carries none")

        labels = sorted_labels(tags)
        entity = self._entity(tags)
        seen: set[str] = set()
        for part in _split(fields, ",", quotes=True):
            key, sep, text = _partition(part)
            if not sep or not key:
                raise MalformedRecord(f"field {short(part)} is not key=value")
            key = _unescape(key)
            if key in seen:  # two points for one series and time: one of them is a writer bug
                raise MalformedRecord(f"duplicate field key {key!r}")
            seen.add(key)
            value = _field_value(text, key)
            if value is not None:
                out.append(MetricPoint(timestamp, entity, f"{measurement}_{key}", labels, value))


def _field_value(text: str, key: str) -> float | None:
    if not text:
        raise MalformedRecord(f"field {key!r} has no value")
    if text[0] == '"':
        if len(text) < 2 or text[-1] != '"':
            raise MalformedRecord(f"field {key!r} has an unterminated string")
        return None  # a string field: nothing numeric to model
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    last = text[-1]
    if last == "i" or last == "u":
        digits = text[:-1]
        if not _INTEGER_CHARS.issuperset(digits):
            raise InvalidField(f"field {key!r} is not a number: {short(text)}")
        try:
            integer = int(digits)
        except ValueError:
            raise InvalidField(f"field {key!r} is not a number: {short(text)}") from None
        if last == "u" and integer < 0:
            raise InvalidField(f"field {key!r} is an unsigned integer below zero: {short(text)}")
        low, high = _INT64 if last == "i" else _UINT64
        if not low <= integer <= high:
            kind = "a 64-bit integer" if last == "i" else "an unsigned 64-bit integer"
            raise InvalidField(f"field {key!r} is out of range for {kind}: {short(text)}")
        return float(integer)
    if not _FLOAT_CHARS.issuperset(text):
        if text.lstrip("+-").lower() in ("nan", "inf", "infinity"):
            raise InvalidField(f"field {key!r} is not finite: {short(text)}")
        raise InvalidField(f"field {key!r} is not a number: {short(text)}")
    try:
        value = float(text)
    except ValueError:
        raise InvalidField(f"field {key!r} is not a number: {short(text)}") from None
    if not math.isfinite(value):  # 1e999: a float beyond the 64-bit range
        raise InvalidField(f"field {key!r} is out of range: {short(text)}")
    return value


def _sections_escaped(line: str) -> tuple[str, str, str]:
    """Split a line holding escapes or quoted strings into its series, fields and timestamp sections."""
    n = len(line)
    i = 0
    while i < n and line[i] != " ":
        i += 2 if line[i] == "\\" else 1
    series = line[:i]
    while i < n and line[i] == " ":
        i += 1
    start = i
    quoted = False
    while i < n:
        ch = line[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == " " and not quoted:
            break
        i += 1
    if quoted:
        raise MalformedRecord("unterminated string field")
    return series, line[start:i], line[i:].strip()


def _split(text: str, sep: str, quotes: bool = False) -> list[str]:
    """Split on ``sep`` where it is neither backslash-escaped nor, with ``quotes``, inside a string."""
    if "\\" not in text and (not quotes or '"' not in text):
        return text.split(sep)
    parts = []
    start = 0
    i = 0
    n = len(text)
    quoted = False
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if quotes and ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _partition(part: str) -> tuple[str, str, str]:
    """key=value split at the first unescaped '='."""
    if "\\" not in part:
        return part.partition("=")
    i = 0
    n = len(part)
    while i < n:
        ch = part[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "=":
            return part[:i], "=", part[i + 1 :]
        i += 1
    return part, "", ""


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return text.replace("\\,", ",").replace("\\=", "=").replace("\\ ", " ")
