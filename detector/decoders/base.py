"""What every decoder shares: the size limits, the guard around ``decode`` and JSON loading.

The guard is the promise the pipeline relies on: ``decode`` returns records or raises
:class:`DecodeError` with a one-line reason, never anything else, so one bad record is dead-lettered
and the stream goes on.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from detector.errors import DecodeError, EmptyRecord, InvalidField, MalformedRecord, NotText, OversizedRecord
from detector.records import MAX_NAME_CHARS, MAX_SERIES_CHARS, MAX_VALUE_CHARS, LogRecord, MetricPoint, RawRecord

# A record this large is a producer bug or an attack, not a log line; refusing it bounds the work.
MAX_RECORD_BYTES = 1024 * 1024
# Longer messages are kept but cut: the head carries the template, the rest only costs memory.
MAX_MESSAGE_CHARS = 16 * 1024
TRUNCATION_MARKER = "...[truncated {} chars]"

Record = LogRecord | MetricPoint
_WHITESPACE = frozenset(b" \t\r\n\x0b\x0c")
# Bytes a text line may hold; anything else (C0 controls) in quantity means binary data.
_TEXT_BYTES = bytes([9, 10, 11, 12, 13, 27, *range(32, 127), *range(128, 256)])
_BINARY_SHARE = 0.1
# Terminal escape sequences: CSI (colours "ESC[31m", cursor and erase codes), OSC (titles, hyperlinks) and
# the two-byte ones. Loggers writing to a TTY (Spring Boot with colour forced, Go and Node loggers, docker
# logs of a TTY container) wrap the level in them, hiding it from the level reader and the miner.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


class Decoder:
    """Turns one raw Kafka record into typed records. Subclasses implement ``_decode``."""

    format: str = ""

    def decode(self, raw: RawRecord) -> list[Record]:
        value = raw.value
        if not value or (value[0] in _WHITESPACE and not value.strip()):
            raise EmptyRecord("empty message")
        if len(value) > MAX_RECORD_BYTES:
            raise OversizedRecord(f"message is {len(value)} bytes, over the {MAX_RECORD_BYTES} byte limit")
        try:
            records = self._decode(raw)
        except DecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - the contract is DecodeError only, whatever went wrong
            # Plain DecodeError as its kind: input no check foresaw, or a decoder bug; worth a look either way.
            raise DecodeError(f"{self.format}: unexpected {type(exc).__name__}: {one_line(str(exc))}") from exc
        reason = out_of_bounds(records)
        if reason:
            raise InvalidField(reason)
        return records

    def _decode(self, raw: RawRecord) -> list[Record]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(format={self.format!r})"


def out_of_bounds(records: list[Record]) -> str | None:
    """Why one of ``records`` holds a name or value too long to become a label value, or None.

    Checked here, once for every format, on the records as built: what reaches the models and /metrics.
    The bounds are in records.py. As with any bad part of a message, the whole message is dead-lettered
    (none of its other records is scored, and a replay after a fix restores all of it); the reason says
    which record, which field, its length and how it starts.
    """
    checked: tuple | None = None  # the points of one line or Telegraf metric share one labels tuple
    size = 0
    for i, rec in enumerate(records):
        if type(rec) is MetricPoint:
            name = rec.name
            if len(name) > MAX_NAME_CHARS:
                reason = _too_long("metric name", name, MAX_NAME_CHARS)
            else:
                if rec.labels is not checked:
                    reason, size = _labels_problem(rec.labels)
                    checked = None if reason else rec.labels
                if checked is not None:
                    reason = _series_too_long(rec) if len(name) + size > MAX_SERIES_CHARS else None
            if reason is None:
                continue
            if len(records) > 1:
                where = f"point {i + 1} of {len(records)}"
                reason = f"{where} ({short(name, 60)}): {reason}" if len(name) <= MAX_NAME_CHARS else f"{where}: {reason}"
            return reason
        if len(rec.entity) > MAX_VALUE_CHARS:
            reason = _too_long("entity", rec.entity, MAX_VALUE_CHARS)
            return f"log record {i + 1} of {len(records)}: {reason}" if len(records) > 1 else reason
    return None


def _labels_problem(labels: tuple[tuple[str, str], ...]) -> tuple[str | None, int]:
    """A label name or value over its bound, else None and an upper bound on the labels' length in a series
    identity (``{k="v",...}``, every value counted twice as if each character were escaped)."""
    size = 2
    for key, value in labels:
        if len(key) > MAX_NAME_CHARS:
            return _too_long("label name", key, MAX_NAME_CHARS), 0
        if len(value) > MAX_VALUE_CHARS:
            return _too_long(f"label {short(key)} value", value, MAX_VALUE_CHARS), 0
        size += len(key) + 2 * len(value) + 4
    return None, size


def _series_too_long(point: MetricPoint) -> str | None:
    series = point.series  # exactly, now that the estimate is over the bound
    if len(series) <= MAX_SERIES_CHARS:
        return None
    return _too_long(f"series ({len(point.labels)} labels)", series, MAX_SERIES_CHARS)


def _too_long(what: str, value: str, limit: int) -> str:
    return f"{what} is {len(value)} characters, over the {limit} character limit: {short(value)}"


def load_json(value: bytes) -> Any:
    """orjson.loads with its failures (syntax, bad UTF-8, nesting over 1024 levels) as DecodeError."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if not value.strip():
            raise EmptyRecord("empty message") from None
        # Avro with Confluent's framing, protobuf: binary, not a JSON syntax slip; said as text inputs say it.
        binary = binary_reason(value)
        if binary:
            raise NotText(binary) from None
        reason = "nested deeper than 1024 levels" if "depth" in exc.msg else exc.msg
        position = _byte_offset(value, exc.pos)
        kind = MalformedRecord
        if "UTF-8" in exc.msg:
            # orjson reports UTF-8 errors at position 0; find the offending byte for the operator.
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as bad:
                position, reason = bad.start, f"not valid UTF-8 (byte 0x{value[bad.start]:02x})"
                kind = NotText  # a producer writing Latin-1 or binary, not a JSON syntax slip
        raise kind(f"invalid JSON at byte {position}: {reason}") from None


