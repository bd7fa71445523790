"""Incidents: anomalies of one entity across log and metric signals become one page with evidence;
low-volume noise and flapping never page; replays give the same incidents with the same ids."""

from __future__ import annotations

import io

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detector.config import AlertingSettings, IncidentSettings, load_pipeline
from detector.incidents import IncidentTracker, describe
from detector.records import Score
from detector.sinks.console import ConsoleSink

T0 = 1_700_000_000.0
TEMPLATE = "payment gateway timeout after <*> ms"
EXAMPLE = "payment gateway timeout after 30000 ms order=ord-81f2"


def metric(ts, entity="checkout", observed=900.0, expected=100.0, half_band=20.0, confidence=0.999, name="latency_ms"):
    series = f'{name}{{service="{entity}"}}'
    ev = {"series": series, "observed": observed, "expected": expected,
          "lower": expected - half_band, "upper": expected + half_band}
    return Score(ts, entity, name, 0.9, confidence, ev, series)


def log_rate(ts, entity="checkout", count=120, expected=0.2, confidence=1.0, template=TEMPLATE, example=EXAMPLE):
    ev = {"lines": count + 50, "templates": [{"template_id": 7, "count": count, "expected": expected,
                                              "example": example, "template": template}]}
    return Score(ts, entity, "log_template_rate", 12.0, confidence, ev)


def error_ratio(ts, entity="checkout", errors=110, lines=170, expected_ratio=0.01, confidence=1.0):
    return Score(ts, entity, "log_error_ratio", 9.0, confidence,
                 {"errors": errors, "lines": lines, "expected_ratio": expected_ratio})


def quiet_metric(ts, entity="checkout"):
    return metric(ts, entity, observed=101.0, confidence=0.3)


def tracker(**incident):
    # Grouping is tested here on short runs; how long a signal must stay hot has its own tests below.
    incident.setdefault("min_duration_seconds", 0.0)
    return IncidentTracker(AlertingSettings(fire_after=3, resolve_after=5, incident_window_seconds=600),
                           IncidentSettings(**incident))


def outage_scores(entity="checkout", start=T0):
    """A latency jump every 15 s, then error lines flooding the log windows a minute later."""
    scores = [quiet_metric(start - 15 * i, entity) for i in range(10, 0, -1)]
    scores += [metric(start + 15 * i, entity) for i in range(8)]
    scores += [log_rate(start + 60 * k, entity) for k in range(1, 5)]
    scores += [error_ratio(start + 60 * k, entity) for k in range(1, 5)]
    return sorted(scores, key=lambda s: s.timestamp)


def test_log_and_metric_anomalies_of_one_service_make_one_critical_incident_with_evidence():
    tr = tracker()
    events = tr.observe(outage_scores())
    opened = [e for e in events if e.kind == "opened"]
    assert len(opened) == 1
    final = tr.open_incidents()
    assert len(final) == 1
    inc = final[0]
    assert inc.id == opened[0].incident.id
    assert inc.entity == "checkout" and inc.severity == "critical"
    assert {s["signal"] for s in inc.signals} == {"latency_ms", "log_template_rate", "log_error_ratio"}
    assert inc.kinds == ("log", "metric")
    assert inc.start == T0  # when the first signal's anomalous run began, not when it was confirmed
    started = {s["signal"]: s["started"] for s in inc.signals}
    assert started["latency_ms"] == T0 and started["log_template_rate"] == T0 + 60
    top = inc.templates[0]
    assert top["template"] == TEMPLATE and top["example"] == EXAMPLE and top["count"] == 120
    band = inc.series[0]
    assert band["observed"] == 900.0 and band["lower"] == 80.0 and band["upper"] == 120.0
    assert inc.confidence > 0.999



def test_a_metric_named_like_a_log_signal_is_a_metric_in_the_incident_and_the_pushed_alert():
    from detector.incidents import describe
    from detector.sinks.alertmanager import alert_labels

    # An Influx measurement "log" with a field "lines_per_s" is the metric log_lines_per_s.
    tr = tracker()
    tr.observe([metric(T0 + 15 * i, name="log_lines_per_s") for i in range(8)])
    (inc,) = tr.open_incidents()
    assert inc.kinds == ("metric",)
    assert alert_labels(inc)["signal_kinds"] == "metric"
    assert "signal log_lines_per_s (metric)" in describe(inc, max_chars=2000)

