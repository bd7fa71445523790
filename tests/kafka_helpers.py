"""Helpers for tests against the real broker: produce payloads, read offsets, run the service."""

from __future__ import annotations

import threading
import time
import urllib.request
import uuid
from collections import Counter

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from detector.config import load_pipeline
from detector.kafka_io import ensure_topics


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ecs_line(ts: float, service: str, message: str, level: str = "info") -> bytes:
    from datetime import datetime, timezone

    stamp = datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return orjson.dumps({"@timestamp": stamp, "message": message, "log": {"level": level}, "service": {"name": service}})


def metric_point(ts: float, service: str, name: str, value: float) -> bytes:
    return orjson.dumps({"name": name, "labels": {"service": service}, "value": value, "timestamp": ts})


def produce(bootstrap: str, topic: str, records: list[tuple], **config) -> Counter:
    """Send (key, value) pairs, or (key, value, partition, timestamp in seconds) as a shipper that stamps
    records with their event time does; returns the number of records per (topic, partition)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **config)
    futures = [producer.send(topic, key=r[0], value=r[1], partition=r[2], timestamp_ms=round(r[3] * 1000))
               if len(r) > 2 else producer.send(topic, key=r[0], value=r[1]) for r in records]
    producer.flush()
    per_partition = Counter()
    for f in futures:
        md = f.get(timeout=10)
        per_partition[(md.topic, md.partition)] += 1
    producer.close()
    return per_partition


def committed(bootstrap: str, group: str, partitions) -> dict:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {tp: consumer.committed(TopicPartition(*tp)) for tp in partitions}
    finally:
        consumer.close()


def wait_committed(bootstrap: str, group: str, per_partition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if committed(bootstrap, group, per_partition) == dict(per_partition):
            return
        time.sleep(0.2)
    raise AssertionError(f"offsets not committed to the end within {timeout:.0f}s")


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list:
    """Every record of ``topic`` (counting them, since the broker's end offsets can lag)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    out, deadline = [], time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for recs in consumer.poll(500).values():
                out.extend(recs)
    finally:
        consumer.close()
    return out


def pipeline_spec(bootstrap: str, tmp_path, port: int = 0, checkpoint_seconds: float = 0.5, **overrides):
    logs, metrics = unique("logs"), unique("metrics")
    spec = load_pipeline(
        None,
        kafka={"bootstrap_servers": bootstrap, "group_id": unique("group"), "session_timeout_ms": 6000,
               "dead_letter_topic": unique("dead"), "poll_timeout_ms": 200},
        inputs=[{"topic": logs, "kind": "log", "format": "ecs"}, {"topic": metrics, "kind": "metric", "format": "metric_json"}],
        sinks={"prometheus": {"port": port}, "console": {"enabled": False}},
        checkpoint={"directory": str(tmp_path / "state"), "interval_seconds": checkpoint_seconds},
        **overrides,
    )
    ensure_topics(spec.kafka, [logs, metrics, spec.kafka.dead_letter_topic], partitions=2)
    return spec


def write_pipeline(spec, path) -> None:
    """The spec as a pipeline file, for the service run as a command."""
    import yaml

    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def samples(body: str, name: str) -> list[tuple[dict, float]]:
    """(labels, value) of every sample called ``name`` in an exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (s.labels, s.value)
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
        if s.name == name
    ]


class RunningService:
    """The service in a background thread, stopped (final checkpoint and commit) on exit."""

    def __init__(self, spec, **kwargs):
        from detector.service import Service

        self.service = Service(spec, **kwargs)
        self.thread = threading.Thread(target=self.service.run, daemon=True)

    def __enter__(self):
        self.service.start()
        self.thread.start()
        return self.service

    def wait_consumed(self, n: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        done = 0
        while time.monotonic() < deadline:
            with self.service.lock:
                done = sum(self.service.pipeline.consumed.values())
            if done >= n:
                break
            time.sleep(0.1)
        return done

    def __exit__(self, *exc):
        self.service.stop()
        self.thread.join(30)


def wait_for(check, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``check`` until it holds; fail the test, naming ``what``, after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s")
