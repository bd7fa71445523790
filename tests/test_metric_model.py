"""The shipped default metric model: loads from its spec and flags what an SRE would flag."""

from __future__ import annotations

import math
import random

from detector.series_model import SeriesModel
from detector.specs import MODELS_DIR, load_model_spec


def _model() -> SeriesModel:
    return SeriesModel.from_spec(load_model_spec(MODELS_DIR / "metric-default.yaml"))


def test_default_spec_builds_a_series_model():
    spec = load_model_spec(MODELS_DIR / "metric-default.yaml")
    assert spec.kind == "metric"
    score, conf = _model().update(0.0, 1.0)
    assert 0.0 <= conf <= 1.0 and math.isfinite(score)


def test_spike_scores_above_every_normal_point():
    rng = random.Random(1)
    model = _model()
    normal = [model.update(60.0 * i, 100.0 + rng.gauss(0, 5))[0] for i in range(2000)]
    spike, conf = model.update(60.0 * 2000, 400.0)
    assert spike > max(normal[500:])
    assert conf > 0.99


def test_explain_gives_a_band_around_the_expected_value():
    rng = random.Random(2)
    model = _model()
    for i in range(1000):
        model.update(60.0 * i, 150.0 + rng.gauss(0, 10))
    model.update(60.0 * 1000, 950.0)
    info = model.explain()
    assert info["lower"] < 150.0 < info["upper"]
    assert info["upper"] < 950.0
    assert isinstance(info["detector"], str)


def _daily_series(n=3000, seed=4):
    rng = random.Random(seed)
    ts = [300.0 * i for i in range(n)]
    vs = [100.0 + 30.0 * math.sin(2 * math.pi * t / 86400.0) + rng.gauss(0, 3) for t in ts]
    vs[1500] = 400.0
    vs[1700] = float("nan")
    return ts, vs


def test_batched_replay_gives_exactly_the_per_point_scores():
    ts, vs = _daily_series()
    one = _model()
    per_point = [one.update(t, v) for t, v in zip(ts, vs)]
    scores, confidences = _model().update_many(ts, vs)
    assert [s for s, _ in per_point] == scores
    assert [c for _, c in per_point] == confidences


def test_daily_pattern_is_learned_so_its_peaks_do_not_alert():
    ts, vs = _daily_series()
    scores, _ = _model().update_many(ts, vs)
    assert scores[1500] > 0.3
    later_normal = scores[2000:]
    assert max(later_normal) < scores[1500]


def test_missing_value_scores_zero_and_does_not_break_the_model():
    ts, vs = _daily_series()
    model = _model()
    model.update_many(ts[:1700], vs[:1700])
    assert model.update(ts[1700], float("nan"))[0] == 0.0
    score, _ = model.update(ts[1701], 500.0)
    assert score > 0.3