def test_one_signal_alone_is_a_warning():
    tr = tracker()
    tr.observe([metric(T0 + 15 * i) for i in range(6)])
    (inc,) = tr.open_incidents()
    assert inc.severity == "warning" and [s["signal"] for s in inc.signals] == ["latency_ms"]


def test_replay_gives_the_same_incidents_with_the_same_ids_whatever_the_batches():
    scores = outage_scores("checkout") + outage_scores("payments", start=T0 + 3000)
    scores.sort(key=lambda s: s.timestamp)
    whole = tracker().observe(scores)
    tr = tracker()
    split = []
    for i in range(0, len(scores), 3):
        split += tr.observe(scores[i:i + 3])
    assert [(e.kind, e.incident.id) for e in whole if e.kind == "opened"] == \
           [(e.kind, e.incident.id) for e in split if e.kind == "opened"]
    ids = {e.incident.id for e in whole}
    assert len(ids) == 2  # one per service


def test_a_handful_of_log_lines_never_opens_an_incident_however_confident():
    tr = tracker()
    events = tr.observe([log_rate(T0 + 60 * k, count=4, expected=0.1) for k in range(20)]
                        + [error_ratio(T0 + 60 * k + 1, errors=3, lines=5) for k in range(20)])
    assert events == [] and tr.open_incidents() == []
    assert tr.below_floor == 40


def test_a_metric_inside_its_band_or_barely_off_never_opens_an_incident():
    tr = tracker()
    inside = [metric(T0 + 15 * i, observed=115.0) for i in range(10)]  # band is 80..120
    barely = [metric(T0 + 500 + 15 * i, observed=110.0, half_band=2.0) for i in range(10)]  # 10 % off
    assert tr.observe(inside + barely) == []


def test_a_dropping_log_template_counts_as_well_as_a_flooding_one():
    tr = tracker()
    events = tr.observe([log_rate(T0 + 60 * k, count=0, expected=80.0) for k in range(4)])
    assert [e.kind for e in events] == ["opened"]


def test_one_anomalous_point_is_not_an_incident():
    tr = tracker()
    scores = [metric(T0), quiet_metric(T0 + 15), metric(T0 + 30), metric(T0 + 45), quiet_metric(T0 + 60)]
    assert tr.observe(scores) == []


def test_a_flapping_signal_keeps_one_incident_which_resolves_after_a_quiet_window():
    tr = tracker()
    events = []
    t = T0
    for _ in range(6):  # anomalous for a minute, quiet for two, again and again
        events += tr.observe([metric(t + 15 * i) for i in range(4)])
        events += tr.observe([quiet_metric(t + 60 + 15 * i) for i in range(8)])
        t += 180
    assert [e.kind for e in events] == ["opened"]
    last_hot = t - 180 + 45
    events = tr.observe([quiet_metric(last_hot + 15 * i) for i in range(1, 50)])
    assert [e.kind for e in events] == ["resolved"]
    assert events[0].incident.end == last_hot
    assert tr.open_incidents() == []
    # Trouble after the quiet window is a new incident, with a new id.
    again = tr.observe([metric(last_hot + 2000 + 15 * i) for i in range(3)])
    assert [e.kind for e in again] == ["opened"] and again[0].incident.id != events[0].incident.id


def test_another_partition_running_ahead_does_not_end_an_incident_early():
    tr = tracker()  # 600 s window
    tr.observe([metric(T0 + 15 * i) for i in range(4)])
    # payments' partition is catching up far ahead in event time; checkout's own time has not moved.
    assert tr.observe([quiet_metric(T0 + 1000 + 15 * i, "payments") for i in range(4)]) == []
    assert [i.entity for i in tr.open_incidents()] == ["checkout"]
    # Checkout itself quiet for the window: resolved.
    events = tr.observe([quiet_metric(T0 + 45 + 15 * i) for i in range(1, 42)])
    assert [e.kind for e in events] == ["resolved"]


def test_an_entity_that_falls_silent_still_resolves_when_time_moves_on_elsewhere():
    tr = tracker()
    tr.observe([metric(T0 + 15 * i) for i in range(4)])
    events = tr.observe([quiet_metric(T0 + 45 + 2 * 600, "payments")])
    assert [e.kind for e in events] == ["resolved"] and events[0].incident.entity == "checkout"


