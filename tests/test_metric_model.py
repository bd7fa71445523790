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
