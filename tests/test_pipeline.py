"""The processing path without a broker: per-partition state, dead letters, event time."""

from __future__ import annotations

import pickle
import random
import threading
import time

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detector.config import load_pipeline
from detector.decoders import MAX_RECORD_BYTES
from detector.decoders.logs_json import JsonLogDecoder
from detector.pipeline import Pipeline
from detector.records import MAX_NAME_CHARS, MAX_SERIES_CHARS, MAX_VALUE_CHARS, RawRecord
from detector.sinks.prometheus import PrometheusSink


def spec():
    return load_pipeline(None, inputs=[
        {"topic": "logs", "kind": "log", "format": "ecs"},
        {"topic": "metrics", "kind": "metric", "format": "metric_json"},
    ])


def log(offset: int, ts: float, message: str, partition: int = 0, service: str = "api") -> RawRecord:
    body = {"@timestamp": ts, "message": message, "log": {"level": "info"}, "service": {"name": service}}
    return RawRecord("logs", partition, offset, None, service.encode(), orjson.dumps(body))


def test_bad_records_become_dead_letters_and_the_rest_goes_on():
    p = Pipeline.from_spec(spec())
    batch = [log(0, 1e9, "started"), RawRecord("logs", 0, 1, None, None, b"\x00\x01garbage"),
             RawRecord("elsewhere", 0, 0, None, None, b"{}"), log(2, 1e9 + 1, "started")]
    result = p.process(batch)
    assert [(d.raw.topic, d.raw.offset) for d in result.dead_letters] == [("logs", 1), ("elsewhere", 0)]
    assert all(d.reason for d in result.dead_letters)
    assert p.state("logs", 0).next_offset == 3  # the bad record's offset is passed, not retried forever
    assert p.decoded["logs"] == 2 and p.consumed["logs"] == 3


@pytest.mark.parametrize(
    "topic, value, kind",
    [
        ("logs", b"a" * (MAX_RECORD_BYTES + 1), "OversizedRecord"),
        ("logs", b"", "EmptyRecord"),
        ("logs", b'{"message": "M\xfcller"}', "NotText"),
        ("logs", b'{"message": oops}', "MalformedRecord"),
        ("metrics", b'{"value": 1, "timestamp": 1e9}', "MissingField"),
        ("metrics", b'{"name": "up", "value": "abc", "timestamp": 1e9}', "InvalidField"),
    ],
)
def test_a_dead_letter_is_counted_under_the_kind_of_what_is_wrong(topic, value, kind):
    # The kind is the counter's label: an operator tells a format change from a missing field by it.
    p = Pipeline.from_spec(spec())
    result = p.process([RawRecord(topic, 0, 7, 1e9, None, value)])
    assert [(d.raw.offset, d.kind) for d in result.dead_letters] == [(7, kind)]
    assert p.dead_lettered == {(topic, kind): 1}


