"""A scrape answers promptly while a long poll batch holds the pipeline: it serves the state as at the
end of the previous batch, whole, never one half applied."""

from __future__ import annotations

import http.client
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from detector import __version__
from detector.broker import free_port
from detector.config import load_pipeline
from detector.http_server import StatusServer
from detector.service import Service
from detector.sinks.prometheus import SCRAPE_WAIT_SECONDS
from tests.test_prometheus_export import make, metric_records

SERIES = {"entity": "svc-0", "signal": "latency_ms", "series": 'latency_ms{service="svc-0"}'}


class Source:
    """Stands in for the Kafka consumer: ``Service.process`` asks it only for the end offsets."""

    def __init__(self, ends):
        self.ends = ends

    def highwaters(self):
        return dict(self.ends)


def scrape(port: int) -> tuple[float, dict]:
    """(seconds the scrape took, {(name, labels): value}), with Prometheus' default 10 s scrape timeout."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200
        body = resp.read().decode()
    finally:
        conn.close()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(body) for s in fam.samples}
    return time.monotonic() - started, samples


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_a_scrape_during_a_long_batch_answers_promptly_with_the_previous_batch_state(tmp_path, monkeypatch):
    spec = load_pipeline(None, inputs=[{"topic": "m", "kind": "metric", "format": "metric_json"}],
                         sinks={"console": {"enabled": False}}, checkpoint={"directory": str(tmp_path)})
    service = Service(spec)
    records = metric_records("m", n_series=3, points=60)
    first, second = records[:90], records[90:]
    service.assigned = {("m", 0)}
    service.source = Source({("m", 0): len(records)})
    port = free_port()
    service.http = StatusServer("127.0.0.1", port, service.prometheus.registry, healthy=lambda: True,
                                ready=lambda: True, templates=lambda: []).start()
    held, release = threading.Event(), threading.Event()
    batch = None
    try:
        service.process(first)
        _, before = scrape(port)
        assert value(before, "outage_detector_records_consumed_total", topic="m") == 90
        observed_before = value(before, "outage_detector_observed_value", **SERIES)
        assert observed_before is not None

        # The next batch is applied to the models, then held as a long batch would be: under the lock,
        # before alerting and incidents have seen it.
        process = service.pipeline.process

        def slow(*args, **kwargs):
            result = process(*args, **kwargs)
            held.set()
            release.wait(30)
            return result

        monkeypatch.setattr(service.pipeline, "process", slow)
        batch = threading.Thread(target=service.process, args=(second,))
        batch.start()
        assert held.wait(10)
        assert service.pipeline.consumed["m"] == len(records)  # the models hold the new batch already
        seconds, during = scrape(port)
        assert seconds < SCRAPE_WAIT_SECONDS + 1.5, f"the scrape took {seconds:.1f}s while a batch held the pipeline"
        # The previous batch's state, whole: nothing of the one in progress.
        assert value(during, "outage_detector_records_consumed_total", topic="m") == 90
        assert value(during, "outage_detector_observed_value", **SERIES) == observed_before
        assert value(during, "outage_detector_consumer_lag_records", topic="m", partition="0") == len(second)
        assert value(during, "outage_detector_series_held") == 3
        assert value(during, "outage_detector_metrics_snapshot_age_seconds") >= SCRAPE_WAIT_SECONDS
        assert value(during, "outage_detector_build_info", version=__version__) == 1
    finally:
        release.set()
        if batch is not None:
            batch.join(10)
    try:
        assert not batch.is_alive()
        # The scrape that had to wait asked for the state to be read at the batch's end: while the next
        # long hold of the pipeline (here, this test's) runs, that is what is served, one batch old.
        with service.lock:
            seconds, held_again = scrape(port)
        assert seconds < SCRAPE_WAIT_SECONDS + 1.5
        assert value(held_again, "outage_detector_records_consumed_total", topic="m") == len(records)
        assert value(held_again, "outage_detector_observed_value", **SERIES) != observed_before
        assert value(held_again, "outage_detector_consumer_lag_records", topic="m", partition="0") == 0
        # And with the pipeline free, a scrape reads it afresh.
        seconds, after = scrape(port)
        assert value(after, "outage_detector_metrics_snapshot_age_seconds") < SCRAPE_WAIT_SECONDS
        assert value(after, "outage_detector_records_consumed_total", topic="m") == len(records)
    finally:
        service.http.stop()


def test_long_batches_have_buckets_of_their_own(tmp_path):
    spec = load_pipeline(None, inputs=[{"topic": "m", "kind": "metric", "format": "metric_json"}],
                         sinks={"console": {"enabled": False}}, checkpoint={"directory": str(tmp_path)})
    service = Service(spec)
    for seconds in (14.0, 40.0):  # catching up on large multi-point records
        service.prometheus.batch_seconds.observe(seconds)
    registry = service.prometheus.registry
    bucket = "outage_detector_batch_processing_seconds_bucket"
    assert registry.get_sample_value(bucket, {"le": "10.0"}) == 0
    assert registry.get_sample_value(bucket, {"le": "30.0"}) == 1
    assert registry.get_sample_value(bucket, {"le": "60.0"}) == 2


def test_the_state_is_read_at_the_end_of_a_long_batch_and_after_a_scrape_that_could_not_wait():
    """A long batch leaves its state for the scrapes during the next (likely long as well), also when no
    scrape came during it; and a scrape served an older state has the state read at the next batch end."""
    pipeline, sink, registry = make(budget=100)
    sink.collector.wait = 0.05
    records = metric_records("m", n_series=3, points=20)
    consumed = "outage_detector_records_consumed_total"
    sink.emit(pipeline.process(records[:30]), 0.01)
    assert registry.get_sample_value(consumed, {"topic": "m"}) == 30  # a scrape: read then
    sink.emit(pipeline.process(records[30:45]), 5.0)  # long, no scrape during it
    with sink.collector.lock:  # the next batch holds the pipeline
        assert registry.get_sample_value(consumed, {"topic": "m"}) == 45
    sink.emit(pipeline.process(records[45:]), 0.01)  # short, but after a scrape served an older state
    with sink.collector.lock:
        assert registry.get_sample_value(consumed, {"topic": "m"}) == len(records)
