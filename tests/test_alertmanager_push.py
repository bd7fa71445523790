"""The Alertmanager push sink against a stand-in for /api/v2/alerts: what is sent, re-sent and
resolved, and that nothing but dropped-and-counted states is lost while Alertmanager is down (an
incident that ended meanwhile still goes out firing before it resolves)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry

from detector.broker import free_port
from detector.config import AlertmanagerSink
from detector.incidents import IncidentEvent, IncidentSnapshot
from detector.sinks.alertmanager import AlertmanagerPusher

T0 = 1_700_000_000.0


class FakeAlertmanager:
    """Accepts POST /api/v2/alerts on a given port; ``gate`` (when set) holds each request until released."""

    def __init__(self, port: int, gate: threading.Event | None = None):
        self.posts: list[tuple[float, list[dict]]] = []  # (wall time received, alerts)
        self.cond = threading.Condition()
        self.in_flight = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if gate is not None:
                    outer.in_flight.set()
                    gate.wait(30)
                with outer.cond:
                    outer.posts.append((time.time(), body))
                    outer.cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, fmt, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.posts):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def snapshot(iid="a1", entity="checkout", severity="warning", end=None, kinds=("metric",),
             runbook_url="https://runbooks.example/incident"):
    signals = tuple({"signal": "latency_ms" if k == "metric" else "log_error_ratio", "kind": k, "started": T0,
                     "confidence": 0.999, "last_hot": T0 + 60, "detail": None} for k in kinds)
    templates = ({"template": "payment gateway timeout after <*> ms", "example": "payment gateway timeout after 30000 ms",
                  "count": 120, "expected": 0.2, "signal": "log_template_rate"},)
    series = ({"series": 'latency_ms{service="checkout"}', "observed": 900.0, "expected": 100.0, "lower": 80.0,
               "upper": 120.0, "at": T0 + 45},)
    return IncidentSnapshot(iid, entity, severity, 0.999, T0, end, signals, templates, series, runbook_url)


def event(kind, **kw):
    return IncidentEvent(kind, T0 + 60, snapshot(**kw))


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def port():
    return free_port()


def pusher(port, registry=None, **settings):
    cfg = AlertmanagerSink(url=f"http://127.0.0.1:{port}", **{"resend_seconds": 60.0, "max_backoff_seconds": 0.5, **settings})
    return AlertmanagerPusher(cfg, registry).start()


def wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def alerts_named(posts, entity):
    return [(t, a) for t, body in posts for a in body if a["labels"]["entity"] == entity]


def test_an_opened_incident_is_pushed_with_its_labels_evidence_and_runbook(port):
    am = FakeAlertmanager(port)
    p = pusher(port)
    try:
        p.emit([event("opened")])
        assert am.wait(lambda posts: posts)
    finally:
        p.close()
        am.close()
    (received, (alert,)) = am.posts[0]
    assert alert["labels"] == {"alertname": "OutageDetectorIncident", "service": "checkout", "entity": "checkout",
                               "severity": "warning", "signal_kinds": "metric"}
    ann = alert["annotations"]
    assert ann["runbook_url"] == "https://runbooks.example/incident" and ann["incident_id"] == "a1"
    assert "checkout" in ann["summary"]
    assert "payment gateway timeout after 30000 ms" in ann["description"]
    assert "observed 900" in ann["description"] and "expected band 80..120" in ann["description"]
    assert ts(alert["startsAt"]) == T0
    assert ts(alert["endsAt"]) > received  # still active: Alertmanager must not resolve it yet


def test_an_active_incident_is_resent_and_a_resolved_one_ends_now_and_stops(port):
    am = FakeAlertmanager(port)
    p = pusher(port, resend_seconds=0.2)
    try:
        p.emit([event("opened")])
        assert am.wait(lambda posts: len(posts) >= 3)  # re-sent while active
        p.emit([event("resolved", end=T0 + 60)])
        assert am.wait(lambda posts: any(ts(a["endsAt"]) <= t for t, body in posts for a in body))
        assert wait_until(lambda: p.pending() == 0)
        sent = len(am.posts)
    finally:
        p.close()
        am.close()
    last_time, (last,) = am.posts[sent - 1]
    assert ts(last["endsAt"]) <= last_time
    assert all(ts(a["endsAt"]) > t for t, body in am.posts[: sent - 1] for a in body)
    assert len(am.posts) == sent  # nothing after the resolve


def test_while_alertmanager_is_down_the_newest_state_of_each_incident_waits_and_is_delivered(port):
    registry = CollectorRegistry()
    p = pusher(port, registry, resend_seconds=1.0)
    am = None
    try:
        # A opens, escalates and resolves, B opens, all while nothing listens on the port.
        p.emit([event("opened", iid="a1"), event("updated", iid="a1", severity="critical", kinds=("log", "metric")),
                event("resolved", iid="a1", severity="critical", kinds=("log", "metric"), end=T0 + 60),
                event("opened", iid="b2", entity="payments")])
        assert wait_until(lambda: registry.get_sample_value(
            "outage_detector_alertmanager_pushes_total", {"outcome": "failure"}) >= 2), "the sink never retried"
        assert registry.get_sample_value("outage_detector_alertmanager_pending_incidents") == 2
        am = FakeAlertmanager(port)
        assert am.wait(lambda posts: posts)
        assert wait_until(lambda: p.pending() == 0)
    finally:
        p.close()
        if am is not None:
            am.close()
    received, alerts = am.posts[0]
    by_entity = {a["labels"]["entity"]: a for a in alerts}
    assert set(by_entity) == {"checkout", "payments"}
    a, b = by_entity["checkout"], by_entity["payments"]
    assert a["labels"]["severity"] == "critical" and a["labels"]["signal_kinds"] == "log,metric"  # newest state
    # A resolved incident Alertmanager never saw firing goes out firing, or it would notify nobody,
    # then resolved one resend period later.
    assert ts(a["endsAt"]) > received and ts(b["endsAt"]) > received
    later = alerts_named(am.posts[1:], "checkout")
    assert later and ts(later[-1][1]["endsAt"]) <= later[-1][0]
    assert later[0][0] - received >= 0.9
    assert registry.get_sample_value("outage_detector_alertmanager_alerts_dropped_total") == 0


def test_past_the_bound_the_oldest_resolved_incident_is_dropped_and_counted(port):
    registry = CollectorRegistry()
    p = pusher(port, registry, max_pending=2)
    am = None
    try:
        p.emit([event("opened", iid="a1"), event("opened", iid="b2", entity="payments"),
                event("resolved", iid="a1", end=T0 + 60), event("opened", iid="c3", entity="search")])
        assert registry.get_sample_value("outage_detector_alertmanager_alerts_dropped_total") == 1
        am = FakeAlertmanager(port)
        assert am.wait(lambda posts: {a["labels"]["entity"] for _, body in posts for a in body} >= {"payments", "search"})
    finally:
        p.close()
        if am is not None:
            am.close()
    assert not alerts_named(am.posts, "checkout")


def test_a_severity_change_resolves_the_alert_under_its_old_labels(port):
    am = FakeAlertmanager(port)
    p = pusher(port)
    try:
        p.emit([event("opened")])
        assert am.wait(lambda posts: len(posts) == 1)
        p.emit([event("updated", severity="critical", kinds=("log", "metric"))])
        assert am.wait(lambda posts: len(posts) == 2)
    finally:
        p.close()
        am.close()
    received, alerts = am.posts[1]
    by_severity = {a["labels"]["severity"]: a for a in alerts}
    assert ts(by_severity["warning"]["endsAt"]) <= received
    assert ts(by_severity["critical"]["endsAt"]) > received


def test_emit_returns_while_a_push_is_still_waiting_on_alertmanager(port):
    gate = threading.Event()
    am = FakeAlertmanager(port, gate)
    p = pusher(port)
    try:
        p.emit([event("opened", iid="a1")])
        assert am.in_flight.wait(20)
        p.emit([event("opened", iid="b2", entity="payments")])  # the first push still hangs
        assert not am.posts and p.pending() == 2
        gate.set()
        assert am.wait(lambda posts: {a["labels"]["entity"] for _, body in posts for a in body} == {"checkout", "payments"})
    finally:
        gate.set()
        p.close()
        am.close()


def test_incidents_open_at_a_restart_go_on_being_pushed_as_firing(port, tmp_path):
    from detector.checkpoint import CheckpointStore
    from detector.config import load_pipeline
    from detector.pipeline import Pipeline
    from detector.records import Score
    from detector.service import ENTITY_STATE, Service

    spec = load_pipeline(None, inputs=[{"topic": "m", "kind": "metric", "format": "metric_json"}],
                         checkpoint={"directory": str(tmp_path)}, incidents={"min_duration_seconds": 0},
                         sinks={"alertmanager": {"url": f"http://127.0.0.1:{port}"}, "console": {"enabled": False}})
    before = Pipeline.from_spec(spec)
    series = 'latency_ms{service="checkout"}'
    hot = [Score(T0 + 15 * i, "checkout", "latency_ms", 0.9, 0.999,
                 {"series": series, "observed": 900.0, "expected": 100.0, "lower": 80.0, "upper": 120.0}, series)
           for i in range(8)]
    opened = before.incidents.observe(hot)
    assert [e.kind for e in opened] == ["opened"]
    CheckpointStore(tmp_path).save_many({(ENTITY_STATE, None): (before.alerting, before.incidents)})

    am = FakeAlertmanager(port)
    service = Service(spec)
    try:
        service._restore_entity_state()  # what start() does first
        service.alertmanager.start()
        assert am.wait(lambda posts: alerts_named(posts, "checkout"))
    finally:
        service.close()
        am.close()
    (received, alert), = alerts_named(am.posts, "checkout")
    assert alert["annotations"]["incident_id"] == opened[0].incident.id
    assert ts(alert["endsAt"]) > received  # firing, not resolved


def test_ended_incidents_still_waiting_are_handed_over_across_a_restart(port):
    before = pusher(port)  # nothing listens: Alertmanager is down
    before.emit([event("opened", iid="a1"), event("resolved", iid="a1", end=T0 + 60),
                 event("opened", iid="b2", entity="payments")])
    before.close()
    owed = before.owed()
    # b2 is open: the incident tracker's checkpoint brings it back, not this.
    assert [(inc.id, shown) for inc, shown in owed] == [("a1", False)]

    am = FakeAlertmanager(port)
    after = pusher(port, resend_seconds=0.5)
    try:
        # search ended after Alertmanager had it firing: only its end was still owed.
        after.restore(owed + [(snapshot(iid="c3", entity="search", end=T0 + 60), True)])
        assert am.wait(lambda posts: len(alerts_named(posts, "checkout")) >= 2 and alerts_named(posts, "search"))
        assert wait_until(lambda: after.pending() == 0)
    finally:
        after.close()
        am.close()
    (t1, first), (t2, second) = alerts_named(am.posts, "checkout")
    assert ts(first["endsAt"]) > t1 and ts(second["endsAt"]) <= t2  # firing, then resolved
    ((t3, ended),) = alerts_named(am.posts, "search")
    assert ts(ended["endsAt"]) <= t3
