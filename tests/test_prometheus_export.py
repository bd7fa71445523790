"""What Prometheus sees: model values read at scrape time, bounded by the series budget."""

from __future__ import annotations

import random
import threading

import orjson
from prometheus_client import CollectorRegistry, generate_latest

from detector.config import load_pipeline
from detector.pipeline import Pipeline
from detector.records import RawRecord
from detector.sinks.prometheus import PrometheusSink


def metric_records(topic: str, n_series: int, points: int, seed: int = 1, partition: int = 0, start: float = 1e9,
                   service: str = "svc"):
    rng = random.Random(seed)
    out = []
    offset = 0
    for i in range(points):
        for s in range(n_series):
            value = rng.gauss(100.0, 5.0)
            payload = {"name": "latency_ms", "labels": {"service": f"{service}-{s}"}, "value": value,
                       "timestamp": start + 15 * i}
            out.append(RawRecord(topic, partition, offset, None, f"{service}-{s}".encode(), orjson.dumps(payload)))
            offset += 1
    return out


def make(budget: int):
    spec = load_pipeline(None, inputs=[{"topic": "m", "kind": "metric", "format": "metric_json"}],
                         sinks={"prometheus": {"series_budget": budget}})
    pipeline = Pipeline.from_spec(spec)
    registry = CollectorRegistry()
    sink = PrometheusSink(pipeline, threading.Lock(), budget, registry=registry)
    return pipeline, sink, registry


def test_model_values_are_read_at_scrape_time():
    pipeline, sink, registry = make(budget=100)
    records = metric_records("m", n_series=3, points=50)
    result = pipeline.process(records)
    sink.emit(result, pipeline.last_batch_seconds)
    labels = {"entity": "svc-1", "signal": "latency_ms", "series": 'latency_ms{service="svc-1"}'}
    before = registry.get_sample_value("outage_detector_anomaly_confidence_ratio", labels)
    assert before is not None and 0.0 <= before <= 1.0
    # A spike changes what the next scrape reports, with no explicit set() call.
    spike = RawRecord("m", 0, len(records), None, b"svc-1", orjson.dumps(
        {"name": "latency_ms", "labels": {"service": "svc-1"}, "value": 10_000.0, "timestamp": 1e9 + 15 * 50}))
    pipeline.process([spike])
    assert registry.get_sample_value("outage_detector_anomaly_confidence_ratio", labels) > before
    assert registry.get_sample_value("outage_detector_observed_value", labels) == 10_000.0
    assert registry.get_sample_value("outage_detector_records_consumed_total", {"topic": "m"}) == len(records) + 1
    assert registry.get_sample_value("outage_detector_series_held") == 3


def test_series_over_budget_are_counted_not_exported():
    pipeline, sink, registry = make(budget=5)
    result = pipeline.process(metric_records("m", n_series=12, points=3))
    sink.emit(result, pipeline.last_batch_seconds)
    text = generate_latest(registry).decode()
    exported = [ln for ln in text.splitlines() if ln.startswith("outage_detector_anomaly_score{")]
    assert len(exported) == 5
    assert registry.get_sample_value("outage_detector_model_series_over_budget") == 7


def test_the_budget_goes_to_the_most_recent_series_of_all_partitions():
    # A high-cardinality partition seen first must not hide the series another partition updates now.
    pipeline, sink, registry = make(budget=5)
    pipeline.process(metric_records("m", n_series=8, points=3, service="batch"))
    pipeline.process(metric_records("m", n_series=3, points=3, partition=1, start=1e9 + 3600, service="live"))
    exported = {s.labels["entity"] for f in registry.collect() if f.name == "outage_detector_anomaly_confidence_ratio"
                for s in f.samples}
    assert {"live-0", "live-1", "live-2"} <= exported and len(exported) == 5
    assert registry.get_sample_value("outage_detector_model_series_over_budget") == 6  # 8 stale, 2 of them exported


def test_template_text_never_becomes_a_label_value():
    spec = load_pipeline(None, inputs=[{"topic": "l", "kind": "log", "format": "ecs"}])
    pipeline = Pipeline.from_spec(spec)
    registry = CollectorRegistry()
    sink = PrometheusSink(pipeline, threading.Lock(), 100, registry=registry)
    recs = [
        RawRecord("l", 0, i, None, b"api", orjson.dumps(
            {"@timestamp": 1e9 + i, "message": f"user {i} logged in from 10.0.0.{i % 200}",
             "log": {"level": "info"}, "service": {"name": "api"}}))
        for i in range(600)
    ]
    sink.emit(pipeline.process(recs), 0.0)
    text = generate_latest(registry).decode()
    assert "logged in" not in text
    assert registry.get_sample_value("outage_detector_templates_held") >= 1