@pytest.mark.parametrize("case", ["label value", "metric name", "log entity"])
def test_an_overlong_name_or_entity_is_dead_lettered_and_never_becomes_a_label_value(case):
    # 300 such records once made a 180 MB scrape: each sample carries the value as entity and in series.
    p = Pipeline.from_spec(spec())
    registry = CollectorRegistry()
    sink = PrometheusSink(p, threading.Lock(), 1000, registry=registry)
    long = "svc0-" + "x" * 99_995

    def point(offset, ts, name="latency_ms", service="svc-1"):
        body = {"name": name, "labels": {"service": service}, "value": 100.0 + offset % 7, "timestamp": ts}
        return RawRecord("metrics", 0, offset, None, None, orjson.dumps(body))

    batch = [point(i, 1e9 + 15 * i) for i in range(40)] + [log(i, 1e9 + 15 * i, f"request {i} served") for i in range(40)]
    bad = {"label value": point(40, 1e9 + 600, service=long),
           "metric name": point(40, 1e9 + 600, name=long),
           "log entity": log(40, 1e9 + 600, "request 40 served", service=long)}[case]
    batch.append(bad)
    result = p.process(batch)
    sink.emit(result, 0.0)
    sink.emit(p.flush(), 0.0)  # closes the log windows: their signals are exported

    # The record goes to the dead-letter topic whole, saying which field, its length, the bound, its start.
    what = {"label value": "label 'service' value is 100000 characters, over the 1024 character limit",
            "metric name": "metric name is 100000 characters, over the 200 character limit",
            "log entity": "entity is 100000 characters, over the 1024 character limit"}[case]
    assert [(d.raw, d.kind, d.reason) for d in result.dead_letters] == [(bad, "InvalidField", f"{what}: 'svc0-" + "x" * 31 + "...")]
    assert p.dead_lettered == {(bad.topic, "InvalidField"): 1}
    assert registry.get_sample_value("outage_detector_records_dead_lettered_total",
                                     {"topic": bad.topic, "error_kind": "InvalidField"}) == 1
    text = generate_latest(registry).decode()
    assert "xxxxxxxxxx" not in text
    labels = [s.labels for fam in text_string_to_metric_families(text) for s in fam.samples]
    assert {"svc-1", "api"} <= {lv.get("entity") for lv in labels}  # the good records are exported
    assert max(len(v) for lv in labels for v in lv.values()) <= MAX_SERIES_CHARS
    assert max(len(lv.get("entity", "")) for lv in labels) <= MAX_VALUE_CHARS
    assert max(len(lv.get("signal", "")) for lv in labels) <= MAX_NAME_CHARS


def test_a_decoder_failing_unforeseen_is_dead_lettered_as_a_plain_decode_error(monkeypatch):
    def fails(self, raw):
        raise KeyError("surprise")

    monkeypatch.setattr(JsonLogDecoder, "_decode", fails)
    result = Pipeline.from_spec(spec()).process([log(0, 1e9, "started")])
    assert [(d.kind, d.reason) for d in result.dead_letters] == [("DecodeError", "ecs: unexpected KeyError: 'surprise'")]


def test_state_is_kept_per_partition_and_survives_pickling():
    p = Pipeline.from_spec(spec())
    p.process([log(i, 1e9 + i, f"request {i} served in 5 ms", partition=i % 2) for i in range(100)])
    assert set(p.partitions) == {("logs", 0), ("logs", 1)}
    st = p.state("logs", 1)
    restored = pickle.loads(pickle.dumps(st))
    assert restored.next_offset == st.next_offset == 100
    assert restored.records == st.records == 50
    assert [t["template"] for t in restored.model.templates()] == [t["template"] for t in st.model.templates()]


def test_replaying_the_same_records_gives_the_same_scores():
    records = [log(i, 1e9 + 10 * i, f"GET /items/{i % 13} 200 in {i % 7} ms", service=("a", "b")[i % 2])
               for i in range(3000)]
    runs = []
    for size in (500, 137):  # poll batch boundaries must not change any score
        p = Pipeline.from_spec(spec())
        scores = []
        for i in range(0, len(records), size):
            scores += p.process(records[i:i + size]).scores
        scores += p.flush().scores
        runs.append([(s.timestamp, s.entity, s.signal, round(s.score, 12), round(s.confidence, 12)) for s in scores])
    assert runs[0] == runs[1] and runs[0]


def metric(offset: int, ts: float, value: float, service: str = "api") -> RawRecord:
    body = {"name": "bytes", "labels": {"service": service}, "value": value, "timestamp": ts}
    return RawRecord("metrics", 0, offset, None, service.encode(), orjson.dumps(body))


def test_values_near_the_largest_float_are_scored_and_the_series_goes_on():
    p = Pipeline.from_spec(spec())
    values = [1e308, -1e308, 5.0] + [100.0 + (i % 5) for i in range(300)]
    result = p.process([metric(i, 1e9 + 60 * i, v) for i, v in enumerate(values)])
    assert not result.dead_letters and len(result.scores) == len(values)
    assert all(0.0 <= s.score <= 1.0 and 0.0 <= s.confidence <= 1.0 for s in result.scores)


