"""End to end with real servers: broker -> service -> Prometheus (shipped rules) -> Alertmanager (shipped
config) -> a webhook receiver. Simulated fleet traffic: hours of a normal day page nobody; the injected
disruption reaches the receiver as one incident per service, with its evidence, and through Prometheus
as well (muted there by the pushed incident)."""

from __future__ import annotations

import time
import urllib.parse
from datetime import datetime

import orjson
import pytest

from kafka import KafkaProducer

from detector.broker import free_port
from detector.simulate import SCENARIOS, generate
from tests.kafka_helpers import RunningService, pipeline_spec, read_all, scrape
from tests.test_prometheus_rules import promtool, with_alertmanager

pytestmark = pytest.mark.integration

SCENARIO = "error_burst_after_deploy"
HOURS = 3.0  # the shortest run that holds this scenario's customer-visible start
SPEED = 120.0  # event-time seconds played per wall-clock second once the disruption begins


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _query(prometheus, promql: str) -> list[dict]:
    return prometheus.get_json("/api/v1/query?query=" + urllib.parse.quote(promql))["data"]["result"]


def _rule_evaluations(prometheus) -> float:
    """Rule group evaluations Prometheus has run so far (from its own /metrics)."""
    from tests.kafka_helpers import samples

    return sum(v for _, v in samples(scrape(prometheus.url + "/metrics"), "prometheus_rule_group_iterations_total"))


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def test_an_injected_incident_reaches_the_receiver_and_quiet_hours_page_nobody(
    broker, tmp_path, webhook, alertmanager, start_prometheus
):
    scenario = SCENARIOS[SCENARIO]
    start = 1_714_521_600.0  # fixed, so the simulated day (and what it triggers) is the same every run
    injected_at = scenario.disruption_start(start, HOURS)
    visible_at = scenario.customer_visible_start(start, HOURS)
    records = list(generate(scenario, start=start, hours=HOURS, seed=0))
    quiet = [r for r in records if r.timestamp < injected_at]
    disrupted = [r for r in records if injected_at <= r.timestamp < scenario.impact_end(start, HOURS)]

    port = free_port()
    spec = with_alertmanager(pipeline_spec(broker.bootstrap_servers, tmp_path, port=port), alertmanager.url,
                             resend_seconds=5.0)
    alerts_topic = f"incidents-{port}"  # incident events are also published there
    spec = spec.model_copy(update={"sinks": spec.sinks.model_copy(update={"alerts_topic": alerts_topic})})
    topics = {"log": spec.inputs[0].topic, "metric": spec.inputs[1].topic}
    prometheus = start_prometheus([f"127.0.0.1:{port}"], alertmanager.url)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)

    def is_the_incident(a: dict) -> bool:
        return (a["labels"].get("alertname") == "OutageDetectorIncident" and a["status"] == "firing"
                and a["labels"].get("service") == scenario.entity)

    running = RunningService(spec)
    with running as service:
        opened: list[tuple[float, float]] = []  # (monotonic time, event time) the pipeline opened it
        events_raised: list = []
        emit = service.alertmanager.emit

        def record_open(events):
            opened.extend((time.monotonic(), e.timestamp) for e in events
                          if e.kind == "opened" and e.incident.entity == scenario.entity)
            events_raised.extend(events)
            emit(events)

        service.alertmanager.emit = record_open

        # Hours of a normal day, as fast as the broker takes them: nothing may reach the receiver.
        for r in quiet:
            producer.send(topics[r.kind], key=r.key, value=r.value)
        producer.flush()
        assert running.wait_consumed(len(quiet)) >= len(quiet)
        _wait(lambda: _query(prometheus, f"sum(outage_detector_records_consumed_total) >= {len(quiet)}"), 30,
              "Prometheus to scrape the quiet hours")
        evaluated = _rule_evaluations(prometheus)
        _wait(lambda: _rule_evaluations(prometheus) >= evaluated + 2, 30, "rule evaluations after the scrape")
        assert _query(prometheus, "outage_detector_incident_open") == []
        assert [a for a in prometheus.get_json("/api/v1/alerts")["data"]["alerts"]
                if a["labels"]["alertname"].startswith("OutageDetectorIncident")] == []
        assert webhook.alerts() == [] and alertmanager.get_json("/api/v2/alerts") == []

        # The disruption, played at SPEED times real time until the receiver has the incident.
        t_inject = time.monotonic()
        produced_at: list[tuple[float, float]] = []  # (event time, monotonic time) of each flush
        hit = None
        for r in disrupted:
            due = t_inject + (r.timestamp - injected_at) / SPEED
            if due > time.monotonic():
                producer.flush()
                produced_at.append((r.timestamp, time.monotonic()))
                hit = webhook.wait_for(is_the_incident, timeout=max(0.0, due - time.monotonic()))
                if hit is not None:
                    break
            producer.send(topics[r.kind], key=r.key, value=r.value)
        producer.flush()
        producer.close()
        hit = hit or webhook.wait_for(is_the_incident, timeout=30)
        assert hit is not None, f"no incident for {scenario.entity} reached the receiver\n{alertmanager.log()}"
        t_hook, pushed = hit
        (t_open, open_event_time), *_ = opened
        # The record that confirmed the incident was handed to the producer after the last flush before
        # its event time, and was in the broker by the first flush after it.
        sent_after = max((t for ts, t in produced_at if ts <= open_event_time), default=t_inject)
        sent_by = min((t for ts, t in produced_at if ts > open_event_time), default=t_hook)
        print(f"\ninjection -> webhook: {t_hook - t_inject:.2f} s wall clock, playing the disruption at {SPEED:g}x; "
              f"the incident was confirmed {open_event_time - injected_at:.0f} s of event time after the injection "
              f"({open_event_time - visible_at:+.0f} s from the customer-visible start)")
        print(f"confirming record produced -> webhook: {max(0.0, t_hook - sent_by):.2f}..{t_hook - sent_after:.2f} s; "
              f"incident opened by the pipeline -> webhook: {t_hook - t_open:.3f} s")

        # The same incident through Prometheus and the shipped rules: in Alertmanager, and muted there
        # by the pushed incident that carries the evidence.
        def via_prometheus():
            return [a for a in alertmanager.get_json("/api/v2/alerts")
                    if a["labels"]["alertname"] == "OutageDetectorIncidentOpen" and a["labels"]["entity"] == scenario.entity]
        (from_rules,) = _wait(via_prometheus, 45, "the OutageDetectorIncidentOpen rule to reach Alertmanager")
        print(f"injection -> Prometheus rule alert in Alertmanager: {time.monotonic() - t_inject:.2f} s "
              "(its `for: 15s` included)")
        body = scrape(f"http://127.0.0.1:{port}/metrics")

    labels, ann = pushed["labels"], pushed["annotations"]
    assert labels["entity"] == scenario.entity and labels["severity"] in ("warning", "critical")
    assert set(labels["signal_kinds"].split(",")) <= {"log", "metric"}
    assert injected_at <= _time(ann["started"]) <= open_event_time
    assert ann["runbook_url"] and scenario.entity in ann["summary"]
    desc = ann["description"]
    assert ("observed" in desc and "expected band" in desc) or "template (" in desc, desc
    assert from_rules["labels"]["service"] == scenario.entity
    assert from_rules["status"]["state"] == "suppressed" and from_rules["status"]["inhibitedBy"]

    # Over the whole run only services the disruption involves reached the receiver, and nothing from
    # the rules (the entity-level alerts are muted by the pushed incident).
    received = webhook.alerts()
    assert {a["labels"].get("service") for _, a in received} <= {scenario.entity, *scenario.related}
    assert {a["labels"]["alertname"] for _, a in received} == {"OutageDetectorIncident"}

    done = promtool("check", "metrics", stdin=body)
    assert done.returncode == 0, done.stdout + done.stderr

    # Every incident event raised is on the alerts topic too, keyed by entity, with its evidence.
    published = [orjson.loads(r.value) for r in read_all(broker.bootstrap_servers, alerts_topic, len(events_raised))]
    assert [(d["kind"], d["incident"]["id"]) for d in published] == [(e.kind, e.incident.id) for e in events_raised]
    first = next(d for d in published if d["kind"] == "opened" and d["incident"]["entity"] == scenario.entity)
    assert first["incident"]["signals"] and (first["incident"]["series"] or first["incident"]["templates"])