def test_log_signals_of_entities_the_model_let_go_leave_and_new_ones_are_exported(tmp_path):
    import yaml

    from detector.specs import MODELS_DIR

    log_spec = yaml.safe_load((MODELS_DIR / "log-default.yaml").read_text())
    log_spec["signals"]["max_entities"] = 2
    (tmp_path / "log.yaml").write_text(yaml.safe_dump(log_spec))
    spec = load_pipeline(None, inputs=[{"topic": "l", "kind": "log", "format": "json"}],
                         models={"metric": str(MODELS_DIR / "metric-default.yaml"), "log": str(tmp_path / "log.yaml")},
                         sinks={"prometheus": {"series_budget": 4}})
    pipeline = Pipeline.from_spec(spec)
    registry = CollectorRegistry()
    sink = PrometheusSink(pipeline, threading.Lock(), 4, registry=registry)

    def lines(entities, start, minutes, offset):
        out = []
        for i in range(minutes * 6):
            for e in entities:
                body = {"message": f"request {i} served", "timestamp": 1e9 + start + 10 * i, "service": e}
                out.append(RawRecord("l", 0, offset + len(out), None, e.encode(), orjson.dumps(body)))
        return out

    def exported():
        return {s.labels["entity"] for f in registry.collect() if f.name == "outage_detector_anomaly_score"
                for s in f.samples}

    first = lines(["old-a", "old-b"], 0, 20, 0)
    sink.emit(pipeline.process(first), 0.0)
    assert exported() == {"old-a", "old-b"}
    sink.emit(pipeline.process(lines(["new-c"], 1200, 20, len(first))), 0.0)
    # The log model holds two entities: old-a made way for new-c, and its last values left /metrics.
    assert "new-c" in exported() and "old-a" not in exported()
    assert set(pipeline.state("l", 0).model.signals.entities) == exported()
    assert registry.get_sample_value("outage_detector_log_signal_updates_dropped_total") > 0


