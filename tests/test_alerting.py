"""Hysteresis: fire after N anomalous evaluations, resolve after M quiet ones, no flapping."""

from __future__ import annotations

from detector.alerting import Alerting
from detector.config import AlertingSettings
from detector.records import Score


def scores(confidences, entity="checkout", signal="latency", start=0.0):
    return [Score(start + i, entity, signal, c, c) for i, c in enumerate(confidences)]


def test_fires_after_n_consecutive_and_resolves_after_m_quiet():
    a = Alerting(AlertingSettings(confidence_threshold=0.9, fire_after=3, resolve_after=2))
    out = a.observe(scores([0.95, 0.95, 0.1, 0.95, 0.95, 0.95, 0.5, 0.5]))
    assert [(t.state, t.timestamp) for t in out] == [("firing", 5.0), ("resolved", 7.0)]
    assert out[0].since == 3.0


def test_one_quiet_point_inside_a_firing_run_does_not_resolve():
    a = Alerting(AlertingSettings(confidence_threshold=0.9, fire_after=2, resolve_after=3))
    out = a.observe(scores([0.99, 0.99, 0.1, 0.99, 0.1, 0.1, 0.99]))
    assert [t.state for t in out] == ["firing"]
    assert len(a.firing()) == 1


def test_a_run_goes_on_while_its_confidence_stays_above_the_sustain_bar():
    # A lasting change joins its series' history: its confidence falls point by point.
    a = Alerting(AlertingSettings(confidence_threshold=0.99, sustain_confidence=0.95, fire_after=3, resolve_after=2))
    out = a.observe(scores([0.995, 0.97, 0.96, 0.955, 0.5, 0.5]))
    assert [(t.state, t.timestamp) for t in out] == [("firing", 2.0), ("resolved", 5.0)]
    # The lower bar only carries a run on; it never starts one.
    assert a.observe(scores([0.97] * 6, entity="other", start=10.0)) == []


def test_a_log_template_falling_silent_after_its_flood_is_not_the_flood_going_on():
    a = Alerting(AlertingSettings(confidence_threshold=0.99, sustain_confidence=0.95, fire_after=2, resolve_after=2))

    def rate(t, count, expected, c):
        ev = {"templates": [{"template_id": 7, "count": count, "expected": expected}]}
        return Score(float(t), "checkout", "log_template_rate", c, c, ev)

    flood = [rate(t, 60, 0.2, 0.995) for t in range(3)] + [rate(3, 60, 5.0, 0.97)]
    assert [t.state for t in a.observe(flood)] == ["firing"]
    # The flood ends: its template now drops below the count learnt during it.
    out = a.observe([rate(t, 0, 12.0, 0.97) for t in range(4, 8)])
    assert [(t.state, t.timestamp) for t in out] == [("resolved", 5.0)]


def test_keys_are_independent():
    a = Alerting(AlertingSettings(confidence_threshold=0.9, fire_after=2, resolve_after=2))
    mixed = [s for pair in zip(scores([0.99] * 3, entity="a"), scores([0.1] * 3, entity="b")) for s in pair]
    out = a.observe(mixed)
    assert {t.entity for t in out} == {"a"}


def test_state_is_bounded_and_firing_keys_are_kept():
    a = Alerting(AlertingSettings(confidence_threshold=0.9, fire_after=2, resolve_after=5), max_keys=10)
    assert a.observe(scores([0.99, 0.99], entity="real")) != []
    for i in range(100):  # one anomalous point each: counted, never firing
        a.observe(scores([0.95], entity=f"noise-{i}"))
    assert len(a._keys) <= 10
    assert a.evictions >= 90
    assert [k[0] for k, *_ in a.firing()] == ["real"]


def series_scores(series, confidences, start=0.0, step=60.0, entity="api"):
    return [Score(start + step * i, entity, "latency", c, c, series=series) for i, c in enumerate(confidences)]


def settings():
    return AlertingSettings(confidence_threshold=0.9, fire_after=2, resolve_after=5, incident_window_seconds=600)