def json_type(value: Any) -> str:
    """What a parsed JSON value is, for a reason: "an array", "a string", "null", ..."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _byte_offset(value: bytes, char_pos: int) -> int:
    # orjson reports a character position; operators look at the dead letter's bytes.
    if value.isascii():
        return char_pos
    return len(value.decode("utf-8", "surrogateescape")[:char_pos].encode("utf-8", "surrogateescape"))


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colours and the like); most lines have none."""
    if "\x1b" not in text:
        return text
    return _ANSI.sub("", text)


def clip_message(message: str) -> str:
    if len(message) > MAX_MESSAGE_CHARS:
        return message[:MAX_MESSAGE_CHARS] + TRUNCATION_MARKER.format(len(message) - MAX_MESSAGE_CHARS)
    return message


def as_text(value: Any) -> str:
    """A scalar or structured field value as text: strings as they are, objects and arrays as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # orjson writes at most 254 levels, though it reads up to 1024
            raise MalformedRecord("a field nested deeper than 254 levels cannot be kept as text") from None
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def short(value: Any, limit: int = 40) -> str:
    """A value quoted for an error message, cut so one line stays one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def key_text(key: bytes | None) -> str | None:
    """The Kafka record key as an entity name; producers key records by entity."""
    if not key:
        return None
    return key.decode("utf-8", "replace")


def binary_reason(value: bytes) -> str | None:
    """Why ``value`` is binary data rather than text (a NUL byte, many control characters), or None."""
    nul = value.find(b"\x00")
    if nul >= 0:
        return f"binary data, not text: NUL byte at offset {nul}"
    controls = len(value.translate(None, _TEXT_BYTES))
    if controls > len(value) * _BINARY_SHARE:
        return f"binary data, not text: {controls} of {len(value)} bytes are control characters"
    return None


def text_of(value: bytes) -> str:
    """A text line's bytes as str; binary data is a DecodeError, a few invalid UTF-8 bytes are replaced."""
    binary = binary_reason(value)
    if binary:
        raise NotText(binary)
    if value.isascii():
        return value.decode("ascii")
    # Invalid UTF-8 in a log line is usually one mis-encoded name; keep the line with U+FFFD in its place,
    # unless so much of it is invalid that it is not text at all.
    text = value.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    if bad >= 4 and bad > len(text) * 0.25:
        raise NotText(f"binary data, not text: {bad} of {len(text)} characters are not valid UTF-8")
    return text


def quoted(names: tuple[str, ...]) -> str:
    """Field names for an error message: 'a', 'b'."""
    return ", ".join(repr(n) for n in names)