def test_an_incident_waits_for_a_stream_hours_behind_and_takes_in_its_signals():
    # Catching up, the metrics partition is read hours ahead of the logs partition: the incident the
    # latency opened must not end before the logs of the same minutes are read, and they join it.
    tr = tracker()  # 600 s window
    logs_read_to = T0 - 30  # the log stream's watermark: its lines from T0 on are still to be read
    events = tr.observe([metric(T0 + 15 * i) for i in range(8)], stream_time=logs_read_to)
    events += tr.observe([quiet_metric(T0 + 120 + 15 * i) for i in range(4 * 240)], stream_time=logs_read_to)
    assert [e.kind for e in events] == ["opened"]
    logs = [log_rate(T0 + 60 * k) for k in range(1, 5)] + [error_ratio(T0 + 60 * k) for k in range(1, 5)]
    events = tr.observe(sorted(logs, key=lambda s: s.timestamp), stream_time=T0 + 240)
    assert [e.kind for e in events] == ["updated"]
    (inc,) = tr.open_incidents()
    assert inc.kinds == ("log", "metric") and inc.severity == "critical"
    # Once the logs are read up to the metrics, the quiet window has passed everywhere: it resolves.
    events = tr.observe([], stream_time=T0 + 4 * 3600)
    assert [(e.kind, e.incident.id) for e in events] == [("resolved", inc.id)]


def test_new_templates_alone_never_page_but_are_evidence_of_an_open_incident():
    tr = tracker()
    new = [Score(T0 + i, "checkout", "log_new_template", 3.0, 0.999,
                 {"template_id": i, "template": f"brand new thing {i} <*>", "example": f"brand new thing {i} x"})
           for i in range(10)]
    assert tr.observe(new) == []
    tr.observe([metric(T0 + 100 + 15 * i) for i in range(3)])
    tr.observe([Score(T0 + 200, "checkout", "log_new_template", 3.0, 0.999,
                      {"template_id": 99, "template": "KeyError: <*>", "example": "KeyError: 'country_code'"})])
    (inc,) = tr.open_incidents()
    assert [t["template"] for t in inc.templates] == ["KeyError: <*>"]
    assert [s["signal"] for s in inc.signals] == ["latency_ms"]


def test_a_quiet_service_beside_an_outage_gets_no_incident():
    tr = tracker()
    scores = outage_scores("checkout") + [quiet_metric(T0 + 15 * i, "payments") for i in range(40)]
    tr.observe(sorted(scores, key=lambda s: s.timestamp))
    assert [i.entity for i in tr.open_incidents()] == ["checkout"]


def test_incidents_are_exported_with_bounded_labels_and_printed_with_their_evidence(tmp_path):
    from detector.pipeline import Pipeline
    from detector.sinks.prometheus import PrometheusSink
    import threading

    spec = load_pipeline(None, inputs=[{"topic": "m", "kind": "metric", "format": "metric_json"}],
                         incidents={"min_duration_seconds": 0.0})  # the short outage of outage_scores()
    pipe = Pipeline.from_spec(spec)
    events = pipe.incidents.observe(outage_scores())
    registry = CollectorRegistry()
    PrometheusSink(pipe, threading.Lock(), 100, registry=registry)
    body = generate_latest(registry).decode()
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    (open_,) = fams["outage_detector_incident_open"].samples
    assert open_.labels == {"entity": "checkout", "severity": "critical"} and open_.value == 1
    opened = {s.labels["severity"]: s.value for s in fams["outage_detector_incidents_opened"].samples
              if s.name.endswith("_total")}
    assert opened == {"warning": 1.0, "critical": 0.0}  # it opened as a warning, then escalated
    inc = events[0].incident
    assert inc.id not in body and TEMPLATE not in body

    out = io.StringIO()
    ConsoleSink(out).emit_incidents(events)
    text = out.getvalue()
    assert "INCIDENT OPENED" in text and "checkout" in text
    assert TEMPLATE in text and EXAMPLE in text and "expected band 80..120" in text


