"""Replay gives the scores the live service gave: the same records through the real service on a real
broker, then through ``replay`` from the topics and from a file of the same rows. A replay from the
topics is the same however the broker hands the records out, and the same as a file of those records."""

from __future__ import annotations

import random
from collections import Counter

import polars as pl
import pytest

from detector.replay import RowEncoder, replay_file, replay_kafka, sibling
from tests.kafka_helpers import RunningService, pipeline_spec, produce
from tests.test_replay import outage_rows

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0
SERVICES = ("checkout", "payments", "search")


def history(n: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Structured log and metric rows of a few services, with an error burst and a latency spike."""
    rng = random.Random(11)
    logs, metrics = [], []
    for i in range(n):
        ts = T0 + 5 * i
        svc = SERVICES[i % 3]
        burst = svc == "checkout" and 0.7 * n < i < 0.75 * n
        if burst:
            logs.append((ts, svc, f"payment gateway timeout after {rng.randint(900, 1200)} ms", "error"))
        else:
            logs.append((ts, svc, f"GET /api/items/{rng.randint(1, 500)} 200 in {rng.randint(5, 40)} ms", "info"))
        value = rng.gauss(120.0, 8.0) + (900.0 if burst else 0.0)
        metrics.append((ts, "http_request_duration_ms", svc, value))
    return (pl.DataFrame(logs, schema=["timestamp", "service", "message", "level"], orient="row"),
            pl.DataFrame(metrics, schema=["timestamp", "name", "service", "value"], orient="row"))


def _key(df: pl.DataFrame) -> list[tuple]:
    cols = ["timestamp", "entity", "signal", "series", "score", "confidence"]
    return sorted(df.select(cols).iter_rows())


def test_replay_gives_the_scores_and_alerts_the_live_service_gave(broker, tmp_path):
    # Fire on the first anomalous evaluation, so that the comparison has alerts in it.
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path, alerting={"fire_after": 1})
    log_input, metric_input = spec.inputs
    logs, metrics = history(1500)

    # What the producers sent: the structured rows, encoded as the inputs' formats, keyed by service.
    sent = []
    for inp, df in ((log_input, logs), (metric_input, metrics)):
        raws = RowEncoder(spec, inp, partitions=2).encode(df)[0]
        per_partition = produce(broker.bootstrap_servers, inp.topic, [(r.key, r.value) for r in raws])
        # Kafka's default partitioner put each record where the replay's partitioner says it goes.
        assert per_partition == pl.Series([r.partition for r in raws]).value_counts().pipe(
            lambda c: {(inp.topic, p): n for p, n in c.iter_rows()})
        sent.extend(raws)

    live_scores, live_alerts = [], []
    running = RunningService(spec)
    process = running.service.pipeline.process

    def capture(batch, *partitions):
        result = process(batch, *partitions)
        live_scores.extend(result.scores)
        live_alerts.extend(result.transitions)
        return result

    running.service.pipeline.process = capture
    with running:
        assert running.wait_consumed(len(sent)) == len(sent)
    live = pl.DataFrame([(s.timestamp, s.entity, s.signal, s.series, float(s.score), float(s.confidence))
                         for s in live_scores],
                        schema=["timestamp", "entity", "signal", "series", "score", "confidence"], orient="row")
    assert live.filter(pl.col("signal") == "log_template_rate").height > 0
    assert any(a.state == "firing" and a.entity == "checkout" and a.series for a in live_alerts)

    from_topics = tmp_path / "from-topics.parquet"
    summary = replay_kafka(spec, [log_input.topic, metric_input.topic], from_topics, progress=False)
    assert summary["rows"] == len(sent)

    log_file, metric_file = tmp_path / "logs.parquet", tmp_path / "metrics.csv"
    logs.write_parquet(log_file)
    metrics.write_csv(metric_file)
    from_files = tmp_path / "from-files"
    replay_file(spec, log_file, from_files / "logs.parquet", partitions=2, progress=False)
    replay_file(spec, metric_file, from_files / "metrics.parquet", partitions=2, progress=False)

    # Windows close as each record moves its partition's watermark, live as in replay, so the scores
    # are the same set. (The live service never flushes its last open windows; the replay does at the end.)
    replayed = pl.read_parquet(from_topics)
    extra = Counter(_key(replayed))
    extra.subtract(Counter(_key(live)))
    assert all(n >= 0 for n in extra.values()), "every live score is in the replay"
    last_live = {}
    for s in live_scores:
        last_live[(s.entity, s.signal)] = max(last_live.get((s.entity, s.signal), 0.0), s.timestamp)
    for (ts, entity, signal, *_), n in extra.items():
        if n:  # only the windows still open when the live service stopped, closed by the replay's flush
            assert signal.startswith("log_") and ts > last_live.get((entity, signal), float("-inf"))

    per_file = pl.concat([pl.read_parquet(from_files / "logs.parquet"), pl.read_parquet(from_files / "metrics.parquet")])
    assert _key(per_file) == _key(replayed)

    alerts = pl.read_parquet(sibling(from_topics, "alerts"))
    live_firing = sorted((a.timestamp, a.entity, a.signal, a.series) for a in live_alerts if a.state == "firing")
    replay_firing = sorted(alerts.filter(pl.col("state") == "firing").select(
        "timestamp", "entity", "signal", "series").iter_rows())
    assert [a for a in replay_firing if a[0] <= last_live[(a[1], a[2])]] == live_firing


def test_a_start_time_bounds_a_kafka_replay_whatever_the_broker_answers_for_it(broker, tmp_path):
    from kafka import KafkaProducer

    from detector.replay import kafka_batches

    spec = pipeline_spec(broker.bootstrap_servers, tmp_path)
    topic = spec.inputs[0].topic
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    for i in range(240):  # one record a minute for four hours, timestamped so
        producer.send(topic, key=b"k", value=b"{}", timestamp_ms=int((T0 + 60 * i) * 1000))
    producer.flush()
    producer.close()
    got = [r.timestamp for batch in kafka_batches(spec.kafka, [topic], start=("time", T0 + 7200),
                                                  end=("time", T0 + 10800)) for r in batch]
    assert got == [T0 + 60 * i for i in range(120, 180)]


OUTPUTS = ("", ".alerts", ".incidents", ".templates")


def _outage_on_topics(broker, tmp_path) -> tuple:
    """``outage_rows`` on the topics of a new pipeline (two partitions each, keyed by service), each record
    stamped with its event time as Filebeat and Vector stamp theirs; the spec, and the records sent."""
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path, alerting={"fire_after": 1})
    log_input, metric_input = spec.inputs
    rows = outage_rows().with_columns(
        topic=pl.when(pl.col("topic") == "logs").then(pl.lit(log_input.topic)).otherwise(pl.lit(metric_input.topic)))
    raws = RowEncoder(spec, None, partitions=2).encode(rows)[0]
    for inp in spec.inputs:
        produce(broker.bootstrap_servers, inp.topic,
                [(r.key, r.value, r.partition, r.timestamp) for r in raws if r.topic == inp.topic])
    return spec, raws


def _replayed(spec, out, max_poll_records: int = 5000, batch_rows: int = 5000) -> tuple[dict, dict]:
    spec = spec.model_copy(update={"kafka": spec.kafka.model_copy(update={"max_poll_records": max_poll_records})})
    summary = replay_kafka(spec, [inp.topic for inp in spec.inputs], out, progress=False, batch_rows=batch_rows)
    return summary, {suffix: sibling(out, suffix[1:]).read_bytes() if suffix else out.read_bytes()
                     for suffix in OUTPUTS}


def test_two_kafka_replays_of_the_same_topics_give_the_same_output_whatever_the_polls(broker, tmp_path):
    # Polls of 50 records hand out one partition's records at a time, polls of 5000 another mix: the
    # partitions are merged by record timestamp, and the records cut into batches of 7 or of 5000.
    spec, raws = _outage_on_topics(broker, tmp_path)
    small, small_out = _replayed(spec, tmp_path / "small.parquet", max_poll_records=50, batch_rows=7)
    large, large_out = _replayed(spec, tmp_path / "large.parquet")
    assert small["rows"] == large["rows"] == len(raws)
    assert small["incidents"] > 0 and small["alerts"] > 0
    assert small_out == large_out


def test_a_kafka_replay_gives_the_incidents_of_a_file_of_the_same_records(broker, tmp_path):
    spec, raws = _outage_on_topics(broker, tmp_path)
    summary, from_topics = _replayed(spec, tmp_path / "topics.parquet", max_poll_records=50)
    assert summary["late_rows"] == 0 and summary["incidents"] > 0
    # The records as the topics hold them, sorted by timestamp (ties in topic and partition order).
    history = pl.DataFrame({
        "topic": [r.topic for r in raws], "partition": [r.partition for r in raws],
        "offset": [r.offset for r in raws], "key": [r.key for r in raws], "payload": [r.value for r in raws],
        "timestamp": [r.timestamp for r in raws],
    }).sort("timestamp", "topic", "partition", "offset")
    history.write_parquet(tmp_path / "history.parquet")
    replay_file(spec, tmp_path / "history.parquet", tmp_path / "file.parquet", progress=False)
    from_file = {suffix: sibling(tmp_path / "file.parquet", suffix[1:]).read_bytes() if suffix
                 else (tmp_path / "file.parquet").read_bytes() for suffix in OUTPUTS}
    assert from_file == from_topics
