"""Incidents after a backlog, against a real broker: a service that was down while a fault happened
reads it back as one incident, though its consumer hands out one partition's records at a time."""

from __future__ import annotations

import pytest

from detector.simulate import SCENARIOS, generate
from tests.kafka_helpers import RunningService, pipeline_spec, produce

pytestmark = pytest.mark.integration


def test_a_fault_in_the_backlog_of_a_restarted_service_is_one_incident(broker, tmp_path):
    """Restarted after the fault, the service reads the records it missed in chunks of one partition
    at a time (a small kafka.max_poll_records makes them many), so the metrics topic runs hours ahead
    of the logs topic in event time, or the other way round. The fault must still make one incident
    under one id, not an incident resolved and opened again per chunk of log lines."""
    scenario, start, hours = SCENARIOS["error_burst_after_deploy"], 1_714_521_600.0, 6.0
    records = list(generate(scenario, start=start, hours=hours, seed=0))
    down_at = scenario.disruption_start(start, hours) - 1800  # the service stops half an hour before it
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path)
    spec = spec.model_copy(update={"kafka": spec.kafka.model_copy(update={"max_poll_records": 100})})
    topics = {"log": spec.inputs[0].topic, "metric": spec.inputs[1].topic}
    events = []
    for part in ([r for r in records if r.timestamp < down_at], [r for r in records if r.timestamp >= down_at]):
        for kind, topic in topics.items():
            produce(broker.bootstrap_servers, topic, [(r.key, r.value) for r in part if r.kind == kind])
        running = RunningService(spec, listeners=[lambda result: events.extend(result.incidents)])
        with running:
            assert running.wait_consumed(len(part)) >= len(part)
    opened = [e.incident for e in events if e.kind == "opened"]
    # One incident per service the fault involves (the gateway in front of checkout may show it too).
    assert scenario.entity in [i.entity for i in opened]
    assert all(scenario.involves(i.entity) for i in opened)
    assert len({i.entity for i in opened}) == len(opened)
    assert all(i.start >= scenario.disruption_start(start, hours) for i in opened)
    checkout = [e.incident for e in events if e.incident.entity == scenario.entity]
    assert len({i.id for i in checkout}) == 1
    assert checkout[-1].start >= scenario.disruption_start(start, hours)
