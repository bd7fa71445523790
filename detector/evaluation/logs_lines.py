"""Read raw log files for offline log evaluations: event time, level and message per line.

Files come in many layouts, so the leading timestamp is recognised among the common shapes (ISO 8601,
``yyMMdd HHmmss``, ``yyyy-MM-dd HH:mm:ss``, ``dd/Mon/yyyy:HH:mm:ss``, BSD syslog, epoch seconds or
milliseconds) and cut from the message; JSON lines use their time and level fields. A line without a
recognisable time keeps the time of the line before it (counted, and the first one kept to show),
since lines are read in order.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import orjson

from detector.records import LogRecord

_UTC = timezone.utc
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}

_SHAPES = [
    # 2008-11-09T20:35:30.123Z, 2008-11-09 20:35:30,123
    (re.compile(r"^\[?(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(?:Z|[+-]\d\d:?\d\d)?\]?\s*"),
     "iso"),
    # 081109 203530 (HDFS)
    (re.compile(r"^(\d\d)(\d\d)(\d\d) (\d\d)(\d\d)(\d\d)\s+"), "compact"),
    # 2015/10/17 20:35:30 (day-first dates such as 17/10/2015 are ambiguous and not read)
    (re.compile(r"^\[?(\d{4})/(\d\d)/(\d\d)[ -](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\]?\s*"), "iso"),
    # [17/Jun/2005:20:35:30 +0000]
    (re.compile(r"^\[?(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d)(?: [+-]\d{4})?\]?\s*"), "clf"),
    # [Sun Dec 04 04:47:44 2005] (Apache error log, ctime)
    (re.compile(r"^\[?[A-Z][a-z]{2} ([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.\d+)? (\d{4})\]?\s*"),
     "ctime"),
    # Jun  9 06:06:20
    (re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)\s+"), "syslog"),
    # 1131566461 or 1131566461123
    (re.compile(r"^(\d{10}(?:\d{3})?)(?:\.\d+)?\s+"), "epoch"),
]

_LEVEL_WORDS = {
    "TRACE": "debug", "DEBUG": "debug", "INFO": "info", "NOTICE": "info", "WARN": "warn",
    "WARNING": "warn", "ERROR": "error", "ERR": "error", "SEVERE": "error", "FATAL": "fatal",
    "CRITICAL": "fatal", "CRIT": "fatal", "PANIC": "fatal",
}


def _utc(year, month, day, hh, mm, ss) -> float:
    return datetime(int(year), int(month), int(day), int(hh), int(mm), int(ss), tzinfo=_UTC).timestamp()


def _stamp(kind: str, g: tuple) -> float:
    if kind == "iso":
        return _utc(*g[:6]) + (float("0." + g[6]) if g[6] else 0.0)
    if kind == "compact":
        return _utc(2000 + int(g[0]), *g[1:6])
    if kind == "clf":
        return _utc(g[2], _MONTHS[g[1]], g[0], *g[3:6])
    if kind == "ctime":
        return _utc(g[5], _MONTHS[g[0]], *g[1:5])
    if kind == "syslog":
        # No year in the line: a fixed one keeps replays deterministic; only differences matter here.
        return _utc(2000, _MONTHS[g[0]], *g[1:5])
    v = float(g[0])
    return v / 1000.0 if v > 1e11 else v


def _level(message: str) -> str | None:
    for tok in message.split(None, 6)[:6]:
        if tok[:1] in "[<":
            tok = tok.upper()
        word = tok.strip("[]:<>")
        # Upper-case words, or any case in brackets ("[notice]"): a bare "error" is message text.
        lvl = _LEVEL_WORDS.get(word if word.isupper() or tok[:1] in "[<" else "")
        if lvl:
            return lvl
    return None


class LineReader:
    """Turns raw lines into LogRecords; counts lines that carried no time."""

    def __init__(self, entity: str = "log"):
        self.entity = entity
        self.last_ts = 0.0
        self.untimed = 0
        self.first_untimed: str | None = None  # an example for the message when no line has a time
        self._shape = None  # the shape that matched last: files keep one layout, so try it first

    def record(self, line: str) -> LogRecord:
        line = line.rstrip("\r\n")
        if line[:1] == "{":
            rec = self._json(line)
            if rec is not None:
                return rec
        shapes = _SHAPES if self._shape is None else [self._shape, *_SHAPES]
        for shape in shapes:
            m = shape[0].match(line)
            if m:
                try:
                    ts = _stamp(shape[1], m.groups())
                except (ValueError, KeyError, OverflowError):
                    continue
                self._shape = shape
                self.last_ts = ts
                msg = line[m.end():]
                return LogRecord(ts, self.entity, msg, _level(msg))
        self._no_time(line)
        return LogRecord(self.last_ts, self.entity, line, _level(line))

    def _no_time(self, line: str) -> None:
        self.untimed += 1
        if self.first_untimed is None:
            self.first_untimed = line

    def _json(self, line: str) -> LogRecord | None:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        ts = None
        for k in ("timestamp", "@timestamp", "time", "ts", "date"):
            v = obj.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                ts = v / 1000.0 if v > 1e11 else float(v)
            elif isinstance(v, str):
                m = _SHAPES[0][0].match(v)
                if m:
                    ts = _stamp("iso", m.groups())
            if ts is not None:
                break
        if ts is None:
            self._no_time(line)
            ts = self.last_ts
        self.last_ts = ts
        lvl = obj.get("level") or obj.get("severity")
        lvl = _LEVEL_WORDS.get(lvl.upper()) if isinstance(lvl, str) else None
        return LogRecord(ts, str(obj.get("service") or obj.get("host") or self.entity), line, lvl)