INPUTS = [{"topic": "logs", "kind": "log", "format": "ecs"},
          {"topic": "metrics", "kind": "metric", "format": "metric_json"}]


def simulator_pipeline():
    from detector.pipeline import Pipeline

    return Pipeline.from_spec(load_pipeline(None, inputs=INPUTS))


def simulated(scenario: str, hours: float, start: float = 1_714_521_600.0) -> list:
    """A simulated day as a consumer reads it: topic by kind, one partition each, in event time."""
    from detector.records import RawRecord
    from detector.simulate import SCENARIOS, generate

    offsets, out = {"logs": 0, "metrics": 0}, []
    for rec in generate(SCENARIOS[scenario], start=start, hours=hours, seed=0):
        topic = "logs" if rec.kind == "log" else "metrics"
        out.append(RawRecord(topic, 0, offsets[topic], rec.timestamp, rec.key, rec.value))
        offsets[topic] += 1
    return out


def raw_line(offset: int, ts: float):
    from detector.records import RawRecord
    from tests.kafka_helpers import ecs_line

    return RawRecord("logs", 0, offset, None, b"checkout", ecs_line(ts, "checkout", "GET /cart 200"))


def raw_point(offset: int, ts: float):
    from detector.records import RawRecord
    from tests.kafka_helpers import metric_point

    return RawRecord("metrics", 0, offset, None, b"checkout", metric_point(ts, "checkout", "queue_depth", 3.0))


@pytest.mark.parametrize("scenario", ["quiet", "error_burst_after_deploy"])
def test_simulated_day_pages_only_for_the_disrupted_services(scenario):
    """The whole pipeline on simulated fleet traffic: a quiet day opens no incident; a disruption
    opens incidents only on the services it involves, none before it begins."""
    from detector.simulate import SCENARIOS

    pipe = simulator_pipeline()
    sc, start, hours = SCENARIOS[scenario], 1_714_521_600.0, 4.0
    records, events = simulated(scenario, hours, start), []
    for i in range(0, len(records), 5000):
        events += pipe.process(records[i:i + 5000]).incidents
    opened = [e.incident for e in events if e.kind == "opened"]
    if sc.entity is None:
        assert opened == []
        return
    assert sc.entity in {i.entity for i in opened}
    assert all(sc.involves(i.entity) for i in opened)
    assert all(i.start >= sc.disruption_start(start, hours) for i in opened)


