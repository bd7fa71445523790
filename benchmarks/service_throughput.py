"""End-to-end throughput of the service on a real broker, next to raw kafka-python consumption.

Produces N log records (ECS JSON carrying real HDFS log lines) and N metric points (JSON, 200 series)
to an embedded broker, then measures in the same run:

- baseline: a plain kafka-python consumer polling the topic in batches (records/s);
- service: the full path (consume, decode, mine or score, alert, export bookkeeping, checkpoint and
  commit) on the same topic (records/s), from the first record consumed to the last.

Prints one JSON object; the ratio service / baseline is what to compare across machines.

    python benchmarks/service_throughput.py [--records 100000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from detector.broker import EmbeddedBroker
from detector.config import load_pipeline
from detector.config import KafkaSettings
from detector.kafka_io import ensure_topics, fetch_config
from detector.service import Service

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
T0 = 1_700_000_000.0


def log_payloads(n: int):
    lines = (DATA / "loghub" / "hdfs" / "hdfs_dev.log").read_text().splitlines()
    services = [f"svc-{i}" for i in range(8)]
    for i, line in zip(range(n), itertools.cycle(lines)):
        svc = services[i % len(services)]
        ts = T0 + i * 0.05
        yield svc.encode(), orjson.dumps(
            {"@timestamp": ts, "message": line, "log": {"level": "info"}, "service": {"name": svc}}
        )


def metric_payloads(n: int):
    for i in range(n):
        svc = f"svc-{i % 8}"
        series = i % 200
        value = 100.0 + (i * 7919 % 97) / 10.0
        yield svc.encode(), orjson.dumps(
            {"name": f"metric_{series % 25}", "labels": {"service": svc, "instance": f"node-{series // 25}"},
             "value": value, "timestamp": T0 + 15.0 * (i // 200)}
        )


def produce(bootstrap: str, topic: str, payloads) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=256 * 1024)
    n = 0
    for key, value in payloads:
        producer.send(topic, key=key, value=value)
        n += 1
    producer.flush()
    producer.close()
    return n


def raw_consume(bootstrap: str, topic: str, n: int, partitions: int) -> float:
    # The same fetch settings as the service, so the ratio measures our processing, not the tuning.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             **fetch_config(KafkaSettings(bootstrap_servers=bootstrap)))
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_beginning()
    # Timed from the end of the first non-empty poll, counting only what came after it: connecting and
    # the first fetch are not throughput, and that batch's records arrived before the clock started.
    got, first, counted = 0, None, 0
    while got < n:
        batch = consumer.poll(500, max_records=5000)
        polled = sum(len(recs) for recs in batch.values())
        got += polled
        if first is None:
            if polled:
                first = time.perf_counter()
        else:
            counted += polled
    elapsed = time.perf_counter() - first
    consumer.close()
    return counted / elapsed


def service_consume(bootstrap: str, topic: str, kind: str, fmt: str, n: int, state_dir: str) -> float:
    spec = load_pipeline(
        None,
        kafka={"bootstrap_servers": bootstrap, "group_id": f"bench-{topic}", "session_timeout_ms": 6000},
        inputs=[{"topic": topic, "kind": kind, "format": fmt}],
        sinks={"prometheus": {"enabled": False}, "console": {"enabled": False}},
        checkpoint={"directory": state_dir, "interval_seconds": 5},
    )
    service = Service(spec)
    service.start()
    first = None  # timed as the raw consumer is: from the end of the first non-empty poll's processing
    before = 0
    while True:
        batch = service.source.poll()
        if batch:
            service.process(batch)
            if first is None:
                first = time.perf_counter()
                before = sum(service.pipeline.consumed.values())
        if sum(service.pipeline.consumed.values()) >= n:
            break
    service.checkpoint_and_commit()
    elapsed = time.perf_counter() - first
    service.close()
    return (n - before) / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()
    if args.records < 20_000:  # the first poll (up to 5000 per partition) is not timed: leave enough after it
        ap.error("--records must be at least 20000")
    partitions = 2
    out = {"records": args.records}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as state:
        bs = broker.bootstrap_servers
        for kind, fmt, payloads in (("log", "ecs", log_payloads), ("metric", "metric_json", metric_payloads)):
            topic = f"bench-{kind}"
            ensure_topics(KafkaSettings(bootstrap_servers=bs), [topic], partitions=partitions)
            n = produce(bs, topic, payloads(args.records))
            raw = raw_consume(bs, topic, n, partitions)
            svc = service_consume(bs, topic, kind, fmt, n, f"{state}/{kind}")
            out[kind] = {
                "raw_kafka_python_records_per_second": round(raw),
                "service_records_per_second": round(svc),
                "ratio": round(svc / raw, 3),
            }
            print(f"{kind}: {out[kind]}", file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
