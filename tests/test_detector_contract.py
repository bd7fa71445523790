"""One contract suite over every registered detector: what the pipeline relies on from any model."""

from __future__ import annotations

import copy
import pickle
import random

import pytest

from detector.detectors import build, names

STREAM_LENGTH = 1200
SPIKE_EVERY = 151  # isolated incidents: further apart than any refractory period


def stream(seed: int = 0, n: int = STREAM_LENGTH):
    """Small counts with injected spikes, meaningful to metric and count detectors alike;
    yields (x, is_spike)."""
    rng = random.Random(seed)
    for i in range(n):
        spike = i > 200 and i % SPIKE_EVERY == 0
        v = float(max(0, round(4.0 + rng.gauss(0.0, 1.0)))) + (8.0 if spike else 0.0)
        yield {"value": v, "timestamp": 300.0 * i}, spike


def run(det, points):
    scores = []
    for x, _ in points:
        scores.append(det.score_one(x))
        det.learn_one(x)
    return scores


def auc(scores, labels) -> float:
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.fixture(params=names())
def name(request):
    return request.param


def test_pickle_round_trip_gives_the_same_subsequent_scores(name):
    points = list(stream(1))
    det = build(name)
    run(det, points[:700])
    twin = pickle.loads(pickle.dumps(det))
    assert run(twin, points[700:]) == run(det, points[700:])


def test_input_dict_is_left_unchanged(name):
    det = build(name)
    for x, _ in stream(2, 400):
        before = copy.deepcopy(x)
        det.score_one(x)
        det.learn_one(x)
        assert x == before


def test_missing_and_extra_keys_are_tolerated(name):
    det = build(name)
    run(det, stream(3, 300))
    for x in ({"timestamp": 90000.0}, {"value": 1.0, "timestamp": 90300.0, "brand_new_feature": 3.0}, {}):
        score = det.score_one(x)
        assert isinstance(score, float)
        det.learn_one(x)


def test_same_seed_gives_the_same_scores(name):
    points = list(stream(4))
    params = {"seed": 7} if "seed" in build(name).get_params() else {}
    assert run(build(name, params), points) == run(build(name, params), points)


def test_scores_injected_spikes_above_normal_points(name):
    points = list(stream(5))
    scores = run(build(name), points)
    labels = [spike for _, spike in points]
    # Only after warm-up: every detector needs some history first.
    assert auc(scores[300:], labels[300:]) > 0.75


def test_clone_is_untrained_with_the_same_params(name):
    det = build(name)
    points = list(stream(6, 600))
    run(det, points)
    clone = det.clone()
    assert type(clone) is type(det)
    assert clone.get_params() == det.get_params()
    assert run(clone, points) == run(build(name), points)


def test_isolation_forest_refits_past_the_largest_seed_it_accepts():
    # Each refit is seeded one further than the last; past 2**32 - 1 scikit-learn refuses the seed.
    det = build("isolation_forest", {"seed": 2**32 - 1, "refit_every": 10})
    scores = run(det, stream(7, 100))
    assert len(scores) == 100 and det._fits == 10
