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
