"""/metrics while the service catches up on large multi-point records, on a real broker.

Produces a backlog of InfluxDB line-protocol records (``--points`` points each, one per series, the
series' timestamps advancing 15 s a record) on 4 partitions of an embedded broker, then runs the
service over it with /metrics on, scraping every ``--every`` seconds as Prometheus would (on a fixed
schedule, 10 s timeout) until the backlog is consumed. Poll batches of such records take seconds each.

Prints one JSON object: the scrape durations (longest, median, how many over 10 s), the snapshot age
served, the poll batch durations and the points scored per second.

    python benchmarks/scrape_during_catchup.py [--records 160] [--points 5000] [--every 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time

from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from detector.broker import EmbeddedBroker, free_port
from detector.config import KafkaSettings, load_pipeline
from detector.kafka_io import ensure_topics
from detector.service import Service

T0 = 1_700_000_000
PARTITIONS = 4


def payload(i: int, points: int) -> bytes:
    ts = (T0 + 15 * (i // PARTITIONS)) * 1_000_000_000
    lines = []
    for s in range(points):
        value = 100.0 + ((i * 7919 + s * 104729) % 97) / 10.0
        lines.append(f"m{s % 25},service=svc-{s % 40},instance=node-{s // 25} value={value} {ts}")
    return "\n".join(lines).encode()


def scrape(port: int) -> tuple[float, float | None]:
    """(seconds taken, metrics_snapshot_age_seconds served or None); seconds is inf past 10 s."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    except TimeoutError:
        return float("inf"), None
    finally:
        conn.close()
    took = time.monotonic() - started
    age = None
    for fam in text_string_to_metric_families(body):
        if fam.name == "outage_detector_metrics_snapshot_age_seconds":
            age = fam.samples[0].value
    return took, age


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=160)
    ap.add_argument("--points", type=int, default=5000, help="points (series) per record")
    ap.add_argument("--every", type=float, default=1.0, help="seconds between scrapes")
    args = ap.parse_args()
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as state:
        bs = broker.bootstrap_servers
        ensure_topics(KafkaSettings(bootstrap_servers=bs), ["influx"], partitions=PARTITIONS)
        producer = KafkaProducer(bootstrap_servers=bs, linger_ms=500, batch_size=8 * 1024 * 1024,
                                 max_request_size=8 * 1024 * 1024)
        size = 0
        for i in range(args.records):
            value = payload(i, args.points)
            size = max(size, len(value))
            producer.send("influx", value=value, partition=i % PARTITIONS)
        producer.flush()
        producer.close()
        port = free_port()
        spec = load_pipeline(
            None,
            kafka={"bootstrap_servers": bs, "group_id": "bench-scrape", "session_timeout_ms": 6000},
            inputs=[{"topic": "influx", "kind": "metric", "format": "influx"}],
            sinks={"prometheus": {"enabled": True, "port": port}, "console": {"enabled": False}},
            checkpoint={"directory": state, "interval_seconds": 5},
        )
        batches: list[tuple[float, float, int]] = []  # (when it ended, its duration, records consumed by then)

        def ended(result):
            batches.append((time.perf_counter(), service.pipeline.last_batch_seconds,
                            sum(service.pipeline.consumed.values())))

        service = Service(spec, listeners=[ended])
        service.start()
        loop = threading.Thread(target=service.run, daemon=True)
        scrapes: list[tuple[float, float | None]] = []
        done = threading.Event()

        def scraper():
            # On a fixed schedule, as Prometheus scrapes: a scrape still running at a tick skips it.
            tick = time.monotonic()
            while not done.is_set():
                scrapes.append(scrape(port))
                now = time.monotonic()
                tick += args.every * max(1, -(-(now - tick) // args.every))
                done.wait(max(0.0, tick - now))

        loop.start()
        scraping = threading.Thread(target=scraper, daemon=True)
        scraping.start()
        while len(batches) == 0 or sum(service.pipeline.consumed.values()) < args.records:
            time.sleep(0.05)
        done.set()
        scraping.join(15)
        service.stop()
        loop.join(60)
    took = [t for t, _ in scrapes]
    ages = [a for _, a in scrapes if a is not None]
    finite = [t for t in took if t != float("inf")]
    # Timed from the end of the first batch to the end of the last, counting what came after the first
    # (connecting, the group join and the first fetch are not throughput).
    (first_end, _, first_n), (last_end, _, last_n) = batches[0], batches[-1]
    seconds = [s for _, s, _ in batches]
    out = {
        "records": args.records, "points_per_record": args.points, "record_bytes": size,
        "points_per_second": round((last_n - first_n) * args.points / (last_end - first_end))
        if len(batches) > 1 else None,
        "batches": len(batches), "batch_seconds_max": round(max(seconds), 2),
        "batch_seconds_median": round(statistics.median(seconds), 2),
        "scrapes": len(took), "scrapes_over_10s": sum(t == float("inf") for t in took),
        "scrape_seconds_max": round(max(finite), 3) if finite else None,
        "scrape_seconds_median": round(statistics.median(finite), 3) if finite else None,
        "snapshot_age_seconds_max": round(max(ages), 2) if ages else None,
    }
    collector = getattr(service.prometheus, "collector", None)
    if collector is not None:  # how long reading the pipeline state for /metrics takes here
        out["snapshot_read_seconds"] = round(collector.build_seconds, 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
