"""JSON log lines: generic JSON, Vector, Fluent Bit and Elastic Common Schema (Filebeat).

The four differ only in where they keep the message, time, level and entity, so one decoder does them
all from a table of candidate paths. A configured FieldMapping path replaces the candidates for its field.
"""

from __future__ import annotations

from datetime import timezone, tzinfo
from typing import Any

from detector.config import FieldMapping
from detector.errors import InvalidField, MalformedRecord, MissingField
from detector.records import LogRecord, RawRecord

from .base import Decoder, as_text, clip_message, json_type, key_text, load_json, quoted, short, strip_ansi
from .levels import level_in_text, normalise_level
from .paths import Getter, compile_path
from .timestamps import parse_timestamp

# Candidates in order of preference, per format. The first present (non-null) one wins.
FORMAT_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "json": {
        "message": ("message", "msg", "log", "text"),
        "timestamp": ("timestamp", "@timestamp", "time", "ts", "date"),
        "level": ("level", "severity", "log.level", "lvl", "loglevel"),
        "entity": ("service", "service.name", "app", "application", "host", "hostname", "host.name"),
    },
    # Vector's log event: message, timestamp and host always; service/level when a transform adds them;
    # kubernetes.* from the kubernetes_logs source, container_name from docker_logs.
    "vector": {
        "message": ("message",),
        "timestamp": ("timestamp",),
        "level": ("level", "severity", "log.level"),
        "entity": (
            "service",
            "service.name",
            "app",
            "kubernetes.pod_labels.app.kubernetes.io/name",
            "kubernetes.pod_labels.app",
            "kubernetes.container_name",
            "container_name",
            "host",
        ),
    },
    # Fluent Bit's kafka output: the line under "log" (tail / kubernetes) or "message" (systemd, syslog),
    # the time under "@timestamp" (timestamp_key) or "date" (json_date_key) as float seconds or ISO 8601.
    "fluentbit": {
        "message": ("log", "message", "MESSAGE"),
        "timestamp": ("@timestamp", "date", "time"),
        "level": ("level", "severity", "log.level"),
        "entity": (
            "kubernetes.labels.app.kubernetes.io/name",
            "kubernetes.labels.app",
            "kubernetes.container_name",
            "service",
            "host",
            "hostname",
            "_HOSTNAME",
        ),
    },
    # Elastic Common Schema as Filebeat ships it (nested) or as ECS loggers write it (flat dotted keys).
    "ecs": {
        "message": ("message", "event.original"),
        "timestamp": ("@timestamp",),
        "level": ("log.level", "log.syslog.severity.name"),
        "entity": ("service.name", "host.name", "host.hostname", "agent.name"),
    },
}


class _Field:
    """Where one field lives: compiled candidate paths plus the names to quote in error messages."""

    __slots__ = ("getters", "names", "explicit")

    def __init__(self, paths: tuple[str, ...], explicit: bool) -> None:
        self.getters: tuple[Getter, ...] = tuple(compile_path(p) for p in paths)
        self.names = paths
        self.explicit = explicit

    def find(self, obj: dict) -> tuple[str, Any]:
        """The first present value as (path, value), or ("", None)."""
        for name, get in zip(self.names, self.getters):
            value = get(obj)
            if value is not None:
                return name, value
        return "", None


class JsonLogDecoder(Decoder):
    def __init__(self, format: str, fields: FieldMapping, default_entity: str, tz: tzinfo = timezone.utc) -> None:
        defaults = FORMAT_FIELDS[format]
        self.format = format
        self.default_entity = default_entity
        self.tz = tz  # for timestamps without an offset: the input's timezone

        def field(name: str) -> _Field:
            mapped = getattr(fields, name)
            return _Field((mapped,), True) if mapped else _Field(defaults[name], False)

        self._message = field("message")
        self._timestamp = field("timestamp")
        self._level = field("level")
        self._entity = field("entity")

    def _decode(self, raw: RawRecord) -> list[LogRecord]:
        obj = load_json(raw.value)
        if type(obj) is not dict:
            raise MalformedRecord(f"expected a JSON object, got {json_type(obj)}")
        return [self.record_from(obj, raw)]

    def record_from(self, obj: dict, raw: RawRecord) -> LogRecord:
        _, message = self._message.find(obj)
        if message is None:
            raise MissingField(f"no message: none of {quoted(self._message.names)} in the record")
        if type(message) is not str:
            message = as_text(message)
        elif message[-1:] == "\n":
            # Container runtimes keep the line's newline in Fluent Bit's and Vector's "log"/"message".
            message = message.rstrip("\r\n")
        message = clip_message(strip_ansi(message))

        ts_path, ts_value = self._timestamp.find(obj)
        if ts_value is None:
            timestamp = raw.timestamp
            if timestamp is None:
                raise MissingField(
                    f"no timestamp: none of {quoted(self._timestamp.names)} in the record, and the record carries none"
                )
        else:
            try:
                timestamp = parse_timestamp(ts_value, self.tz)
            except ValueError:
                raise InvalidField(f"field {ts_path!r} is not a timestamp: {short(ts_value)}") from None

        _, level_value = self._level.find(obj)
        level = normalise_level(level_value) if level_value is not None else level_in_text(message)

        entity = self._entity_of(obj) or key_text(raw.key) or self.default_entity
        return LogRecord(timestamp, entity, message, level)

    def _entity_of(self, obj: dict) -> str | None:
        for name, get in zip(self._entity.names, self._entity.getters):
            value = get(obj)
            if value is None or value == "":
                continue
            if type(value) is str:
                return value
            if isinstance(value, (dict, list)):
                # "service" may be ECS's {"name": ...} object; only a configured path makes it an error.
                if self._entity.explicit:
                    raise InvalidField(f"field {name!r} is an object, not an entity name: {short(value)}")
                continue
            return as_text(value)
        return None

