"""What the service exports on /metrics, for tests that check rules and dashboards against it."""

from __future__ import annotations

import re

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

# Names in PromQL: an identifier not followed by "(" (a function) and not inside quotes is a metric.
_NAME = re.compile(r"\boutage_detector_[a-zA-Z0-9_]+\b")


def service_exposition(tmp_path) -> str:
    """/metrics of a Service built from a pipeline with log and metric inputs and Alertmanager push, as
    the HTTP endpoint serves it (the exposition is generated from the same registry)."""
    from detector.config import load_pipeline
    from detector.service import Service

    spec = load_pipeline(
        None,
        inputs=[{"topic": "logs", "kind": "log", "format": "ecs"}, {"topic": "metrics", "kind": "metric", "format": "metric_json"}],
        sinks={"alertmanager": {"url": "http://127.0.0.1:9"}, "console": {"enabled": False}},
        checkpoint={"directory": str(tmp_path / "state")},
    )
    service = Service(spec)
    service.checkpointed_at = 0.0  # a checkpoint has been taken: its age is exported
    return generate_latest(service.prometheus.registry).decode()


def exported_names(exposition: str) -> set[str]:
    """Every series name a query can select (``x_total``, ``x_bucket``, ``x_count`` ...): the names of
    the samples, and of counters and gauges declared without samples yet (their TYPE line names the
    series; a histogram's TYPE line names no series)."""
    names = {s.name for fam in text_string_to_metric_families(exposition) for s in fam.samples}
    for name, kind in re.findall(r"^# TYPE (\S+) (\w+)", exposition, flags=re.M):
        if kind in ("counter", "gauge", "untyped"):
            names.add(name)
    return names


def queried_names(promql: str) -> set[str]:
    """The outage_detector_* metric names a PromQL expression (or a rules file) refers to."""
    return set(_NAME.findall(promql))
