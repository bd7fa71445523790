"""logfmt lines (``ts=... level=error msg="payment failed" err="timeout" order=42``): Go kit, logrus,
Prometheus, Grafana, Heroku and most Go services write them.

The time, level and entity come from their keys; the message is ``msg`` followed by the line's other
pairs as written (``payment failed err="timeout" order=42``), so what the service put in keys beside
the message (the error, the status, the route) still reaches the template miner. A line without
``msg`` (an access log) is its pairs. Lines after the first (a stack trace) are kept after it.
"""

from __future__ import annotations

import re
from datetime import timezone, tzinfo

from detector.config import FieldMapping
from detector.errors import InvalidField, MalformedRecord, MissingField
from detector.records import LogRecord, RawRecord

from .base import Decoder, clip_message, key_text, quoted, short, strip_ansi, text_of
from .levels import level_in_text, normalise_level
from .timestamps import parse_timestamp

# Candidates in order of preference; a configured field mapping names the one key to use instead.
FIELDS: dict[str, tuple[str, ...]] = {
    "message": ("msg", "message"),
    "timestamp": ("ts", "time", "timestamp", "t"),
    "level": ("level", "lvl", "severity"),
    "entity": ("service", "service.name", "app", "application", "host", "hostname"),
}

# One pair: a key, then optionally `=` and a quoted (backslash escapes) or bare value; or any other
# character, which makes the line not logfmt.
_PAIR = re.compile(r'(\s*)(([^\s="]+)(?:=(?:"((?:[^"\\]|\\.)*)"|([^\s"]*)))?|(\S))')
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_NEEDS_QUOTES = re.compile(r'[\s="\\]')


def parse_pairs(line: str) -> list[tuple[str, str | None, str]]:
    """(key, value, the pair as written) for each pair of one logfmt line; a bare key has value None."""
    pairs = []
    for space, text, key, in_quotes, bare, odd in _PAIR.findall(line):
        if odd or (pairs and not space):  # not a pair, or a pair glued to the one before
            raise _not_logfmt(line)
        if in_quotes:
            value = _ESCAPE.sub(lambda e: _ESCAPES.get(e.group(1), e.group(1)), in_quotes) if "\\" in in_quotes else in_quotes
        elif "=" in text:
            value = bare
        else:
            value = None
        pairs.append((key, value, text))
    return pairs


def _not_logfmt(line: str) -> MalformedRecord:
    """The reason a line is not logfmt, with where (only on this error path)."""
    last = None
    for m in _PAIR.finditer(line):
        if m.group(6) is not None or (last is not None and not m.group(1)):
            at = m.start(2)
            if last is not None and line[at] == '"' and line[at - 1] == "=":
                return MalformedRecord(f"not logfmt: the quoted value of {last.group(3)!r} is not closed")
            return MalformedRecord(f"not logfmt: unexpected {line[at]!r} at character {at}")
        last = m
    return MalformedRecord("not logfmt")


def format_pair(key: str, value: object) -> str:
    """``key=value``, quoted when the value needs it (the inverse of ``parse_pairs``)."""
    text = value if isinstance(value, str) else str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return f"{key}={text}"
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f'{key}="{escaped}"'


class LogfmtDecoder(Decoder):
    format = "logfmt"

    def __init__(self, fields: FieldMapping, default_entity: str, tz: tzinfo = timezone.utc) -> None:
        self.default_entity = default_entity
        self.tz = tz  # for timestamps without an offset: the input's timezone
        self._keys = {name: ((getattr(fields, name),) if getattr(fields, name) else FIELDS[name]) for name in FIELDS}
        # key -> (field, preference): one dict lookup per pair finds what each pair is.
        self._role = {key: (name, rank) for name, keys in self._keys.items() for rank, key in enumerate(keys)}

    def _decode(self, raw: RawRecord) -> list[LogRecord]:
        text = strip_ansi(text_of(raw.value)).rstrip()
        line, newline, trailer = text.partition("\n")
        pairs = parse_pairs(line)
        if not any(value is not None for _, value, _ in pairs):
            raise MalformedRecord(f"not logfmt: no key=value pair in {short(line)}")
        # For each field, the first pair with a value under its most preferred key.
        best: dict[str, tuple[int, int]] = {}
        role = self._role
        for i, (key, value, _) in enumerate(pairs):
            r = role.get(key)
            if r is not None and value:
                name, rank = r
                held = best.get(name)
                if held is None or rank < held[0]:
                    best[name] = (rank, i)
        ts_key, ts_value = self._pick(best, pairs, "timestamp")
        if ts_value is None:
            timestamp = raw.timestamp
            if timestamp is None:
                raise MissingField(f"no timestamp: none of {quoted(self._keys['timestamp'])} in the line, "
                                  "and the record carries none")
        else:
            try:
                timestamp = parse_timestamp(ts_value, self.tz)
            except ValueError:
                raise InvalidField(f"field {ts_key!r} is not a timestamp: {short(ts_value)}") from None
        _, level_value = self._pick(best, pairs, "level")
        _, entity = self._pick(best, pairs, "entity")
        _, msg = self._pick(best, pairs, "message")
        # The other pairs, as written, after the message: they carry the error, status or route.
        used = {i for _, i in best.values()}
        rest = " ".join(written for i, (_, _, written) in enumerate(pairs) if i not in used)
        message = " ".join(part for part in (msg, rest) if part)
        if not message:
            raise MissingField(f"no message: none of {quoted(self._keys['message'])} and no other pair in the line")
        if newline:
            message += "\n" + trailer
        level = normalise_level(level_value) if level_value is not None else level_in_text(message)
        return [LogRecord(timestamp, entity or key_text(raw.key) or self.default_entity, clip_message(message), level)]

    @staticmethod
    def _pick(best: dict, pairs: list, name: str) -> tuple[str, str | None]:
        held = best.get(name)
        if held is None:
            return "", None
        key, value, _ = pairs[held[1]]
        return key, value
