"""JSON metrics: the project's own metric_json, and Telegraf's JSON serializer."""

from __future__ import annotations

from datetime import timezone, tzinfo
from typing import Any

from detector.errors import DecodeError, EmptyRecord, InvalidField, MalformedRecord, MissingField
from detector.records import MetricPoint, RawRecord

from .base import Decoder, load_json, short
from .metric_points import EntityChooser, number, sorted_labels, string_labels
from .timestamps import parse_timestamp


class _JsonMetricDecoder(Decoder):
    def __init__(self, entity_label: str | None, default_entity: str, tz: tzinfo = timezone.utc) -> None:
        self._entity = EntityChooser(entity_label, default_entity)
        self.tz = tz  # for ISO timestamps without an offset: the input's timezone

    def _timestamp(self, obj: dict, raw: RawRecord, where: str) -> float:
        value = obj.get("timestamp")
        if value is None:
            if raw.timestamp is None:
                raise MissingField(f"{where}no timestamp and the record carries none")
            return raw.timestamp
        try:
            return parse_timestamp(value, self.tz)
        except ValueError:
            raise InvalidField(f"{where}field 'timestamp' is not a timestamp: {short(value)}") from None


class MetricJsonDecoder(_JsonMetricDecoder):
    """``{"name": ..., "labels": {...}, "value": ..., "timestamp": ...}``, or an array of those."""

    format = "metric_json"

    def _decode(self, raw: RawRecord) -> list[MetricPoint]:
        data = load_json(raw.value)
        if type(data) is dict:
            return [self._point(data, raw, "")]
        if type(data) is list:
            if not data:
                raise EmptyRecord("empty array: no metric points")
            return [self._point(item, raw, f"[{i}]: ") for i, item in enumerate(data)]
        raise MalformedRecord(f"expected a metric object or an array of them, got {short(data)}")

    def _point(self, obj: Any, raw: RawRecord, where: str) -> MetricPoint:
        if type(obj) is not dict:
            raise MalformedRecord(f"{where}expected a metric object, got {short(obj)}")
        name = obj.get("name")
        if not name or type(name) is not str:
            if name is None:
                raise MissingField(f"{where}no metric 'name'")
            if name == "":
                raise InvalidField(f"{where}field 'name' is an empty string")
            raise InvalidField(f"{where}field 'name' is not a string: {short(name)}")
        if "value" not in obj:
            raise MissingField(f"{where}metric {name!r} has no 'value'")
        value = _number(obj["value"], "value", where)
        labels = string_labels(obj.get("labels"), f"{where}field 'labels'")
        timestamp = self._timestamp(obj, raw, where)
        return MetricPoint(timestamp, self._entity(labels), name, sorted_labels(labels), value)


class TelegrafJsonDecoder(_JsonMetricDecoder):
    """Telegraf's JSON serializer: one point per numeric field, named ``<name>_<field>``; tags are labels.

    String fields carry no magnitude to model and are skipped; booleans become 1 / 0.
    """

    format = "telegraf"

    def _decode(self, raw: RawRecord) -> list[MetricPoint]:
        data = load_json(raw.value)
        if type(data) is not dict:
            raise MalformedRecord(f"expected a Telegraf metric object, got {short(data)}")
        batch = data.get("metrics")
        out: list[MetricPoint] = []
        if batch is None:
            self._points(data, raw, "", out)
        elif type(batch) is list:
            if not batch:
                raise EmptyRecord("empty batch: field 'metrics' has no metric")
            for i, item in enumerate(batch):
                self._points(item, raw, f"metrics[{i}]: ", out)
        else:
            raise MalformedRecord("field 'metrics' is not an array")
        if not out:
            raise MissingField("no numeric fields: nothing to score in this message")
        return out

    def _points(self, obj: Any, raw: RawRecord, where: str, out: list[MetricPoint]) -> None:
        if type(obj) is not dict:
            raise MalformedRecord(f"{where}expected a metric object, got {short(obj)}")
        name = obj.get("name")
        if not name or type(name) is not str:
            raise MissingField(f"{where}no metric 'name'")
        fields = obj.get("fields")
        if type(fields) is not dict:
            raise MissingField(f"{where}metric {name!r} has no 'fields' object")
        tags = string_labels(obj.get("tags"), f"{where}field 'tags'")
        timestamp = self._timestamp(obj, raw, where)
        labels = sorted_labels(tags)
        entity = self._entity(tags)
        for field, value in fields.items():
            if type(value) is str or value is None:
                continue
            out.append(MetricPoint(timestamp, entity, f"{name}_{field}", labels, _number(value, field, where)))


def _number(value: Any, field: str, where: str) -> float:
    if not where:
        return number(value, field)
    try:
        return number(value, field)
    except DecodeError as exc:
        raise type(exc)(f"{where}{exc}") from None  # the same kind, with where
