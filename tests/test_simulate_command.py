"""``outage-detector simulate``: listing, topic choice, start time, and playing onto a real broker."""

from __future__ import annotations

import json
import time
import uuid
from argparse import Namespace
from collections import defaultdict

import orjson
import pytest

from detector.cli import main
from detector.config import load_pipeline
from detector.simulate import SCENARIOS
from detector.simulate.command import parse_start, resolve_topics


def test_list_names_every_scenario_with_a_description(capsys):
    assert main(["simulate", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(SCENARIOS)
    for line, (name, sc) in zip(out, SCENARIOS.items()):
        assert line.startswith(name) and sc.description in line


def test_an_unknown_scenario_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--scenario", "no_such_thing"])
    assert "invalid choice" in capsys.readouterr().err


def test_a_run_too_short_for_the_scenario_is_an_error_not_a_traceback(capsys):
    assert main(["simulate", "--scenario", "disk_filling", "--hours", "2"]) == 2
    assert "needs at least" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["simulate", "--scenario", "quiet", "--scrape-interval", "0.01"],
                                     ["simulate", "--scenario", "quiet", "--hours", "10000"],
                                     ["evaluate", "incidents", "--hours", "10000"]])
def test_a_run_too_large_to_hold_in_memory_is_refused_before_it_is_built(capsys, command):
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "scrapes; at most 250,000 can be simulated" in err and "Traceback" not in err


@pytest.mark.parametrize("option, value", [("--hours", "nan"), ("--hours", "inf"), ("--hours", "0"),
                                           ("--speed", "nan"), ("--speed", "-2")])
@pytest.mark.parametrize("command", [["simulate", "--scenario", "quiet"], ["demo"]])
def test_hours_and_speed_must_be_finite_and_positive(capsys, command, option, value):
    with pytest.raises(SystemExit) as exit_:
        main([*command, option, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {option}:" in err and "Traceback" not in err


@pytest.mark.parametrize("option, value, rule", [
    ("--volume", "nan", "finite"), ("--volume", "inf", "finite"), ("--volume", "-1", "0 or more"),
    ("--scrape-interval", "nan", "finite"), ("--scrape-interval", "inf", "finite"),
    ("--scrape-interval", "0", "above 0"), ("--scrape-interval", "-30", "above 0"),
])
def test_volume_and_scrape_interval_must_be_finite_and_in_range(capsys, option, value, rule):
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--scenario", "quiet", option, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {option}: must be" in err and rule in err and repr(value) in err


def test_a_volume_of_0_leaves_only_the_lines_not_tied_to_requests():
    from detector.simulate import generate

    logs = sum(r.kind == "log" for r in generate("quiet", 1714521600.0, 2.0, 0, volume=0.0))
    assert 0 < logs < sum(r.kind == "log" for r in generate("quiet", 1714521600.0, 2.0, 0)) / 5


def test_topics_default_to_the_pipelines_first_inputs_and_flags_win(tmp_path):
    spec_file = tmp_path / "p.yaml"
    spec_file.write_text(
        "inputs:\n"
        "  - {topic: app-metrics, kind: metric, format: metric_json}\n"
        "  - {topic: app-logs, kind: log, format: ecs}\n"
        "  - {topic: more-logs, kind: log, format: json}\n"
    )
    spec = load_pipeline(spec_file)
    assert resolve_topics(Namespace(log_topic=None, metric_topic=None), spec) == {"log": "app-logs", "metric": "app-metrics"}
    assert resolve_topics(Namespace(log_topic="x", metric_topic=None), spec) == {"log": "x", "metric": "app-metrics"}
    only_logs = load_pipeline(None, inputs=[{"topic": "l", "kind": "log", "format": "ecs"}])
    assert resolve_topics(Namespace(log_topic=None, metric_topic=None), only_logs) == {"log": "l", "metric": None}
    bare = load_pipeline(None)
    assert resolve_topics(Namespace(log_topic=None, metric_topic=None), bare) == {"log": "logs", "metric": "metrics"}


def test_start_accepts_epoch_or_iso_and_defaults_to_a_past_utc_midnight():
    assert parse_start("1714521600", 24) == 1714521600.0
    assert parse_start("2024-05-01T00:00:00Z", 24) == 1714521600.0
    assert parse_start("2024-05-01T02:00:00+02:00", 24) == 1714521600.0
    now = 1714600000.0  # 2024-05-01T21:46:40Z
    assert parse_start(None, 24, now) == 1714521600.0 - 86400
    assert parse_start(None, 30, now) == 1714521600.0 - 2 * 86400


@pytest.mark.integration
def test_simulate_plays_a_scenario_onto_kafka_keyed_by_entity_with_event_times(broker, capsys):
    from kafka import KafkaConsumer, TopicPartition

    logs, metrics = f"sim-logs-{uuid.uuid4().hex[:6]}", f"sim-metrics-{uuid.uuid4().hex[:6]}"
    code = main(["simulate", "--scenario", "error_burst_after_deploy", "--hours", "3", "--seed", "5",
                 "--volume", "0.2", "--bootstrap-servers", broker.bootstrap_servers, "--create-topics",
                 "--log-topic", logs, "--metric-topic", metrics, "--start", "2024-05-01T00:00:00Z"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    sc = SCENARIOS["error_burst_after_deploy"]
    assert summary["disruption_start"] == sc.disruption_start(1714521600.0, 3)
    assert summary["customer_visible_start"] == sc.customer_visible_start(1714521600.0, 3)
    assert summary["records"] == summary["logs"] + summary["metrics"] and summary["failed"] == 0

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False)
    parts = [TopicPartition(t, p) for t in (logs, metrics) for p in consumer.partitions_for_topic(t) or ()]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    seen = {logs: 0, metrics: 0}
    partitions_of = defaultdict(set)
    deadline = time.monotonic() + 60
    # Count what arrives rather than trusting end offsets.
    while sum(seen.values()) < summary["records"] and time.monotonic() < deadline:
        for tp, batch in consumer.poll(timeout_ms=500, max_records=5000).items():
            for m in batch:
                seen[tp.topic] += 1
                partitions_of[(tp.topic, m.key)].add(tp.partition)
                obj = orjson.loads(m.value)
                if tp.topic == logs:
                    assert obj["service"]["name"].encode() == m.key
                else:
                    assert obj["labels"]["service"].encode() == m.key
                    assert m.timestamp == round(obj["timestamp"] * 1000)
    consumer.close()
    assert seen == {logs: summary["logs"], metrics: summary["metrics"]}
    assert all(len(p) == 1 for p in partitions_of.values())  # an entity's records stay in one partition
    assert {k for _, k in partitions_of} == {s.encode() for s in ("api-gateway", "auth", "checkout", "payments", "inventory", "search")}