def test_a_model_that_fails_on_a_record_costs_that_record_and_its_series_starts_again(monkeypatch):
    from detector.series_model import SeriesModel

    p = Pipeline.from_spec(spec())
    p.process([metric(i, 1e9 + 60 * i, 10.0 + i % 3, service=s) for i, s in enumerate(["a", "b"] * 50)])
    update = SeriesModel.update

    def fails_on_13(self, t, v):
        if v == 13.0:
            raise ArithmeticError("cannot score 13")
        return update(self, t, v)

    monkeypatch.setattr(SeriesModel, "update", fails_on_13)
    result = p.process([metric(100, 1e9 + 6000, 13.0, "a"), metric(101, 1e9 + 6000, 11.0, "b"),
                        metric(102, 1e9 + 6060, 12.0, "a")])
    assert [(d.raw.offset, d.kind) for d in result.dead_letters] == [(100, "ScoringError")]
    assert "cannot score 13" in result.dead_letters[0].reason
    assert [s.series.split("service=")[1][1] for s in result.scores] == ["b", "a"]
    held = p.state("metrics", 0).model.series
    assert [e.model.detector._state()[0] for e in held.values()] == [51.0, 1.0]  # b kept, a started again
    assert p.state("metrics", 0).next_offset == 103


def test_a_metric_record_a_log_model_cannot_score_is_dead_lettered_not_raised(caplog):
    # A partition state of the other kind (a checkpoint from before the input's kind changed) must cost
    # the records it fails on, never the stream: the service restarted on the error, again and again.
    p = Pipeline.from_spec(spec())
    p.partitions[("metrics", 0)] = p.new_state("logs")
    result = p.process([metric(i, 1e9 + 60 * i, 10.0) for i in range(50)])
    assert [d.kind for d in result.dead_letters] == ["ScoringError"] * 50
    assert p.state("metrics", 0).next_offset == 50
    # One traceback for the lot, not fifty: the dead letters carry each record.
    assert caplog.text.count("Traceback") == 1


def test_a_record_dated_far_after_its_kafka_timestamp_is_dead_lettered_and_log_windows_go_on_closing():
    p = Pipeline.from_spec(spec())
    t0 = 1e9
    records = [RawRecord("logs", 0, i, t0 + 10 * i, b"api", log(i, t0 + 10 * i, f"request {i % 5} served").value)
               for i in range(200)]
    future = RawRecord("logs", 0, 200, t0 + 2000, b"api", log(200, 4_070_908_800.0, "from 2099").value)
    later = [RawRecord("logs", 0, 201 + i, t0 + 2010 + 10 * i, b"api",
                       log(201 + i, t0 + 2010 + 10 * i, f"request {i % 5} served").value) for i in range(100)]
    p.process(records)
    result = p.process([future])
    assert [(d.raw.offset, d.kind) for d in result.dead_letters] == [(200, "FutureTimestamp")]
    assert "after the record's Kafka timestamp" in result.dead_letters[0].reason
    assert p.state("logs", 0).max_event_time < t0 + 3000
    scored = p.process(later).scores
    assert scored and max(s.timestamp for s in scored) > t0 + 2000  # windows after it still close and score


