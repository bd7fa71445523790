"""OTLP/JSON logs, as the OpenTelemetry Collector's kafka exporter writes them (encoding: otlp_json).

One Kafka message is an ExportLogsServiceRequest: resourceLogs[].scopeLogs[].logRecords[], so it can
carry many log records. 64-bit integers (timeUnixNano) arrive as strings, per the protobuf JSON mapping.

A FieldMapping path names an attribute key here (OTel keys contain dots themselves): the log record's
attributes are searched first, then the resource's.
"""

from __future__ import annotations

from datetime import timezone, tzinfo
from typing import Any

import orjson

from detector.config import FieldMapping
from detector.errors import EmptyRecord, InvalidField, MalformedRecord, MissingField
from detector.records import LogRecord, RawRecord

from .base import Decoder, as_text, clip_message, key_text, load_json, short, strip_ansi
from .levels import level_in_text, normalise_level, otlp_severity
from .timestamps import parse_timestamp

_ENTITY_ATTRIBUTES = ("service.name", "k8s.deployment.name", "k8s.container.name", "host.name")
_SEVERITY_ENUM_PREFIX = "SEVERITY_NUMBER_"


class OtlpJsonLogDecoder(Decoder):
    format = "otlp_json"

    def __init__(self, fields: FieldMapping, default_entity: str, tz: tzinfo = timezone.utc) -> None:
        self.default_entity = default_entity
        self.tz = tz  # for a mapped timestamp attribute without an offset: the input's timezone
        self._message_key = fields.message
        self._timestamp_key = fields.timestamp
        self._level_key = fields.level
        self._entity_keys = (fields.entity,) if fields.entity else _ENTITY_ATTRIBUTES
        # Per-record attributes are converted only when a mapping may point into them; the default
        # entity (service.name and friends) is a resource attribute, converted once per resource.
        self._needs_attrs = any((fields.message, fields.timestamp, fields.level, fields.entity))

    def _decode(self, raw: RawRecord) -> list[LogRecord]:
        request = load_json(raw.value)
        if type(request) is not dict:
            raise MalformedRecord("expected an OTLP ExportLogsServiceRequest object")
        resource_logs = request.get("resourceLogs", request.get("resource_logs"))
        if not isinstance(resource_logs, list):
            raise MalformedRecord("no 'resourceLogs' array: not an OTLP/JSON logs request")
        key_entity = key_text(raw.key)
        out: list[LogRecord] = []
        for r_index, resource_log in enumerate(resource_logs):
            where = f"resourceLogs[{r_index}]"
            _need_object(resource_log, where)
            resource = resource_log.get("resource") or {}
            resource_attrs = attributes(_need_object(resource, f"{where}.resource").get("attributes"), where)
            for s_index, scope_log in enumerate(_need_list(resource_log.get("scopeLogs", []), f"{where}.scopeLogs")):
                scope_where = f"{where}.scopeLogs[{s_index}]"
                _need_object(scope_log, scope_where)
                log_records = _need_list(scope_log.get("logRecords", []), f"{scope_where}.logRecords")
                for l_index, log_record in enumerate(log_records):
                    record_where = f"{scope_where}.logRecords[{l_index}]"
                    _need_object(log_record, record_where)
                    out.append(self._record(log_record, resource_attrs, raw, key_entity, record_where))
        if not out:
            raise EmptyRecord("OTLP request holds no log records")
        return out

    def _record(self, rec: dict, resource_attrs: dict, raw: RawRecord, key_entity: str | None, where: str) -> LogRecord:
        record_attrs = attributes(rec.get("attributes"), where) if self._needs_attrs else {}

        if self._message_key:
            message_value = record_attrs.get(self._message_key, resource_attrs.get(self._message_key))
            if message_value is None:
                raise MissingField(f"{where}: no attribute {self._message_key!r} for the message")
        else:
            body = rec.get("body")
            message_value = any_value(body) if body is not None else ""
        message = clip_message(strip_ansi(message_value if type(message_value) is str else as_text(message_value)))

        timestamp = self._timestamp_of(rec, record_attrs, resource_attrs, raw, where)

        if self._level_key:
            level_value = record_attrs.get(self._level_key, resource_attrs.get(self._level_key))
            level = normalise_level(level_value) if level_value is not None else None
        else:
            level = _severity(rec)
        if level is None:
            level = level_in_text(message)

        entity = None
        for key in self._entity_keys:
            value = record_attrs.get(key)
            if value is None:
                value = resource_attrs.get(key)
            if value is not None and value != "":
                entity = value if type(value) is str else as_text(value)
                break
        return LogRecord(timestamp, entity or key_entity or self.default_entity, message, level)

    def _timestamp_of(self, rec: dict, record_attrs: dict, resource_attrs: dict, raw: RawRecord, where: str) -> float:
        if self._timestamp_key:
            value = record_attrs.get(self._timestamp_key, resource_attrs.get(self._timestamp_key))
            if value is not None:
                try:
                    return parse_timestamp(value, self.tz)
                except ValueError:
                    raise InvalidField(f"{where}: attribute {self._timestamp_key!r} is not a timestamp: {short(value)}") from None
        else:
            # timeUnixNano is when the event happened; 0 or absent means unknown, so fall back to when the
            # collector saw it, then to the Kafka record's own timestamp.
            for name in ("timeUnixNano", "observedTimeUnixNano"):
                value = rec.get(name)
                if value is None or value == "0" or value == 0:
                    continue
                try:
                    return int(value) / 1e9
                except (TypeError, ValueError):
                    raise InvalidField(f"{where}: {name} is not an integer: {short(value)}") from None
        if raw.timestamp is None:
            raise MissingField(f"{where}: no timeUnixNano or observedTimeUnixNano, and the record carries no timestamp")
        return raw.timestamp


def _severity(rec: dict) -> str | None:
    number = rec.get("severityNumber")
    if type(number) is int:
        level = otlp_severity(number)
        if level is not None:
            return level
    elif isinstance(number, str) and number.startswith(_SEVERITY_ENUM_PREFIX):
        # Some producers write the enum name ("SEVERITY_NUMBER_WARN2") instead of its number.
        level = normalise_level(number[len(_SEVERITY_ENUM_PREFIX) :].rstrip("0123456789"))
        if level is not None:
            return level
    text = rec.get("severityText")
    return normalise_level(text) if text else None


def attributes(items: Any, where: str) -> dict[str, Any]:
    """OTLP's [{"key": k, "value": AnyValue}] list as a plain dict."""
    if not items:
        return {}
    if not isinstance(items, list):
        raise MalformedRecord(f"{where}: attributes is not an array")
    out = {}
    for item in items:
        if type(item) is dict and "key" in item:
            out[item["key"]] = any_value(item.get("value"))
    return out


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as plain Python data."""
    if type(value) is not dict:
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        raw = value["intValue"]
        try:
            return int(raw)
        except (TypeError, ValueError):
            return raw
    if "doubleValue" in value:
        return value["doubleValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values"), "kvlistValue")
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "bytesValue" in value:
        return value["bytesValue"]  # base64 text, kept as the collector wrote it
    return orjson.dumps(value).decode() if value else ""


def _need_object(value: Any, where: str) -> dict:
    if type(value) is not dict:
        raise MalformedRecord(f"{where} is not an object")
    return value


def _need_list(value: Any, where: str) -> list:
    if type(value) is not list:
        raise MalformedRecord(f"{where} is not an array")
    return value