def test_a_firing_series_that_falls_silent_resolves_after_twice_the_incident_window_of_its_entity():
    a = Alerting(settings())
    assert [t.state for t in a.observe(series_scores("pod-a", [0.99] * 3))] == ["firing"]
    # pod-a is gone (last score at 120 s); pod-b of the same service goes on scoring quietly.
    quiet = series_scores("pod-b", [0.1] * 30, start=60.0)
    assert a.observe(quiet[:21]) == [] and len(a.firing()) == 1  # up to 1260 s: not yet 1200 s of silence
    out = a.observe(quiet[21:])
    assert [(t.series, t.state, t.timestamp) for t in out] == [("pod-a", "resolved", 1320.0)]
    assert a.firing() == []


def test_a_service_that_sends_nothing_at_all_resolves_once_every_stream_is_read_past_its_silence():
    a = Alerting(settings())
    a.observe(series_scores("pod-a", [0.99] * 3, entity="gone"))  # last score at 120 s
    other = series_scores("x", [0.1] * 30, start=180.0, entity="other")
    # Another service goes on, but a stream still being read lags at 1300 s: "gone" may yet send.
    assert a.observe(other, stream_time=1300.0) == [] and len(a.firing()) == 1
    out = a.observe([], stream_time=1330.0)
    assert [(t.entity, t.state, t.timestamp) for t in out] == [("gone", "resolved", 1320.0)] and a.firing() == []


def test_a_silent_service_resolves_at_the_same_event_time_however_the_scores_are_cut_into_calls():
    scores = series_scores("pod-a", [0.99] * 3, entity="gone") + series_scores("x", [0.1] * 40, start=180.0,
                                                                                 entity="other")
    whole = Alerting(settings()).observe(scores)
    a, split = Alerting(settings()), []
    for s in scores:
        split += a.observe([s])
    assert whole == split and [(t.entity, t.state, t.timestamp) for t in whole][-1] == ("gone", "resolved", 1320.0)


def test_a_service_hours_behind_the_others_still_alerts():
    # Its partition catches up on a backlog two hours behind the rest: judged by its own clock.
    a = Alerting(settings())
    out = []
    for i in range(10):  # the stream "behind" is on has been read up to its newest point
        out += a.observe(series_scores("p", [0.1], start=7200.0 + 60 * i, entity="ahead")
                         + series_scores("q", [0.99], start=60.0 * i, entity="behind"), stream_time=60.0 * i)
    assert [(t.entity, t.state) for t in out] == [("behind", "firing")]


def test_an_hourly_series_is_not_silent_between_its_points():
    a = Alerting(settings())
    out = []
    for h in range(6):
        batch = series_scores("fast", [0.1] * 120, start=3600.0 * h, step=30.0)
        batch += series_scores("hourly", [0.99 if h >= 2 else 0.1], start=3600.0 * h + 1)
        out += a.observe(sorted(batch, key=lambda x: x.timestamp))
    assert [(t.series, t.state) for t in out] == [("hourly", "firing")]
    # Gone after its last point at 5 h: silent once three of its intervals (3 h) have passed.
    later = [a.observe(series_scores("fast", [0.1] * 120, start=3600.0 * h, step=30.0)) for h in range(6, 10)]
    assert [(t.series, t.state, t.timestamp) for t in sum(later, [])] == [("hourly", "resolved", 3600.0 * 8 + 1)]


def test_state_saved_before_silence_was_tracked_restores_with_its_firing_keys():
    import pickle

    a = Alerting(settings())
    a.observe(series_scores("pod-a", [0.99] * 3))
    state = dict(a.__dict__)
    for name in ("now", "_watched"):  # as written by a version without them
        del state[name]
    old = Alerting.__new__(Alerting)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert len(old.firing()) == 1
    assert old.observe(series_scores("pod-a", [0.99], start=180.0)) == []  # still firing, not resolved at once
    out = old.observe(series_scores("pod-b", [0.1], start=1500.0))
    assert [(t.series, t.state) for t in out] == [("pod-a", "resolved")]


def test_state_saved_when_silence_was_counted_in_batches_restores_with_its_firing_keys():
    import pickle

    a = Alerting(settings())
    a.observe(series_scores("pod-a", [0.99] * 3))
    state = dict(a.__dict__)
    state["_batches"] = 7  # as written by a version that counted poll batches
    state["_watched"] = {entity: [t, 7, keys] for entity, (t, keys) in state["_watched"].items()}
    old = Alerting.__new__(Alerting)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert len(old.firing()) == 1 and not hasattr(old, "_batches")
    out = old.observe(series_scores("pod-b", [0.1], start=1500.0))
    assert [(t.series, t.state) for t in out] == [("pod-a", "resolved")]
