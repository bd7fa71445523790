"""Calibrated confidence: on data like its history, confidence >= c happens on about 1 - c of points."""

from __future__ import annotations

import pickle
import random

import pytest

from detector.calibration import build_calibrator
from detector.errors import ConfigError

LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)


def _observed(calibrator, scores):
    confs = [calibrator.update(s) for s in scores]
    tail = confs[len(confs) // 5:]  # after the history has filled
    return {c: sum(x >= c for x in tail) / len(tail) for c in LEVELS}


@pytest.mark.parametrize("thinning", [1, 8])
@pytest.mark.parametrize("name", ["tail", "histogram"])
@pytest.mark.parametrize("draw", [lambda r: r.gauss(0.0, 1.0), lambda r: r.expovariate(1.0) * 50.0,
                                  lambda r: r.lognormvariate(0.0, 2.0)], ids=["normal", "exponential", "lognormal"])
def test_confidence_is_reliable_on_stationary_scores(name, draw, thinning):
    rng = random.Random(11)
    scores = [draw(rng) for _ in range(20000)]
    observed = _observed(build_calibrator(name, {"run_thinning": thinning}), scores)
    for level, fraction in observed.items():
        assert fraction == pytest.approx(1.0 - level, abs=0.25 * (1.0 - level) + 0.004), level


@pytest.mark.parametrize("name", ["tail", "histogram"])
def test_an_outlier_gets_high_confidence_and_a_typical_score_does_not(name):
    rng = random.Random(3)
    cal = build_calibrator(name, {})
    for _ in range(3000):
        cal.update(rng.gauss(0.0, 1.0))
    assert cal.update(8.0) > 0.99
    assert 0.2 < cal.update(0.0) < 0.8


@pytest.mark.parametrize("name", ["tail", "histogram"])
def test_a_thinned_run_keeps_its_confidence_and_an_unthinned_one_becomes_the_norm(name):
    rng = random.Random(7)
    plain, thinned = build_calibrator(name, {"window": 256} if name == "tail" else {"halflife": 256}), \
        build_calibrator(name, {"window": 256, "run_thinning": 8} if name == "tail" else
                         {"halflife": 256, "run_thinning": 8})
    for _ in range(600):
        x = rng.gauss(0.0, 1.0)
        plain.update(x)
        thinned.update(x)
    # A flood: the same capped score for an hour of one-minute windows.
    flood_plain = [plain.update(30.0) for _ in range(60)]
    flood_thinned = [thinned.update(30.0) for _ in range(60)]
    assert min(flood_thinned) >= 0.95
    assert flood_plain[0] > 0.99 and flood_plain[-1] < flood_thinned[-1] - 0.03
    # Back to normal, the run ends; a score like the old ones is as unremarkable as before.
    assert thinned.update(0.0) < 0.8


@pytest.mark.parametrize("name", ["tail", "histogram"])
def test_a_calibrator_saved_before_runs_could_be_thinned_loads_unthinned(name):
    cal = build_calibrator(name, {})
    for x in range(100):
        cal.update(float(x))
    state = pickle.loads(pickle.dumps(cal.__getstate__()))  # a copy: the arrays are not shared
    old = state[:5] if name == "tail" else {k: v for k, v in state.items() if k not in ("run_thinning", "_run")}
    twin = type(cal).__new__(type(cal))
    twin.__setstate__(old)
    assert twin.run_thinning == 1
    assert [twin.update(x) for x in (50.0, 500.0, 500.0)] == [cal.update(x) for x in (50.0, 500.0, 500.0)]


@pytest.mark.parametrize("name", ["tail", "histogram"])
def test_pickle_round_trip_keeps_the_history(name):
    rng = random.Random(5)
    cal = build_calibrator(name, {})
    for _ in range(1000):
        cal.update(rng.random())
    twin = pickle.loads(pickle.dumps(cal))
    probe = [rng.random() for _ in range(50)]
    assert [twin.update(p) for p in probe] == [cal.update(p) for p in probe]


def test_unknown_calibrator_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown calibrator"):
        build_calibrator("nope", {})
    with pytest.raises(ConfigError, match="histogram"):
        build_calibrator("histogram", {"no_such_param": 1})


@pytest.mark.parametrize("name, params, message", [
    ("histogram", {"bins": 0}, "bins must be a whole number >= 1, got 0"),
    ("histogram", {"low": 5.0, "high": 1.0}, "high must be a number above low"),
    ("histogram", {"halflife": "2000"}, "halflife must be > 0, got '2000'"),
    ("tail", {"window": 0}, "window must be a whole number >= 1, got 0"),
])
def test_a_parameter_out_of_range_is_a_config_error_naming_it(name, params, message):
    with pytest.raises(ConfigError, match=message):
        build_calibrator(name, params)