def test_a_record_from_a_clock_running_ahead_is_dead_lettered_and_leaves_open_incidents_open():
    # The producer's clock is a year ahead, so its Kafka timestamp is too: only the wall clock tells.
    p = Pipeline.from_spec(spec())
    rng = random.Random(1)
    t0 = (time.time() // 86400 - 1) * 86400  # yesterday, midnight UTC
    spike = [metric(i, t0 + 60 * i, rng.gauss(100.0, 3.0) if i < 300 else 5000.0) for i in range(310)]
    assert [e.kind for e in p.process(spike).incidents] == ["opened"]
    p.process([log(i, t0 + 60 * i, f"request {i % 5} served", partition=1) for i in range(10)])
    now_before, logs_before = p.incidents.now, p.state("logs", 1).max_event_time

    ahead = time.time() + 365 * 86400
    wrong = [metric(310, ahead, 100.0, service="batch-job")._replace(timestamp=ahead),
             log(10, ahead, "nightly export done", partition=1, service="batch-job")._replace(timestamp=ahead)]
    result = p.process(wrong)
    assert [(d.raw.topic, d.kind) for d in result.dead_letters] == [("metrics", "FutureTimestamp"), ("logs", "FutureTimestamp")]
    assert "8760.0 h ahead of the detector's clock" in result.dead_letters[0].reason
    assert p.dead_lettered == {("metrics", "FutureTimestamp"): 1, ("logs", "FutureTimestamp"): 1}
    assert result.incidents == [] and [i.entity for i in p.incidents.open_incidents()] == ["api"]
    assert p.incidents.now == now_before and p.state("logs", 1).max_event_time == logs_before
    assert p.state("metrics", 0).next_offset == 311 and p.state("logs", 1).next_offset == 11


def test_a_tripled_latency_lasting_40_minutes_pages_at_a_15_second_scrape_interval():
    # The model takes a step in a few dozen points; at 15 s scrapes that is minutes, not the 5 an
    # incident needs, unless the run is judged by how long it lasts rather than by its points.
    rng = random.Random(5)
    p = Pipeline.from_spec(spec())
    t0, normal, step = 1_700_000_000.0, 12 * 240, 40 * 4
    raws = []
    for i in range(normal + step):
        v = (100 + rng.gauss(0, 8)) * (3 if i >= normal else 1)
        body = {"name": "latency_ms", "labels": {"service": "api"}, "value": v, "timestamp": t0 + 15 * i}
        raws.append(RawRecord("metrics", 0, i, None, b"api", orjson.dumps(body)))
    opened = [e for k in range(0, len(raws), 100) for e in p.process(raws[k:k + 100]).incidents if e.kind == "opened"]
    assert len(opened) == 1
    assert 300 <= opened[0].timestamp - (t0 + 15 * normal) <= 600


def test_local_time_read_as_utc_is_dead_lettered_with_a_reason_naming_the_timezone_setting():
    # A host in UTC+2 writing log4j's %d: its lines are two hours "ahead" of their Kafka timestamps.
    p = Pipeline.from_spec(load_pipeline(None, inputs=[{"topic": "app", "kind": "log", "format": "plain"}]))
    kafka_ts = 1_705_312_805.0  # 2024-01-15T10:00:05Z, five seconds after the line was written
    line = RawRecord("app", 0, 0, kafka_ts, b"api", b"2024-01-15 12:00:00,000 ERROR payment failed")
    (dead,) = p.process([line]).dead_letters
    assert dead.kind == "FutureTimestamp"
    assert "2.0 h after the record's Kafka timestamp" in dead.reason
    assert "a timestamp without an offset is read in the input's timezone, UTC" in dead.reason
    assert "set 'timezone' on the input" in dead.reason

    fixed = Pipeline.from_spec(load_pipeline(None, inputs=[
        {"topic": "app", "kind": "log", "format": "plain", "timezone": "Africa/Cairo"}]))
    assert fixed.process([line]).dead_letters == []


def test_a_gap_that_is_no_utc_offset_gets_no_timezone_hint():
    p = Pipeline.from_spec(spec())
    t0 = 1e9
    (dead,) = p.process([RawRecord("logs", 0, 0, t0, b"api", log(0, t0 + 2 * 3600 + 1200, "x").value)]).dead_letters
    assert dead.kind == "FutureTimestamp" and "timezone" not in dead.reason


def cpu_point(offset: int, ts: float, value: float, service: str = "api") -> RawRecord:
    body = {"name": "cpu_percent", "labels": {"service": service}, "value": value, "timestamp": ts}
    return RawRecord("metrics", 0, offset, None, service.encode(), orjson.dumps(body))


def test_a_metric_point_older_than_its_series_newest_is_dead_lettered_not_scored_as_current():
    import threading

    from prometheus_client import CollectorRegistry

    from detector.sinks.prometheus import PrometheusSink

    p = Pipeline.from_spec(spec())
    registry = CollectorRegistry()
    PrometheusSink(p, threading.Lock(), 100, registry=registry)
    now = 1e9 + 7200
    current = [cpu_point(i, now - 600 + 60 * i, 42.0 - (10 - i) % 3) for i in range(11)]  # the newest is 42 at `now`
    assert not p.process(current).dead_letters
    labels = {"entity": "api", "signal": "cpu_percent", "series": 'cpu_percent{service="api"}'}
    assert registry.get_sample_value("outage_detector_observed_value", labels) == 42.0
    # A Telegraf buffer flushed after an outage: a point from two hours ago.
    result = p.process([cpu_point(11, now - 7200, 97.0)])
    assert not result.scores
    ((dead,),) = [result.dead_letters]
    assert dead.kind == "OutOfOrder" and dead.raw.offset == 11
    assert "1 of 1 metric points at or before their series' newest point" in dead.reason
    assert registry.get_sample_value("outage_detector_observed_value", labels) == 42.0
    # The newest point sent again (a producer retrying) is counted, not dead-lettered again.
    result = p.process([cpu_point(12, now, 42.0)])
    assert not result.scores and not result.dead_letters
    assert registry.get_sample_value("outage_detector_metric_points_out_of_order_total", {"topic": "metrics"}) == 2
    assert registry.get_sample_value("outage_detector_records_dead_lettered_total",
                                     {"topic": "metrics", "error_kind": "OutOfOrder"}) == 1
    assert p.state("metrics", 0).next_offset == 13
    # The series goes on with its next point.
    (score,) = p.process([cpu_point(13, now + 60, 41.0)]).scores
    assert score.value == 41.0
    assert registry.get_sample_value("outage_detector_observed_value", labels) == 41.0



def test_a_flood_of_dead_letters_logs_the_first_few_per_kind_then_a_count_a_minute(caplog, monkeypatch, tmp_path):
    import logging

    from detector.service import Service

    class Source:
        def highwaters(self):
            return {}

    class DeadLetters:
        sent = 0

        def send(self, raw, reason, kind):
            DeadLetters.sent += 1

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    service = Service(load_pipeline(None, inputs=spec().inputs, checkpoint={"directory": str(tmp_path)}))
    service.source, service.dead_letters = Source(), DeadLetters()
    bad = [RawRecord("logs", 0, i, None, None, b"\x00\x01garbage") for i in range(20_000)]
    bad += [RawRecord("metrics", 0, i, None, None, b"{") for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="detector.service"):
        for i in range(0, len(bad), 500):  # poll batches 3 s apart
            service.process(bad[i:i + 500])
            now[0] += 3.0
        service.dead_letter_log.summarise()  # as the loop does while idle
    assert DeadLetters.sent == len(bad)  # each one still goes to the dead-letter topic
    lines = [r.getMessage() for r in caplog.records]
    assert len([ln for ln in lines if ln.startswith("dead letter logs[0]")]) == 5
    assert len([ln for ln in lines if ln.startswith("dead letter metrics[0]")]) == 3
    summaries = [ln for ln in lines if "more dead letters" in ln]
    # 41 batches over two minutes of the (patched) clock: one summary a minute, nothing else.
    assert len(summaries) == 2 and len(lines) == 8 + 2
    # Every one is accounted for: logged, or counted in a summary line.
    assert all("on topic logs" in ln for ln in summaries)
    assert sum(int(ln.split()[0]) for ln in summaries) == 20_000 - 5
