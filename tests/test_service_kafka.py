"""The service against a real Kafka-protocol broker: scores out, offsets committed, bad records
dead-lettered with their reason and origin, nothing lost across a kill and restart, alerting
settings edited in the pipeline file applied on SIGHUP, and incidents waiting for an unreachable
Alertmanager delivered by the restarted service."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

from detector.broker import free_port
from detector.checkpoint import CheckpointStore
from detector.cli import main
from detector.kafka_io import MAX_DEAD_LETTER_BYTES
from tests.kafka_helpers import (
    RunningService, committed, ecs_line, metric_point, pipeline_spec, produce, read_all, samples, scrape, unique,
    wait_committed, wait_for, write_pipeline,
)

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0


def normal_traffic(n: int, spike_at: int | None = None):
    rng = random.Random(7)
    logs, metrics = [], []
    for i in range(n):
        ts = T0 + 15 * i
        svc = ("checkout", "payments")[i % 2]
        logs.append((svc.encode(), ecs_line(ts, svc, f"GET /api/items/{i} 200 in {10 + i % 7} ms")))
        value = rng.gauss(100.0, 5.0)
        if spike_at is not None and i >= spike_at and svc == "checkout":
            value = 5000.0
        metrics.append((svc.encode(), metric_point(ts, svc, "http_request_duration_ms", value)))
    return logs, metrics


def test_scores_are_exported_offsets_committed_and_bad_records_dead_lettered(broker, tmp_path):
    port = free_port()
    # Fire on the first anomalous point: this test is about the path through the broker, the
    # hysteresis itself is covered by the alerting unit tests.
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path, port=port, alerting={"fire_after": 1})
    log_topic, metric_topic = spec.inputs[0].topic, spec.inputs[1].topic
    logs, metrics = normal_traffic(400, spike_at=392)
    bad = [(b"checkout", b"{not json"), (b"checkout", bytes(range(256))), (b"payments", b"")]
    per_partition = produce(broker.bootstrap_servers, log_topic, logs + bad)
    per_partition += produce(broker.bootstrap_servers, metric_topic, metrics)
    total = sum(per_partition.values())

    with RunningService(spec) as service:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with service.lock:
                if sum(service.pipeline.consumed.values()) >= total:
                    break
            time.sleep(0.1)
        body = scrape(f"http://127.0.0.1:{port}/metrics")
        assert scrape(f"http://127.0.0.1:{port}/readyz").startswith("ready")
        templates = scrape(f"http://127.0.0.1:{port}/templates")
        assert main(["templates", "--url", f"http://127.0.0.1:{port}", "--json"]) == 0  # the CLI reads the same list
        service.stop()

    # The spike on checkout's latency fires an alert; payments stays quiet.
    firing = [lv["entity"] for lv, v in samples(body, "outage_detector_alert_firing") if v == 1]
    assert firing == ["checkout"]
    consumed = {lv["topic"]: v for lv, v in samples(body, "outage_detector_records_consumed_total")}
    assert consumed == {log_topic: len(logs) + len(bad), metric_topic: len(metrics)}
    dead_lettered = {lv["error_kind"]: v for lv, v in samples(body, "outage_detector_records_dead_lettered_total")}
    assert dead_lettered == {"MalformedRecord": 1, "NotText": 1, "EmptyRecord": 1}
    assert "GET /api/items/<*>" in templates or "GET" in templates

    # Every partition's offset is committed up to its end: nothing will be read twice or skipped.
    offsets = committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition)
    assert offsets == {tp: n for tp, n in per_partition.items()}

    # Dead letters keep the original bytes and say why and where from.
    dead = read_all(broker.bootstrap_servers, spec.kafka.dead_letter_topic, len(bad))
    assert sorted(r.value for r in dead) == sorted(v for _, v in bad)
    kinds = {v: k for (_, v), k in zip(bad, ("MalformedRecord", "NotText", "EmptyRecord"))}
    for r in dead:
        h = dict(r.headers)
        assert h["source_topic"].decode() == log_topic
        assert int(h["source_offset"]) >= 0 and int(h["source_partition"]) in (0, 1)
        assert h["error"] and h["error_kind"].decode() == kinds[r.value]


BIG = ecs_line(T0, "checkout", "x" * (2 << 20))  # 2 MiB: over the input limit and a producer's request limit


def _produce_around_big(bootstrap: str, topic: str, before, after):
    """``before``, then one 2 MiB record and one broken one, then ``after``; returns the records per
    partition and where the big one is."""
    per_partition = produce(bootstrap, topic, before)
    (big_tp,) = sent = produce(bootstrap, topic, [(b"checkout", BIG)], max_request_size=4 << 20)
    big_at = (big_tp, per_partition[big_tp])
    per_partition += sent + produce(bootstrap, topic, [(b"checkout", b"{not json")] + after)
    return per_partition, big_at


def _assert_big_dead_letter(dead, big_at) -> None:
    (big,) = [r for r in dead if dict(r.headers)["error_kind"] == b"OversizedRecord"]
    h = dict(big.headers)
    assert ((h["source_topic"].decode(), int(h["source_partition"])), int(h["source_offset"])) == big_at
    assert len(big.value) == MAX_DEAD_LETTER_BYTES - len(b"checkout") and BIG.startswith(big.value)
    assert int(h["truncated_from"]) == len(BIG)
    (broken,) = [r for r in dead if r is not big]
    assert broken.value == b"{not json" and "truncated_from" not in dict(broken.headers)


def test_a_record_too_large_to_dead_letter_whole_is_cut_to_its_head_and_the_stream_goes_on(broker, tmp_path):
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path)
    log_topic = spec.inputs[0].topic
    logs, _ = normal_traffic(400)
    running = RunningService(spec)
    with running as service:
        per_partition, big_at = _produce_around_big(broker.bootstrap_servers, log_topic, logs[:200], [])
        dead = read_all(broker.bootstrap_servers, spec.kafka.dead_letter_topic, 2)
        _assert_big_dead_letter(dead, big_at)
        per_partition += produce(broker.bootstrap_servers, log_topic, logs[200:])  # and later records
        assert running.wait_consumed(len(logs) + 2) == len(logs) + 2
        assert running.thread.is_alive()
        with service.lock:
            assert service.pipeline.decoded[log_topic] == len(logs)
    assert not running.thread.is_alive()
    assert committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition) == dict(per_partition)


def test_a_dead_letter_kafka_refuses_stops_the_service_with_an_error_and_nothing_past_it_committed(broker, tmp_path):
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path)
    log_topic = spec.inputs[0].topic
    logs, _ = normal_traffic(200)
    per_partition, big_at = _produce_around_big(broker.bootstrap_servers, log_topic, logs[:100], logs[100:])
    cfg = tmp_path / "pipeline.yaml"
    write_pipeline(spec, cfg)
    # Dead letters cut only past 4 MiB: the producer refuses the 2 MiB one.
    uncut = ("import sys, detector.kafka_io as k; k.MAX_DEAD_LETTER_BYTES = 4 << 20; "
             "from detector.cli import main; sys.exit(main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", uncut, "run", "--pipeline", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    (tp, offset) = big_at
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.splitlines()[-1].startswith(
        f"outage-detector: error: could not write the dead letter of {tp[0]}[{tp[1]}]@{offset} to topic")
    assert (committed(broker.bootstrap_servers, spec.kafka.group_id, [tp])[tp] or 0) <= offset
    saved = CheckpointStore(spec.checkpoint.directory).load(*tp)
    assert saved is None or saved.next_offset <= offset

    # A restart reads the record again, and its dead letter is written this time.
    with RunningService(spec):
        wait_committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition)
    _assert_big_dead_letter(read_all(broker.bootstrap_servers, spec.kafka.dead_letter_topic, 2), big_at)


def _consumed(port: int) -> float:
    try:
        body = scrape(f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return -1
    return sum(v for _, v in samples(body, "outage_detector_records_consumed_total"))


def test_a_killed_service_restarts_from_its_checkpoint_and_loses_nothing(broker, tmp_path):
    port = free_port()
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path, port=port, checkpoint_seconds=2.0)
    log_topic = spec.inputs[0].topic
    logs, _ = normal_traffic(20_000)
    first_half, second_half = logs[:10_000], logs[10_000:]
    cfg = tmp_path / "pipeline.yaml"
    write_pipeline(spec, cfg)
    cmd = [sys.executable, "-m", "detector", "run", "--pipeline", str(cfg)]

    per_partition = produce(broker.bootstrap_servers, log_topic, first_half)
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition)  # one checkpoint done
        per_partition += produce(broker.bootstrap_servers, log_topic, second_half)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _consumed(port) <= len(first_half):
            time.sleep(0.01)
    finally:
        first.send_signal(signal.SIGKILL)  # no final checkpoint, no commit
        first.wait(10)
    offsets = committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition)
    assert sum(offsets.values()) < len(logs), "the kill must land while records are unprocessed or uncommitted"

    store = CheckpointStore(spec.checkpoint.directory)
    templates_before = {
        t["id"]: t["template"] for tp in per_partition if store.load(*tp) for t in store.load(*tp).model.templates()
    }
    assert templates_before

    second = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0

    for tp, n in per_partition.items():
        final = store.load(*tp)
        assert final.next_offset == n
        # State and offset are checkpointed together and a restart resumes at the checkpoint's
        # offset, so every record is in the state, and none twice.
        assert final.records == n
        for t in final.model.templates():
            if t["id"] in templates_before:
                assert t["template"] == templates_before[t["id"]]  # ids survive the restart
    assert committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition) == dict(per_partition)
    # Alert and incident state is checkpointed too (an open incident keeps its id across restarts),
    # and what was saved reflects the whole stream.
    _, incidents, _ = store.load("alerting")
    assert incidents.now >= T0 + 15 * (len(logs) - 1) - 120


def one_spike_each(start: int, n: int, spike_at: int):
    """Latency of checkout and payments, alternately; checkout jumps for the one point ``spike_at``."""
    rng = random.Random(start)
    out = []
    for i in range(start, start + n):
        svc = ("checkout", "payments")[i % 2]
        value = 5000.0 if i == spike_at else rng.gauss(100.0, 5.0)
        out.append((svc.encode(), metric_point(T0 + 15 * i, svc, "http_request_duration_ms", value)))
    return out


def _metric(port: int, name: str) -> float:
    return sum(v for _, v in samples(scrape(f"http://127.0.0.1:{port}/metrics"), name))


def test_alerting_settings_edited_in_the_pipeline_file_apply_on_sighup(broker, tmp_path):
    port = free_port()
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path, port=port, alerting={"fire_after": 3})
    metric_topic = spec.inputs[1].topic
    cfg = tmp_path / "pipeline.yaml"
    write_pipeline(spec, cfg)
    service = subprocess.Popen([sys.executable, "-m", "detector", "run", "--pipeline", str(cfg)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # One anomalous point is not three in a row: nothing fires.
        produce(broker.bootstrap_servers, metric_topic, one_spike_each(0, 400, spike_at=392))
        wait_for(lambda: _consumed(port) >= 400)
        assert _metric(port, "outage_detector_alert_firing") == 0

        doc = yaml.safe_load(cfg.read_text())
        doc["alerting"]["fire_after"] = 1
        cfg.write_text(yaml.safe_dump(doc))
        service.send_signal(signal.SIGHUP)
        wait_for(lambda: _metric(port, "outage_detector_model_reloads_total") == 1)

        # The same single point now pages, without a restart.
        produce(broker.bootstrap_servers, metric_topic, one_spike_each(400, 400, spike_at=792))
        wait_for(lambda: _consumed(port) >= 800)
        body = scrape(f"http://127.0.0.1:{port}/metrics")
        firing = [(lv["entity"], lv["signal"]) for lv, v in samples(body, "outage_detector_alert_firing") if v == 1]
        assert ("checkout", "http_request_duration_ms") in firing and {e for e, _ in firing} == {"checkout"}
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(30) == 0


def test_incidents_waiting_for_an_unreachable_alertmanager_are_delivered_after_a_restart(
    broker, tmp_path, alertmanager, webhook
):
    from tests.test_prometheus_rules import with_alertmanager

    # An incident opens and ends while nothing listens at the Alertmanager url; the service is then
    # stopped (a rolling deploy, a node drain) and commits the records that produced it.
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path, alerting={"fire_after": 1, "incident_window_seconds": 120},
                         incidents={"min_duration_seconds": 0})
    down = with_alertmanager(spec, f"http://127.0.0.1:{free_port()}", resend_seconds=2.0)
    per_partition = produce(broker.bootstrap_servers, spec.inputs[1].topic, one_spike_each(0, 500, spike_at=400))
    events = []
    with RunningService(down, listeners=[lambda result: events.extend(result.incidents)]) as first:
        wait_for(lambda: [e.kind for e in events] == ["opened", "resolved"] and first.alertmanager.pushes_failed > 0)
        assert first.alertmanager.pending() == 1
    assert committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition) == dict(per_partition)
    incident_id = events[0].incident.id

    # Restarted with Alertmanager reachable: the receiver is paged for it, then told it is over.
    def notified(status):
        return lambda a: a["annotations"].get("incident_id") == incident_id and a["status"] == status

    with RunningService(with_alertmanager(spec, alertmanager.url, resend_seconds=2.0)):
        firing = webhook.wait_for(notified("firing"), timeout=30)
        resolved = webhook.wait_for(notified("resolved"), timeout=30)
    assert firing is not None, f"the incident never reached the receiver\n{alertmanager.log()}"
    assert resolved is not None and resolved[0] > firing[0]
    assert firing[1]["labels"]["entity"] == "checkout"


def test_a_member_left_without_partitions_is_ready(broker, tmp_path):
    # Two replicas on topics of one partition each: the group gives one of them nothing. It is in the
    # group and ready to take partitions at the next rebalance, so /readyz answers 200; were it 503 for
    # as long as it runs, a rolling update of the StatefulSet would wait at it forever.
    from detector.config import load_pipeline
    from detector.kafka_io import ensure_topics

    base = pipeline_spec(broker.bootstrap_servers, tmp_path)
    logs, metrics = unique("logs"), unique("metrics")
    ports = [free_port(), free_port()]
    specs = [load_pipeline(None, kafka=base.kafka.model_dump(mode="json"),
                           inputs=[{"topic": logs, "kind": "log", "format": "ecs"},
                                   {"topic": metrics, "kind": "metric", "format": "metric_json"}],
                           sinks={"prometheus": {"port": port}, "console": {"enabled": False}},
                           checkpoint={"directory": str(tmp_path / f"state-{i}"), "interval_seconds": 0.5})
             for i, port in enumerate(ports)]
    ensure_topics(specs[0].kafka, [logs, metrics], partitions=1)

    def status(port):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status
        except urllib.error.HTTPError as exc:
            return exc.code

    with RunningService(specs[0]) as first, RunningService(specs[1]) as second:
        wait_for(lambda: [status(p) for p in ports] == [200, 200], timeout=60, what="both members ready")
        assert sorted(len(m.assigned) for m in (first, second)) == [0, 2]  # one of them has no partition
        # Each says what it holds of each topic, and how many partitions the topic has.
        wait_for(lambda: all(_metric(p, "outage_detector_topic_partitions") == 2 for p in ports), timeout=30,
                 what="partition counts")
        assert sorted(_metric(p, "outage_detector_partitions_assigned") for p in ports) == [0, 2]
