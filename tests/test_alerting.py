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


def test_a_firing_key_whose_series_falls_silent_resolves_after_twice_the_incident_window():
    a = Alerting(AlertingSettings(confidence_threshold=0.9, fire_after=2, resolve_after=5, incident_window_seconds=600))
    assert [t.state for t in a.observe(scores([0.99] * 3, entity="pod-a"))] == ["firing"]
    # pod-a is gone; pod-b goes on scoring quietly every minute.
    quiet = [Score(60.0 * i, "pod-b", "latency", 0.1, 0.1) for i in range(1, 30)]
    out = a.observe(quiet[:19])  # up to 1140 s: not yet 1200 s past pod-a's last score
    assert out == [] and len(a.firing()) == 1
    out = a.observe(quiet[19:])
    assert [(t.entity, t.state, t.timestamp) for t in out] == [("pod-a", "resolved", 1202.0)]
    assert a.firing() == []


def test_keys_saved_before_silence_was_tracked_count_as_scored_when_restored():
    import pickle

    a = Alerting(AlertingSettings(confidence_threshold=0.9, fire_after=2, resolve_after=5, incident_window_seconds=600))
    a.observe(scores([0.99] * 3, entity="pod-a"))
    old = pickle.loads(pickle.dumps(a))
    del old._keys[("pod-a", "latency", "")].last  # as written by a version without it
    del old.now
    assert old.observe([Score(5000.0, "pod-b", "latency", 0.1, 0.1)]) == []
    assert len(old.firing()) == 1  # not resolved at once: its silence counts from now
