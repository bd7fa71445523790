"""Plain text log lines: one Kafka record, one event (a multi-line stack trace stays one event).

Event time comes from a leading timestamp when the line starts with one (RFC 3339 / ISO 8601, optionally
in brackets; BSD syslog "Jan  5 10:00:00"; RFC 5424 after its "<PRI>1 " header), else from the Kafka
record. The recognised timestamp and syslog header are cut from the message: they are in the record's
timestamp and level already, and left in they would only vary the template.
"""

from __future__ import annotations

from datetime import timezone, tzinfo

from detector.errors import EmptyRecord, MissingField
from detector.records import LogRecord, RawRecord

from .base import Decoder, clip_message, key_text, strip_ansi, text_of
from .levels import SYSLOG_SEVERITY, level_in_text
from .timestamps import MONTHS, iso_to_seconds, syslog_to_seconds

_TIMESTAMP_CHARS = frozenset("0123456789:.,+-Z")


class PlainTextDecoder(Decoder):
    format = "plain"

    def __init__(self, default_entity: str, tz: tzinfo = timezone.utc) -> None:
        self.default_entity = default_entity
        self.tz = tz  # for stamps without an offset (syslog, log4j's %d): the input's timezone

    def _decode(self, raw: RawRecord) -> list[LogRecord]:
        text = strip_ansi(text_of(raw.value)).rstrip()
        if not text.strip():
            raise EmptyRecord("empty message")

        pos = 0
        syslog_level = None
        if text[0] == "<":
            close = text.find(">", 1, 5)
            if close > 1 and text[1:close].isdigit():
                syslog_level = SYSLOG_SEVERITY[int(text[1:close]) % 8]
                pos = close + 1
                if text.startswith("1 ", pos):  # RFC 5424 VERSION
                    pos += 2

        timestamp, end = _leading_timestamp(text, pos, raw.timestamp, self.tz)
        if timestamp is None:
            timestamp = raw.timestamp
            if timestamp is None:
                raise MissingField("no timestamp: the line starts with none and the record carries none")
            message = text[pos:] if pos else text
        else:
            message = text[end:].lstrip()
            if not message:
                raise EmptyRecord("empty message after the timestamp")

        level = level_in_text(message) or syslog_level
        entity = key_text(raw.key) or self.default_entity
        return [LogRecord(timestamp, entity, clip_message(message), level)]


def _leading_timestamp(text: str, pos: int, reference: float | None, tz: tzinfo) -> tuple[float | None, int]:
    """(seconds, index after the timestamp) or (None, pos) when the line does not start with one."""
    bracketed = text.startswith("[", pos)
    start = pos + 1 if bracketed else pos
    stamp, end = _iso_prefix(text, start, tz)
    if stamp is None:
        stamp, end = _syslog_prefix(text, start, reference, tz)
    if stamp is None:
        return None, pos
    if bracketed:
        if not text.startswith("]", end):
            return None, pos
        end += 1
    return stamp, end


def _iso_prefix(text: str, i: int, tz: tzinfo) -> tuple[float | None, int]:
    # Cheap shape check first: most lines fail it on the first character.
    if not (
        len(text) >= i + 16
        and text[i : i + 4].isdigit()
        and text[i + 4] == "-"
        and text[i + 7] == "-"
        and text[i + 10] in "T "
        and text[i + 11 : i + 13].isdigit()
        and text[i + 13] == ":"
    ):
        return None, i
    end = i + 11
    n = len(text)
    while end < n and text[end] in _TIMESTAMP_CHARS:
        end += 1
    try:
        return iso_to_seconds(text[i:end], tz), end
    except ValueError:
        return None, i


def _syslog_prefix(text: str, i: int, reference: float | None, tz: tzinfo) -> tuple[float | None, int]:
    # "Jan  5 10:00:00" / "Jan 15 10:00:00": month, space-padded day, clock; RFC 3164 section 4.1.2.
    month = MONTHS.get(text[i : i + 3])
    if month is None or len(text) < i + 15 or text[i + 3] != " ":
        return None, i
    day = text[i + 4 : i + 6].strip()
    clock = text[i + 7 : i + 15]
    if not (day.isdigit() and text[i + 6] == " " and clock[2:3] == ":" and clock[5:6] == ":"):
        return None, i
    if not clock.replace(":", "").isdigit():
        return None, i
    if reference is None:
        raise MissingField(f"syslog timestamp {text[i : i + 15]!r} has no year and the record carries no timestamp")
    try:
        return syslog_to_seconds(month, int(day), clock, reference, tz), i + 15
    except ValueError:
        return None, i
