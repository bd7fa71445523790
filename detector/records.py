"""Plain, compact record types that flow through the hot path.

These are NamedTuples rather than pydantic models on purpose: they are built once per record, and
pydantic validation is reserved for configs and specs.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Lengths a record may carry into label values (the entity, signal and series labels on /metrics, the
# labels of alerts) and into the keys of model state. Prometheus sets no limit of its own, so without
# these one producer writing a 100 KB tag makes every scrape megabytes and Prometheus gigabytes. The
# bounds sit far above real names and far below what costs: exporters' metric and label names stay under
# 100 characters; a host, pod or service name is at most 253 (DNS), an image reference or a URL route a few
# hundred; a series with twenty such labels stays under a few thousand. Records over them are dead-lettered
# (InvalidField, see decoders/base.py), never cut: a cut value could merge two series into one.
MAX_NAME_CHARS = 200  # a metric name, a label name
MAX_VALUE_CHARS = 1024  # a label value, the entity of a log record
MAX_SERIES_CHARS = 4096  # a metric series' identity, name{k="v",...}: the `series` label


class RawRecord(NamedTuple):
    """Bytes as they came off a source, with their position for commits and dead letters."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None  # broker/producer timestamp in seconds, used when the payload has none
    key: bytes | None
    value: bytes


class LogRecord(NamedTuple):
    timestamp: float  # event time, seconds since the epoch
    entity: str  # service / host the line belongs to
    message: str
    level: str | None = None  # normalised lower-case: debug, info, warn, error, fatal


class MetricPoint(NamedTuple):
    timestamp: float  # event time, seconds since the epoch
    entity: str
    name: str
    labels: tuple[tuple[str, str], ...]  # sorted (key, value) pairs
    value: float

    @property
    def series(self) -> str:
        """Stable series identity: name{k="v",...} in label order.

        Values are escaped as in Prometheus' text format, so a value holding `",` cannot forge another
        label set's key; so are the characters of the key's syntax in a name or a label name (a name
        `x{service="a"}` is not the series `x` of service a). Ordinary names and values are unchanged
        (checkpoints hold their models under these keys).
        """
        name = _escape_name(self.name)
        if not self.labels:
            return name
        inner = ",".join(f'{_escape_name(k)}="{_escape(v)}"' for k, v in self.labels)
        return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


_KEY_SYNTAX = re.compile(r'[\\{}"=,\n]')


def _escape_name(name: str) -> str:
    return _KEY_SYNTAX.sub(lambda m: "\\n" if m.group() == "\n" else "\\" + m.group(), name) if _KEY_SYNTAX.search(name) else name


class Score(NamedTuple):
    """One scored observation of one signal of one entity."""

    timestamp: float
    entity: str
    signal: str  # bounded vocabulary: a metric name or one of the log signals
    score: float  # raw detector score, higher is more anomalous
    confidence: float  # calibrated, in [0, 1]
    evidence: dict | None = None  # what an SRE needs to see: expected band, templates, example lines
    series: str = ""  # the metric series within the signal; for log signals, the input topic
    value: float | None = None  # the observed metric value the score is about; None for log signals
