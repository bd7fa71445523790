"""NAB scoring on hand-made cases whose score can be worked out on paper."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.evaluation import nab_scoring as nab

STANDARD = nab.Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
LOW_FN = nab.Profile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0)


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def one_file(n: int, window: tuple[int, int], fire_at: list[int]) -> nab.FileRows:
    scores = np.zeros(n)
    scores[fire_at] = 1.0
    return nab.prepare_file(scores, [window])


def test_probation_is_15_percent_capped_at_750_rows():
    assert nab.probation_length(1000) == 150
    assert nab.probation_length(4032) == 604
    assert nab.probation_length(20000) == 750


def test_scaled_sigmoid_matches_the_published_shape():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(2 * sig(5) - 1)  # 0.98661
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert nab.scaled_sigmoid(3.0) == -1.0


def test_detection_at_window_start_earns_the_full_true_positive_weight():
    # 100 rows: probation 15; window rows 40..59 (20 rows); first detection at row 40:
    # position -(59 - 40 + 1) / 20 = -1 -> S(-1) / S(-1) = 1.
    f = one_file(100, (40, 59), [40])
    assert nab.score_at([f], STANDARD, 0.5) == pytest.approx(1.0)


def test_late_detection_earns_less_and_only_the_earliest_counts():
    # Detection at row 50: position -(59 - 50 + 1) / 20 = -0.5 -> 0.84828 / 0.98661.
    late = nab.score_at([one_file(100, (40, 59), [50])], STANDARD, 0.5)
    assert late == pytest.approx(nab.scaled_sigmoid(-0.5) / nab.scaled_sigmoid(-1.0))
    # A second, later detection in the same window changes nothing.
    both = nab.score_at([one_file(100, (40, 59), [50, 55])], STANDARD, 0.5)
    assert both == pytest.approx(late)


def test_false_positive_before_any_window_costs_the_full_fp_weight():
    # Row 20 is after probation and before the only window: -0.11; the window is missed: -1.
    f = one_file(100, (40, 59), [20])
    assert nab.score_at([f], STANDARD, 0.5) == pytest.approx(-0.11 - 1.0)


def test_false_positive_just_after_a_window_costs_little():
    # Row 64 is 5 rows past the window end (59), window width 20: distance 5 / 19.
    f = one_file(100, (40, 59), [40, 64])
    expected = 1.0 + 0.11 * (2 * sig(-5 * 5 / 19) - 1)
    assert nab.score_at([f], STANDARD, 0.5) == pytest.approx(expected)


def test_missed_window_costs_the_fn_weight_of_the_profile():
    f = one_file(100, (40, 59), [])
    assert nab.score_at([f], STANDARD, 0.5) == pytest.approx(-1.0)
    assert nab.score_at([f], LOW_FN, 0.5) == pytest.approx(-2.0)


def test_detections_in_the_probationary_period_are_not_scored():
    # Row 10 < 15 is probationary: neither a false positive nor anything else.
    f = one_file(100, (40, 59), [10, 40])
    assert nab.score_at([f], STANDARD, 0.5) == pytest.approx(1.0)


def test_window_inside_the_probationary_period_is_not_counted():
    f = one_file(100, (2, 8), [])
    assert f.n_windows == 0
    assert nab.score_at([f], STANDARD, 0.5) == 0.0


def test_optimised_threshold_picks_the_best_cut_over_all_files():
    # File A: window 40..59, score 0.9 at its start, 0.6 at a false positive at row 20.
    a = np.zeros(100)
    a[40], a[20] = 0.9, 0.6
    fa = nab.prepare_file(a, [(40, 59)])
    # File B: no window, a false positive of 0.7 at row 30.
    b = np.zeros(100)
    b[30] = 0.7
    fb = nab.prepare_file(b, [])
    # A later row of the window at 0.8 changes nothing: every threshold in (0.7, 0.9] is best.
    a[45] = 0.8
    fa = nab.prepare_file(a, [(40, 59)])
    threshold, total = nab.optimise_threshold([fa, fb], STANDARD)
    assert total == pytest.approx(1.0)
    # The middle of that range, so scores a little off on other data land on the same side.
    assert threshold == pytest.approx(0.8)
    assert nab.score_at([fa, fb], STANDARD, threshold) == pytest.approx(total)
    # The sweep agrees with scoring at fixed thresholds.
    for t in (0.95, 0.9, 0.7, 0.6, 0.0):
        assert nab.score_at([fa, fb], STANDARD, t) <= total + 1e-12


def test_when_firing_never_pays_the_threshold_lies_between_the_top_score_and_1():
    # Only a false positive: every threshold above 0.6 earns the best total, 0.
    scores = np.zeros(100)
    scores[30] = 0.6
    f = nab.prepare_file(scores, [])
    threshold, total = nab.optimise_threshold([f], STANDARD)
    assert total == 0.0
    # The middle of (0.6, 1], as NAB writes thresholds from 0 to 1, and --thresholds reads only those.
    assert threshold == pytest.approx(0.8)
    assert nab.score_at([f], STANDARD, threshold) == total


def test_normalisation_maps_null_to_0_and_perfect_to_100():
    files = [one_file(100, (40, 59), [40]), one_file(100, (70, 89), [70])]
    null, perfect = nab.null_and_perfect(files, STANDARD)
    assert null == -2.0 and perfect == 2.0
    assert nab.normalise(nab.score_at(files, STANDARD, 0.5), null, perfect) == pytest.approx(100.0)
    assert nab.normalise(nab.score_at(files, STANDARD, 2.0), null, perfect) == pytest.approx(0.0)
    # Half the windows caught at their start: halfway.
    half = [one_file(100, (40, 59), [40]), one_file(100, (70, 89), [])]
    assert nab.normalise(nab.score_at(half, STANDARD, 0.5), null, perfect) == pytest.approx(50.0)


def test_a_window_inside_the_probationary_period_counts_neither_way():
    # 2000 rows: the first 300 are probationary, so the window at 100-110 can be neither found nor missed;
    # a detector that finds the other window at its start is perfect.
    scores = np.zeros(2000)
    scores[[105, 1480]] = 1.0
    for bounds in ([(100, 110), (1480, 1520)], [(1480, 1520)]):
        files = [nab.prepare_file(scores, bounds)]
        null, perfect = nab.null_and_perfect(files, STANDARD)
        assert (null, perfect) == (-1.0, 1.0)
        assert nab.normalise(nab.score_at(files, STANDARD, 0.5), null, perfect) == pytest.approx(100.0)


def test_window_bounds_follow_timestamps():
    ts = np.arange(10, dtype=float) * 60.0
    assert nab.window_bounds(ts, [(120.0, 300.0)]) == [(2, 5)]
    assert nab.window_bounds(ts, [(10_000.0, 20_000.0)]) == []