def test_a_backlog_read_a_partition_at_a_time_gives_the_one_incident_a_live_day_gives():
    """Catching up, a consumer hands out large chunks of one partition at a time, so the metrics are
    read hours ahead of the logs. The disruption is still one incident holding its log and metric
    signals, as when the same day is processed as it happens; not one per stream, nor a page per
    chunk of logs."""
    records = simulated("error_burst_after_deploy", 24.0)
    logs = [r for r in records if r.topic == "logs"]
    metrics = [r for r in records if r.topic == "metrics"]
    pipe, events = simulator_pipeline(), []
    for n in range(len(logs) // 5000 + 1):  # by turns, 2.6 h of metrics and 1.3 h of logs
        for chunk in (metrics[n * 20_000:(n + 1) * 20_000], logs[n * 5000:(n + 1) * 5000]):
            if chunk:
                events += pipe.process(chunk).incidents
    opened = [e.incident for e in events if e.kind == "opened" and e.incident.entity == "checkout"]
    assert len(opened) == 1
    final = [e.incident for e in events if e.incident.entity == "checkout"][-1]
    assert final.kinds == ("log", "metric") and final.severity == "critical"
    assert "log_new_alarm_template" in {s["signal"] for s in final.signals}


def test_the_partitions_that_may_still_deliver_older_records_are_the_ones_waited_for():
    pipe = simulator_pipeline()
    pipe.process([raw_line(k, T0 + k) for k in range(10)] + [raw_point(k, T0 + 3600 + 15 * k) for k in range(10)])
    logs, metrics = T0 + 9 - 30, T0 + 3600 + 135 - 30  # their watermarks: newest event time - lateness
    assert pipe.stream_time() == logs  # a replay: every partition is read from a backlog
    ends = {("logs", 0): 10, ("metrics", 0): 500}
    assert pipe.stream_time(ends) == metrics  # the logs are read to their end: what comes next is new
    assert pipe.stream_time({**ends, ("logs", 1): 7}) == float("-inf")  # assigned, not read from yet
    assert pipe.stream_time({**ends, ("logs", 1): 0}) == metrics  # ... and empty
    assert pipe.stream_time(ends, stalled={("metrics", 0)}) == float("inf")


def test_a_partition_with_records_left_holds_incidents_open_but_not_once_it_stalls(tmp_path, monkeypatch):
    """In the service, a partition with records left to read holds incident resolution back, as its
    records may still add to an incident; not once it has delivered nothing for
    incidents.stream_stall_seconds, whatever it seems to have left (a partition that cannot be read,
    or whose end is a transaction marker): a stalled topic cannot keep an incident open for good."""
    from types import SimpleNamespace

    import detector.service

    spec = load_pipeline(None, inputs=INPUTS, sinks={"console": {"enabled": False}},
                         checkpoint={"directory": str(tmp_path)}, alerting={"incident_window_seconds": 600},
                         incidents={"stream_stall_seconds": 300, "min_duration_seconds": 0.0})
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(detector.service, "time", SimpleNamespace(monotonic=lambda: clock.now))
    service = detector.service.Service(spec)
    ends = {("logs", 0): 500, ("metrics", 0): 0}
    service.source = SimpleNamespace(highwaters=lambda: dict(ends))
    service.assigned = set(ends)
    tracker = service.pipeline.incidents
    tracker.observe([metric(T0 + 15 * i) for i in range(8)])  # latency opened an incident on checkout
    offsets = iter(range(10_000))

    def points(first: float) -> list:
        out = [raw_point(next(offsets), first + 15 * i) for i in range(20)]
        ends[("metrics", 0)] = out[-1].offset + 1  # the metrics partition is read to its end
        return out

    # Catching up: the logs partition, read from T0 on, has lines left; the metrics are hours ahead.
    service.process([raw_line(k, T0 + k) for k in range(10)] + points(T0 + 4 * 3600))
    assert [i.entity for i in tracker.open_incidents()] == ["checkout"]
    clock.now += 200
    service.process(points(T0 + 5 * 3600))
    assert [i.entity for i in tracker.open_incidents()] == ["checkout"]
    # The logs partition delivered nothing for longer than stream_stall_seconds: it is waited for no more.
    clock.now += 200
    service.process(points(T0 + 6 * 3600))
    assert tracker.open_incidents() == [] and tracker.resolved == 1


# -- how long a signal must last, recurring new templates, slow drifts --------------------------------


def alarm_template(ts, line_times, entity="checkout", confidence=0.9995, window=60.0):
    """The log model's report on a new error template at the close of the window ending at ``ts``:
    its lines per window so far."""
    counts: dict[float, int] = {}
    for t in line_times:
        if t < ts:
            end = (t // window + 1) * window
            counts[end] = counts.get(end, 0) + 1
    ev = {"templates": [{"template_id": 9, "template": "KeyError: <*>", "example": "KeyError: 'country_code'",
                         "count": sum(counts.values()), "expected": 0.0}],
          "lines": sum(counts.values()), "windows": [[e, c] for e, c in sorted(counts.items())],
          "since": min(line_times), "level": "error"}
    return Score(ts, entity, "log_new_alarm_template", 3.3, confidence, ev)


def drift(ts, series="memory_bytes", instance="node-1", entity="payments", observed=1300.0, expected=1000.0):
    key = f'{series}{{instance="{instance}"}}'
    ev = {"series": key, "observed": observed, "expected": expected, "lower": expected - 50.0,
          "upper": expected + 50.0, "detector": "drift"}
    return Score(ts, entity, "metric_drift", 12.0, 0.9999, ev, key)


def test_an_isolated_blip_does_not_page_but_the_same_change_sustained_does():
    tr = tracker(min_duration_seconds=300.0)
    blip = [metric(T0 + 15 * i) for i in range(9)] + [quiet_metric(T0 + 150 + 15 * i) for i in range(6)]
    assert tr.observe(blip) == []  # two minutes of a real deviation, then back to normal
    later = T0 + 3600
    events = tr.observe([metric(later + 15 * i) for i in range(25)])
    (opened,) = [e for e in events if e.kind == "opened"]
    assert opened.incident.start == later and opened.timestamp >= later + 300


def test_a_lasting_step_pages_while_its_confidence_falls_but_not_once_it_swings_back():
    # At 15 s scrapes a step stays above 0.99 for a few points only, as it joins the series' history.
    tr = tracker(min_duration_seconds=300.0)
    falling = [0.999, 0.995, 0.991] + [0.985 - 0.001 * i for i in range(20)]
    events = tr.observe([metric(T0 + 15 * i, confidence=c) for i, c in enumerate(falling)])
    (opened,) = [e for e in events if e.kind == "opened"]
    assert opened.incident.start == T0 and opened.timestamp == T0 + 300
    # Its evidence gives the run's highest confidence, not that of the point it became active at.
    assert opened.incident.signals[0]["confidence"] == 0.999
    # A blip, then the series back below an expected value still catching up with it: not one change.
    later = T0 + 7200
    blip = [metric(later + 15 * i, entity="search") for i in range(3)]
    back = [metric(later + 45 + 15 * i, entity="search", observed=40.0, confidence=0.98) for i in range(20)]
    assert [e for e in tr.observe(blip + back) if e.kind == "opened"] == []


def test_a_new_error_template_that_keeps_recurring_opens_an_incident_but_a_rare_one_does_not():
    tr = tracker(min_duration_seconds=300.0)
    rare = [T0 + 600 * k + 7 for k in range(8)]  # one line every ten minutes, for over an hour
    assert tr.observe([alarm_template(T0 + 60 * w, rare) for w in range(1, 80)]) == []
    start = T0 + 10_000 + 13
    recurring = [start + 150 * k for k in range(12)]  # one line every two and a half minutes
    events = tr.observe([alarm_template(start - 13 + 60 * w, recurring) for w in range(1, 30)])
    (opened,) = [e for e in events if e.kind == "opened"]
    inc = opened.incident
    assert inc.start == start  # since its first line
    assert inc.kinds == ("log",) and inc.templates[0]["example"] == "KeyError: 'country_code'"
    assert opened.timestamp < start + 900  # within a quarter of an hour of the first line


def test_an_error_template_that_comes_back_after_its_incident_resolved_opens_one_with_a_new_id():
    # The template's run counts from its first line, so both incidents start there; they are still
    # two incidents, and an id must name one of them (Alertmanager and the incident topic key on it).
    tr = tracker(min_duration_seconds=300.0)
    first = [T0 + 13 + 150 * k for k in range(12)]  # half an hour of a recurring KeyError
    events = tr.observe([alarm_template(T0 + 60 * w, first) for w in range(1, 31)])
    events += tr.observe([quiet_metric(T0 + 1800 + 15 * i) for i in range(120)])  # quiet for half an hour
    back = T0 + 3600 + 13
    again = first + [back + 150 * k for k in range(12)]
    events += tr.observe([alarm_template(T0 + 3600 + 60 * w, again) for w in range(1, 31)])
    assert [e.kind for e in events] == ["opened", "resolved", "opened"]
    one, two = events[0].incident, events[2].incident
    assert one.start == two.start == first[0]
    assert one.id != two.id


def test_a_slow_drift_of_one_series_waits_for_a_second_signal_of_the_service():
    tr = tracker(min_duration_seconds=300.0, drift_min_duration_seconds=900.0)
    one = [drift(T0 + 30 * i) for i in range(80)]  # forty minutes of one series drifting
    assert tr.observe(one) == []
    # Then the service's cpu drifts too: another metric agrees.
    other = [drift(T0 + 2400 + 30 * i, series="cpu_seconds") for i in range(40)]
    events = tr.observe(sorted(other + [drift(T0 + 2400 + 30 * i) for i in range(40)], key=lambda s: s.timestamp))
    (opened,) = [e for e in events if e.kind == "opened"]
    inc = opened.incident
    assert inc.start == T0  # when the first drift began
    assert {r["series"] for r in inc.series} == {'memory_bytes{instance="node-1"}', 'cpu_seconds{instance="node-1"}'}


def test_the_same_metric_drifting_on_every_instance_at_once_does_not_page_by_itself():
    # A change made to the whole fleet (a nightly log rotation empties every disk) moves the same
    # metric of every instance together: one signal, however many instances show it.
    tr = tracker(min_duration_seconds=300.0, drift_min_duration_seconds=900.0)
    fleet = [drift(T0 + 30 * i, series="disk_used_ratio", instance=f"node-{n}", observed=430.0, expected=630.0)
             for i in range(240) for n in (1, 2, 3)]
    assert tr.observe(fleet) == []
    assert tr.open_incidents() == []
    # A different signal of the service still opens the incident, and the drifts join it.
    events = tr.observe([metric(T0 + 7200 + 15 * i, entity="payments") for i in range(30)]
                        + [drift(T0 + 7200 + 15 * i, series="disk_used_ratio", instance="node-1",
                                 observed=430.0, expected=630.0) for i in range(30)])
    (opened,) = [e for e in events if e.kind == "opened"]
    assert {s["signal"] for s in opened.incident.signals} == {"latency_ms", "metric_drift"}


def test_a_drift_joins_when_another_signal_of_the_service_opens_an_incident():
    tr = tracker(min_duration_seconds=300.0, drift_min_duration_seconds=900.0)
    drifting = [drift(T0 + 30 * i, entity="checkout") for i in range(80)]
    jump = [metric(T0 + 1800 + 15 * i) for i in range(30)]
    events = tr.observe(sorted(drifting + jump, key=lambda s: s.timestamp))
    (opened,) = [e for e in events if e.kind == "opened"]
    assert {s["signal"] for s in opened.incident.signals} == {"metric_drift", "latency_ms"}
    assert opened.incident.start == T0


def test_a_small_drift_never_pages_however_confident():
    tr = tracker(min_duration_seconds=0.0, drift_min_duration_seconds=0.0)
    small = [drift(T0 + 30 * i, instance=f"node-{i % 2}", observed=1060.0, expected=1000.0) for i in range(200)]
    assert tr.observe(small) == []  # 6 % off: under the drift floor


def test_one_service_on_two_log_inputs_keeps_the_two_streams_apart():
    # checkout's app log and access log come on two topics: the app log fills with errors while the
    # access log stays as it was. The access log's quiet windows must not cancel the app log's.
    from detector.pipeline import Pipeline
    from detector.records import RawRecord
    from detector.sinks.prometheus import PrometheusSink
    import threading

    import orjson

    inputs = [{"topic": "app", "kind": "log", "format": "json"}, {"topic": "access", "kind": "log", "format": "json"}]
    pipeline = Pipeline.from_spec(load_pipeline(None, inputs=inputs))
    registry = CollectorRegistry()
    sink = PrometheusSink(pipeline, threading.Lock(), 1000, registry=registry)
    offsets = {"app": 0, "access": 0}

    def raw(topic, ts, message, level):
        body = {"message": message, "timestamp": ts, "service": "checkout", "level": level}
        offsets[topic] += 1
        return RawRecord(topic, 0, offsets[topic], None, b"checkout", orjson.dumps(body))

    transitions = []
    for minute in range(47):
        t = T0 + 60 * minute
        batch = []
        for i in range(20):
            batch.append(raw("access", t + 3 * i, f"GET /cart/{i} 200 in {i + 3} ms", "info"))
            batch.append(raw("app", t + 3 * i + 1, f"cart {i} priced in {i + 2} ms", "info"))
            if minute >= 40:
                batch += [raw("app", t + 3 * i + 2, f"payment gateway refused connection attempt {i}", "error")]
        result = pipeline.process(batch)
        sink.emit(result, 0.0)
        transitions += result.transitions
    firing = {(e, sig, series) for (e, sig, series), *_ in pipeline.alerting.firing()}
    assert ("checkout", "log_error_ratio", "app") in firing
    assert not any(series == "access" for _, _, series in firing)
    assert not [tr for tr in transitions if tr.signal == "log_error_ratio" and tr.state == "resolved"]
    (incident,) = pipeline.incidents.open_incidents()
    assert any(t.get("input") == "app" and "refused" in t["template"] for t in incident.templates)
    assert ", on app): payment gateway refused" in describe(incident)
    exported = {(s.labels["signal"], s.labels["series"]) for f in registry.collect()
                if f.name == "outage_detector_anomaly_confidence_ratio" for s in f.samples}
    assert {("log_error_ratio", "app"), ("log_error_ratio", "access")} <= exported
