"""New warning and error templates that keep coming back: the log model follows them per window, so
the incident layer can page on a fault that starts small (a new exception on a canary)."""

from __future__ import annotations

import pickle

from detector.logs.model import LogModel
from detector.records import LogRecord

TRACE = "unhandled exception in place_order request_id=r-{i}: KeyError: 'country_code'"


def _steady_minute(model, t, entity="checkout"):
    out = []
    for i in range(20):
        out += model.process(LogRecord(t + 3 * i, entity, f"order placed order_id=o-{i} total={i * 7} ms", "info"))
    return out


def _run(model, minutes, start=0.0, extra=()):
    """``minutes`` of steady lines plus ``extra`` (timestamp, level, message) lines, closing the
    windows once per minute."""
    out = []
    extra = sorted(extra)
    for m in range(minutes):
        t = start + 60 * m
        out += _steady_minute(model, t)
        for ts, level, msg in [e for e in extra if t <= e[0] < t + 60]:
            out += model.process(LogRecord(ts, "checkout", msg, level))
        out += model.advance(t + 60)
    return out


def _alarm(scores):
    return [s for s in scores if s.signal == "log_new_alarm_template"]


def test_a_new_error_template_is_followed_window_by_window():
    model = LogModel(signals={"new_template_grace_seconds": 300})
    _run(model, 30)
    errors = [(1800.0 + 150 * i + 5, "error", TRACE.format(i=i)) for i in range(6)]
    scores = _alarm(_run(model, 15, start=1800.0, extra=errors))
    assert scores, "a new error template is reported at every window close while it is watched"
    last = scores[-1]
    ev = last.evidence
    assert ev["level"] == "error" and "KeyError" in ev["templates"][0]["template"]
    assert ev["since"] == errors[0][0]
    assert ev["lines"] == 6 and sum(c for _, c in ev["windows"]) == 6
    assert [end for end, _ in ev["windows"]] == sorted({(t // 60 + 1) * 60 for t, _, _ in errors})


def test_a_new_info_template_is_not_followed():
    model = LogModel(signals={"new_template_grace_seconds": 300})
    _run(model, 30)
    infos = [(1800.0 + 60 * i + 5, "info", f"cache warmed in {i} ms for shard s-{i}") for i in range(10)]
    assert _alarm(_run(model, 12, start=1800.0, extra=infos)) == []


def test_what_a_window_reports_does_not_depend_on_lines_of_later_windows():
    errors = [(1800.0 + 45 * i + 5, "error", TRACE.format(i=i)) for i in range(12)]
    per_minute = LogModel(signals={"new_template_grace_seconds": 300})
    _run(per_minute, 30)
    a = _alarm(_run(per_minute, 10, start=1800.0, extra=errors))
    # The same lines, but all of them arrive before any window closes (one large poll batch).
    batched = LogModel(signals={"new_template_grace_seconds": 300})
    _run(batched, 30)
    for m in range(10):
        _steady_minute(batched, 1800.0 + 60 * m)
    for ts, level, msg in errors:
        batched.process(LogRecord(ts, "checkout", msg, level))
    b = _alarm(batched.advance(1800.0 + 600))
    assert len(a) == 10
    assert [(s.timestamp, s.evidence["windows"]) for s in a] == [(s.timestamp, s.evidence["windows"]) for s in b]


def test_followed_templates_survive_a_checkpoint_and_are_forgotten_after_an_hour():
    model = LogModel(signals={"new_template_grace_seconds": 300})
    _run(model, 30)
    _run(model, 5, start=1800.0, extra=[(1805.0, "warn", "disk watermark exceeded on node-9")])
    twin = pickle.loads(pickle.dumps(model))
    more = [(2105.0 + 60 * i, "warn", "disk watermark exceeded on node-9") for i in range(3)]
    assert _alarm(_run(twin, 5, start=2100.0, extra=more))[-1].evidence["lines"] == 4
    assert _alarm(_run(twin, 60, start=2400.0)) != []
    assert _alarm(_run(twin, 5, start=6000.0)) == []  # an hour after it first appeared


def test_a_known_warning_with_a_value_not_yet_masked_is_not_followed():
    model = LogModel(signals={"new_template_grace_seconds": 300})
    known = [(60.0 * m + 30, "warn", f"Charge declined txnId=txn_{m:04d}AAAA orderId=o-{m} provider=stripe "
                                     "reason=card_expired") for m in range(30)]
    _run(model, 30, extra=known)
    # The same warning with another reason and a fresh id: the miner finds it close to the known one.
    variants = [(1800.0 + 60 * i + 30, "warn", f"Charge declined txnId=txn_{i:04d}BBBB orderId=o-{i} "
                                               "provider=adyen reason=do_not_honor") for i in range(10)]
    assert _alarm(_run(model, 12, start=1800.0, extra=variants)) == []


def test_the_alert_on_a_new_error_resolves_once_the_error_has_stopped():
    from detector.alerting import Alerting
    from detector.config import AlertingSettings

    model = LogModel(signals={"new_template_grace_seconds": 300})
    _run(model, 30)
    alerting = Alerting(AlertingSettings())
    # The error comes every minute for ten minutes, then stops; the template stays watched for the hour.
    errors = [(1800.0 + 60 * i + 5, "error", TRACE.format(i=i)) for i in range(10)]
    states = []
    for m in range(50):
        scores = _run(model, 1, start=1800.0 + 60 * m, extra=errors)
        states += [(tr.timestamp, tr.state) for tr in alerting.observe(_alarm(scores))
                   if tr.signal == "log_new_alarm_template"]
    assert states[0][1] == "firing"
    # Resolved within the recent window (15 min) after its last line plus resolve_after windows,
    # not when the hour of watching ends.
    assert states[-1][1] == "resolved" and states[-1][0] <= errors[-1][0] + 900 + 6 * 60
    assert len(states) == 2
    quiet = [s for s in _alarm(_run(model, 1, start=1800.0 + 60 * 50))]
    assert quiet and quiet[-1].confidence == 0.0 and quiet[-1].evidence["lines"] == 10


def test_an_incident_on_a_new_error_says_how_many_lines_since_when_and_at_most_in_a_window():
    from detector.config import AlertingSettings, IncidentSettings
    from detector.incidents import IncidentTracker, describe

    model = LogModel(signals={"new_template_grace_seconds": 300})
    _run(model, 30)
    tracker = IncidentTracker(AlertingSettings(), IncidentSettings())
    # Two lines a minute for twelve minutes, six in one of them.
    errors = [(1800.0 + 60 * m + 5 + k, "error", TRACE.format(i=10 * m + k)) for m in range(12)
              for k in range(6 if m == 4 else 2)]
    for m in range(12):
        tracker.observe(_alarm(_run(model, 1, start=1800.0 + 60 * m, extra=errors)))
    (incident,) = tracker.open_incidents()
    text = describe(incident)
    assert "28 lines since 1970-01-01 00:30:05 UTC, at most 6 in a window" in text
    assert "in a window, expected" not in text
