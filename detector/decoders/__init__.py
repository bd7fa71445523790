"""Decoders: raw Kafka record bytes -> typed records.

    decoder = build_decoder(input_spec)
    records = decoder.decode(raw)   # list[LogRecord | MetricPoint], or DecodeError with a one-line reason

Everything a decoder needs to know about its input (field paths, defaults) is worked out once here, so
``decode`` does no configuration lookups per record. See docs/input-formats.md for every format.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from detector.config import LOG_FORMATS, METRIC_FORMATS, InputSpec
from detector.errors import ConfigError

from .base import MAX_MESSAGE_CHARS, MAX_RECORD_BYTES, Decoder
from .influx import InfluxLineDecoder
from .logfmt import LogfmtDecoder
from .logs_json import JsonLogDecoder
from .metrics_json import MetricJsonDecoder, TelegrafJsonDecoder
from .otlp import OtlpJsonLogDecoder
from .plain_text import PlainTextDecoder

__all__ = ["Decoder", "build_decoder", "MAX_RECORD_BYTES", "MAX_MESSAGE_CHARS", "FORMATS"]

FORMATS = LOG_FORMATS + METRIC_FORMATS


def build_decoder(spec: InputSpec) -> Decoder:
    """The decoder for one input, configured from its format, field mapping and default entity."""
    fmt = spec.format
    fields = spec.fields
    tz = ZoneInfo(spec.timezone)  # validated with the config; line protocol has epoch timestamps only
    if fmt in ("json", "vector", "fluentbit", "ecs"):
        return JsonLogDecoder(fmt, fields, spec.default_entity, tz)
    if fmt == "otlp_json":
        return OtlpJsonLogDecoder(fields, spec.default_entity, tz)
    if fmt == "logfmt":
        return LogfmtDecoder(fields, spec.default_entity, tz)
    if fmt == "plain":
        for name in ("message", "timestamp", "level", "entity"):
            if getattr(fields, name):
                raise ConfigError(
                    f"input {spec.topic!r}: fields.{name} does not apply to plain text "
                    "(the entity is the record key, else default_entity)"
                )
        return PlainTextDecoder(spec.default_entity, tz)
    if fmt in METRIC_FORMATS:
        for name in ("message", "timestamp", "level"):
            if getattr(fields, name):
                raise ConfigError(f"input {spec.topic!r}: fields.{name} does not apply to metric inputs; only fields.entity does")
        if fmt == "metric_json":
            return MetricJsonDecoder(fields.entity, spec.default_entity, tz)
        if fmt == "telegraf":
            return TelegrafJsonDecoder(fields.entity, spec.default_entity, tz)
        return InfluxLineDecoder(fields.entity, spec.default_entity)
    raise ConfigError(f"input {spec.topic!r}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