def test_templates_evicted_at_the_cap_are_counted_on_metrics_and_logged_once(tmp_path, caplog):
    import yaml

    from detector.specs import MODELS_DIR

    log_spec = yaml.safe_load((MODELS_DIR / "log-default.yaml").read_text())
    log_spec["miner"]["max_templates"] = 20
    (tmp_path / "log.yaml").write_text(yaml.safe_dump(log_spec))
    spec = load_pipeline(None, inputs=[{"topic": "l", "kind": "log", "format": "json"}],
                         models={"metric": str(MODELS_DIR / "metric-default.yaml"), "log": str(tmp_path / "log.yaml")})
    pipeline = Pipeline.from_spec(spec)
    registry = CollectorRegistry()
    sink = PrometheusSink(pipeline, threading.Lock(), 100, registry=registry)
    abc = "abcdefghijklmnopqrstuvwxyz"

    def one_off(i):  # three words no other line has
        a, b = abc[i % 26], abc[i // 26]
        return f"{a}{b}zz {b}{a}yy {a}{a}{b}qq"

    recs = [RawRecord("l", 3, i, None, b"batch", orjson.dumps(
        {"message": one_off(i), "timestamp": 1e9 + i, "service": "batch"})) for i in range(45)]
    sink.emit(pipeline.process(recs), 0.0)
    assert registry.get_sample_value("outage_detector_log_templates_evicted_total") == 25
    assert registry.get_sample_value("outage_detector_templates_held") == 20
    warnings = [r.getMessage() for r in caplog.records if "max_templates" in r.getMessage()]
    assert len(warnings) == 1 and "l[3]" in warnings[0] and "'batch'" in warnings[0]


def test_a_new_series_exports_no_expected_band_until_its_model_has_one():
    pipeline, sink, registry = make(budget=100)
    labels = {"entity": "svc-0", "signal": "latency_ms", "series": 'latency_ms{service="svc-0"}'}
    records = metric_records("m", n_series=1, points=80)
    for n in (1, 2, 10):
        pipeline.process(records[:n])
        records = records[n:]
        # The value is there from the first point; an expected value and band of a model that has seen
        # a handful of points (0 +- 4e-9 after one) is not, nor in an anomaly's evidence.
        assert registry.get_sample_value("outage_detector_observed_value", labels) is not None
        for name in ("expected_value", "expected_lower", "expected_upper"):
            assert registry.get_sample_value(f"outage_detector_{name}", labels) is None, name
        assert pipeline.state("m", 0).model.series[labels["series"]].model.explain() is None
    pipeline.process(records)  # past the warm-up (50 points of the default model)
    lower = registry.get_sample_value("outage_detector_expected_lower", labels)
    upper = registry.get_sample_value("outage_detector_expected_upper", labels)
    assert lower < 100.0 < upper and upper - lower > 1.0


def test_series_that_stop_reporting_leave_metrics_and_the_budget_and_carry_on_when_back():
    # Pod churn: five pods replaced by five new ones, with a budget of five.
    pipeline, sink, registry = make(budget=5)
    old = metric_records("m", n_series=5, points=80, service="old")
    pipeline.process(old)
    new = metric_records("m", n_series=5, points=500, service="new", start=1e9 + 15 * 80)  # 2 h 5 min
    pipeline.process([r._replace(offset=len(old) + r.offset) for r in new])

    def exported(name="outage_detector_observed_value"):
        return {s.labels["entity"] for f in registry.collect() if f.name == name for s in f.samples}

    assert exported() == {f"new-{i}" for i in range(5)}
    assert exported("outage_detector_anomaly_score") == exported()
    assert registry.get_sample_value("outage_detector_model_series_over_budget") == 0
    assert registry.get_sample_value("outage_detector_series_held") == 10  # the models are kept
    # A series that comes back carries on with its model: past its warm-up, it has a band at once.
    back = {"name": "latency_ms", "labels": {"service": "old-0"}, "value": 101.0, "timestamp": 1e9 + 15 * 580}
    pipeline.process([RawRecord("m", 0, len(old) + len(new), None, b"old-0", orjson.dumps(back))])
    labels = {"entity": "old-0", "signal": "latency_ms", "series": 'latency_ms{service="old-0"}'}
    assert registry.get_sample_value("outage_detector_observed_value", labels) == 101.0
    assert registry.get_sample_value("outage_detector_expected_lower", labels) is not None
    assert registry.get_sample_value("outage_detector_model_series_over_budget") == 1


def test_a_series_reporting_hourly_stays_exported_between_its_points():
    pipeline, sink, registry = make(budget=100)
    hourly = metric_records("m", n_series=1, points=1, service="batch")
    minutely = [r._replace(offset=1 + r.offset) for r in metric_records("m", n_series=1, points=240, service="web")]
    pipeline.process(hourly + minutely)  # the hourly series' next point is due 3600 s after its last
    labels = {"entity": "batch-0", "signal": "latency_ms", "series": 'latency_ms{service="batch-0"}'}
    assert registry.get_sample_value("outage_detector_observed_value", labels) is not None


def test_a_metric_named_like_a_log_signal_is_exported_once_as_its_series():
    # An Influx measurement "log" with a field lines_per_s is the metric log_lines_per_s, of a service
    # whose own logs are read too.
    spec = load_pipeline(None, inputs=[{"topic": "m", "kind": "metric", "format": "metric_json"},
                                       {"topic": "l", "kind": "log", "format": "json"}])
    pipeline = Pipeline.from_spec(spec)
    registry = CollectorRegistry()
    sink = PrometheusSink(pipeline, threading.Lock(), 100, registry=registry)
    records = [RawRecord("m", 0, i, None, b"shipper", orjson.dumps(
        {"name": "log_lines_per_s", "labels": {"service": "shipper"}, "value": 100.0 + i % 3, "timestamp": 1e9 + 15 * i}))
        for i in range(60)]
    records += [RawRecord("l", 0, i, None, b"shipper", orjson.dumps(
        {"message": "shipped batch", "timestamp": 1e9 + 15 * i, "service": "shipper"})) for i in range(60)]
    sink.emit(pipeline.process(sorted(records, key=lambda r: r.offset)), 0.0)
    samples = [s for f in registry.collect() if f.name == "outage_detector_anomaly_score" for s in f.samples
               if s.labels["signal"] == "log_lines_per_s"]
    assert [s.labels["series"] for s in samples] == ['log_lines_per_s{service="shipper"}']


def test_series_held_counts_metric_series_only_and_log_entities_have_their_own_gauge():
    spec = load_pipeline(None, inputs=[{"topic": "m", "kind": "metric", "format": "metric_json"},
                                       {"topic": "l", "kind": "log", "format": "json"}])
    pipeline = Pipeline.from_spec(spec)
    registry = CollectorRegistry()
    PrometheusSink(pipeline, threading.Lock(), 100, registry=registry)
    pipeline.process(metric_records("m", n_series=3, points=10))
    logs = [RawRecord("l", 0, i, None, None, orjson.dumps({"message": f"user {i} logged in", "service": f"svc-{i % 4}",
                                                          "timestamp": 1e9 + i})) for i in range(20)]
    pipeline.process(logs)
    # Compared with max_series, the metric series alone: four log entities are not four series.
    assert registry.get_sample_value("outage_detector_series_held") == 3
    assert registry.get_sample_value("outage_detector_log_entities_held") == 4
