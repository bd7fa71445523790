"""Payloads as the shippers send them.

Logs are Elastic Common Schema JSON as Filebeat ships them::

    {"@timestamp": "2024-05-01T18:03:07.412Z", "message": "...", "log": {"level": "info"},
     "service": {"name": "checkout"}, "host": {"name": "node-4"}}

Metrics are the project's metric JSON, one point per record::

    {"name": "http_request_duration_seconds_p99", "labels": {"service": "checkout", "instance": "node-4"},
     "value": 0.182, "timestamp": 1714586587.0}

Event times are whole milliseconds, so the ``@timestamp`` text and the record's timestamp agree exactly.
"""

from __future__ import annotations

import time

import orjson


class Encoder:
    """Caches what repeats (the second-resolution time text, label objects) across many records."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._labels: dict[tuple[str, str], dict[str, str]] = {}

    def rfc3339(self, t: float) -> str:
        ms = int(round(t * 1000.0))
        sec, frac = divmod(ms, 1000)
        if sec != self._second:
            self._second = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._prefix}.{frac:03d}Z"

    def log(self, t: float, service: str, host: str, level: str, message: str) -> bytes:
        return orjson.dumps({
            "@timestamp": self.rfc3339(t),
            "message": message,
            "log": {"level": level},
            "service": {"name": service},
            "host": {"name": host},
        })

    def metric(self, t: float, name: str, service: str, instance: str, value: float) -> bytes:
        labels = self._labels.get((service, instance))
        if labels is None:
            labels = self._labels[(service, instance)] = {"service": service, "instance": instance}
        return orjson.dumps({"name": name, "labels": labels, "value": value, "timestamp": t})
