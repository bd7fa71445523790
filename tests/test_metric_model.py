"""The shipped default metric model: loads from its spec and flags what an SRE would flag."""

from __future__ import annotations

import math
import pickle
import random
from array import array

from detector.detectors.robust_seasonal import RobustSeasonal
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


def test_the_band_of_a_series_never_below_zero_stops_at_zero():
    rng = random.Random(3)
    ratio, centred = _model(), _model()
    for i in range(1000):
        x = abs(rng.gauss(0.002, 0.002))  # an error ratio: mostly near 0, never below
        ratio.update(60.0 * i, x)
        centred.update(60.0 * i, x - 0.002)  # the same noise around 0, negative half the time
    assert ratio.explain()["lower"] == 0.0 < ratio.explain()["upper"]
    assert centred.explain()["lower"] < 0.0


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


def _noise(n, seed, sd=5.0):
    rng = random.Random(seed)
    return [100.0 + rng.gauss(0, sd) for _ in range(n)]


def test_level_shift_is_detected_at_its_first_point_and_then_reported_only_as_it_grows_surer():
    vs = _noise(4000, seed=3)
    vs[3000:] = [v + 40.0 for v in vs[3000:]]  # +8 sigma, sustained
    model = _model()
    reports, confidences = [], []
    for i, v in enumerate(vs):
        score, confidence = model.update(60.0 * i, v)
        confidences.append(confidence)
        if i >= 3000 and score > 0.0:
            reports.append((i, score))
    assert min(confidences[3000:3010]) > 0.99  # while the shift is new, every point is confidently unusual
    first = reports[0]
    assert first[0] == 3000 and first[1] > 0.45
    # Not one report per shifted point: a few more while the evidence of a lasting change builds up,
    # each scoring above the one before; later, nothing reaches the first report again.
    early = [r for r in reports if r[0] < 3050]
    assert len(early) <= 5 and all(b[1] > a[1] for a, b in zip(early, early[1:]))
    assert all(score < first[1] for at, score in reports if at >= 3050)


def test_run_of_moderate_same_sign_residuals_is_detected_within_a_few_points():
    for seed in range(3):
        vs = _noise(3100, seed)
        vs[3000:3020] = [v + 12.0 for v in vs[3000:3020]]  # +2.4 sigma: no single point is extreme
        scores, _ = _model().update_many([60.0 * i for i in range(3100)], vs)
        normal = sorted(scores[1000:3000])
        assert max(scores[3000:3010]) > normal[-10], seed


def test_flat_line_then_any_change_is_detected():
    vs = [5.0] * 2000 + [6.0] * 10
    scores, confidences = _model().update_many([60.0 * i for i in range(len(vs))], vs)
    assert max(scores[:2000]) == 0.0
    assert scores[2000] > 0.5 and confidences[2000] > 0.99


def test_steady_seasonal_series_stays_below_the_level_of_a_real_incident():
    rng = random.Random(8)
    ts = [300.0 * i for i in range(6000)]
    vs = [100.0 + 30.0 * math.sin(2 * math.pi * t / 86400.0) + rng.gauss(0, 3) for t in ts]
    model = _model()
    scores, _ = model.update_many(ts, vs)
    score, confidence = model.update(ts[-1] + 300.0, vs[-1] + 60.0)  # +20 sigma off the profile
    # After two days of learning, nothing the steady series did scores as high as this.
    assert score > max(scores[600:]) and confidence > 0.999
    # Also beyond anything this time of day has seen: each is a fair name for it.
    assert model.explain()["detector"] in ("spike", "level shift", "time-of-day breakout")


def test_a_broken_daily_pattern_is_detected_against_the_profile():
    # The series stays inside its usual range, so only the daily profile can tell that the
    # afternoon peak did not come.
    rng = random.Random(9)
    ts = [300.0 * i for i in range(288 * 10)]
    vs = [(80.0 if (t % 86400) >= 43200 else 20.0) + rng.gauss(0, 2) for t in ts]
    for i in range(288 * 9 + 150, 288 * 9 + 200):
        vs[i] = 20.0 + rng.gauss(0, 2)
    scores, _ = _model().update_many(ts, vs)
    start = 288 * 9 + 150
    assert max(scores[start:start + 10]) > max(scores[600:start])


def _assert_best_report_after(vs, start, quiet_from, detector, seed):
    """The highest report from point ``start`` on beats every score of the quiet stretch before it and
    names ``detector``."""
    model = _model()
    scores, reports = [], []
    for i, v in enumerate(vs):
        score, _ = model.update(60.0 * i, v)
        scores.append(score)
        if i >= start and score > 0.0:
            reports.append((score, model.explain()["detector"]))
    best, fired = max(reports)
    assert best > max(scores[quiet_from:start]), seed
    assert fired == detector, seed


def _history_with_old_spikes(rng) -> list[float]:
    """3000 points (a minute apart) of noise around 100 (sd 5) with old spikes of +-80 at every time of
    day, so the range, overall and at each time of day, is wide and a later change inside it is no
    breakout."""
    vs = [100.0 + rng.gauss(0, 5) for _ in range(3000)]
    for i in range(100, 2800, 300):
        vs[i] += 80.0
        vs[i + 150] -= 80.0
    return vs


def test_a_noisier_stretch_inside_the_usual_range_is_detected_as_a_sustained_deviation():
    for seed in range(10, 13):
        rng = random.Random(seed)
        vs = _history_with_old_spikes(rng)
        vs += [100.0 + rng.gauss(0, 15) for _ in range(100)]  # same level, three times the noise
        _assert_best_report_after(vs, 3000, quiet_from=1500, detector="sustained deviation", seed=seed)


def test_values_settling_in_the_top_of_their_usual_spread_are_a_distribution_change():
    # A latency spread evenly over 90-110 ms whose requests all become 105-110 ms: no value leaves the
    # usual range and no single residual is large, but the values now sit on one side of it.
    for seed in range(5):
        rng = random.Random(seed)
        vs = [rng.uniform(90.0, 110.0) for _ in range(2500)] + [rng.uniform(105.0, 110.0) for _ in range(100)]
        _assert_best_report_after(vs, 2500, quiet_from=500, detector="distribution change", seed=seed)


def test_a_climbing_surprise_is_reported_once_at_its_peak():
    # A step of 10 sigma inside the usual range: the level-shift and CUSUM evidence climb for several
    # points, and each step of the climb beats the last. Reported at every step, one change would read
    # as several.
    for seed in range(5):
        rng = random.Random(seed)
        vs = _history_with_old_spikes(rng)
        vs += [150.0 + rng.gauss(0, 5) for _ in range(60)]
        ts = [60.0 * i for i in range(len(vs))]
        wait = RobustSeasonal().peak_wait
        every_step = RobustSeasonal(peak_wait=0).score_many(ts, vs)[3000:]
        at_peaks = RobustSeasonal().score_many(ts, vs)[3000:]
        assert sum(s > 0.0 for s in at_peaks) < sum(s > 0.0 for s in every_step), seed
        # Nothing is lost: each step is covered, at most `peak_wait` points later, by a report as high.
        for i, s in enumerate(every_step):
            assert max(at_peaks[i:i + wait + 1]) >= s, (seed, i)


def test_a_burst_the_series_keeps_producing_stops_being_news():
    # A job that bursts to +12 sigma every 200 points: the first bursts are news, the twentieth is not.
    rng = random.Random(11)
    vs = [100.0 + rng.gauss(0, 5) for _ in range(6000)]
    bursts = list(range(2000, 6000, 200))
    for i in bursts:
        vs[i] = 160.0 + rng.gauss(0, 1)
    scores, _ = _model().update_many([60.0 * i for i in range(len(vs))], vs)
    assert scores[bursts[0]] > 0.5
    assert max(scores[i] for i in bursts[-5:]) < scores[bursts[0]] - 0.1


def test_a_noise_free_periodic_series_raises_nothing_after_its_first_days():
    # A square wave (a nightly batch job), exactly the same every day, then one night it does not run.
    ts = [300.0 * i for i in range(288 * 12)]
    vs = [80.0 if 3600 <= t % 86400 < 7200 else 20.0 for t in ts]
    missed = range(288 * 11 + 12, 288 * 11 + 24)
    for i in missed:
        vs[i] = 20.0
    scores, _ = _model().update_many(ts, vs)
    assert max(scores[288 * 3 : missed[0]]) < max(scores[i] for i in missed)


def test_a_steady_counter_is_not_confident_when_its_first_day_wraps():
    # A new pod's http_requests_total, ~10 requests a second scraped every 15 s from 0, starting at an
    # odd time of day. After a day the profile's phases hold values from a day ago, far below the
    # counter: taken as the prediction, they read as a collapse.
    rng = random.Random(1)
    start, total, ts, vs = 80_000.0, 0, [], []
    for i in range(30 * 240):
        total += rng.randint(140, 160)
        ts.append(start + 15.0 * i)
        vs.append(float(total))
    _, confidences = _model().update_many(ts, vs)
    assert max(confidences[240:]) < 0.99
    # Once the counter's rate changes, it is news.
    burst = [vs[-1] + 1500.0 * k for k in range(1, 41)]
    _, after = _model().update_many(ts + [ts[-1] + 15.0 * k for k in range(1, 41)], vs + burst)
    assert max(after[-40:]) >= 0.99


def test_a_detector_checkpointed_by_an_older_version_restores_and_keeps_scoring():
    ts, vs = _daily_series()
    current = RobustSeasonal()
    current.score_many(ts[:1000], vs[:1000])
    # What the version before the CUSUMs and spike counts pickled: fewer parameters and state fields.
    old = RobustSeasonal.__new__(RobustSeasonal)
    old.__dict__.update({k: v for k, v in current.__dict__.items()
                         if k not in ("cusum_drift", "cusum_clip", "deviation_drift", "deviation_clip", "rank_rate",
                                      "peak_wait", "_counts")})
    old._st = list(current._st[:21])
    restored = pickle.loads(pickle.dumps(old))
    assert restored.get_params() == RobustSeasonal().get_params()
    scores = restored.score_many(ts[1000:], vs[1000:])
    assert scores[500] > 0.3  # the spike at 1500 is still caught


def test_spike_counts_checkpointed_before_the_rank_channel_carry_over():
    # That version counted z-score sizes only, not their signs, and had no rank state.
    ts, vs = _daily_series()
    current = RobustSeasonal()
    current.score_many(ts[:1400], vs[:1400])
    bins = len(current._counts) // 2 - 1
    sizes = array("f", [current._counts[bins + k] + current._counts[bins - 1 - k] for k in range(bins)])
    sizes.append(current._counts[2 * bins])
    old = RobustSeasonal.__new__(RobustSeasonal)
    old.__dict__.update({k: v for k, v in current.__dict__.items()
                         if k not in ("rank_rate", "peak_wait", "_counts", "_st")})
    old._st = list(current._st[:29])
    old._counts = sizes
    restored = pickle.loads(pickle.dumps(old))
    scores = restored.score_many(ts[1400:], vs[1400:])
    learned = sum(1 for v in vs[1400:] if not math.isnan(v))
    assert restored._counts[2 * bins] == sizes[-1] + learned  # no count lost, and counting goes on
    assert scores[100] > 0.3  # the spike at 1500 is still caught


def test_a_night_burst_of_a_size_only_daytime_has_seen_is_a_time_of_day_breakout():
    # A queue bursty through business hours and flat at night. At 3 am it jumps to 190: no new extreme
    # of the series, and a residual of a size its days produce all the time.
    for seed in range(5):
        rng = random.Random(seed)
        model = _model()
        start = 1_700_006_400.0  # a midnight
        for i in range(6 * 288 + 36):  # six days and three hours of 5-minute points
            t = start + 300.0 * i
            hour = (t % 86400) / 3600
            model.update(t, 100 + rng.expovariate(1 / 25) if 8 <= hour < 20 else 100 + rng.gauss(0, 2))
        score, _ = model.update(start + 300.0 * (6 * 288 + 36), 190.0)
        assert score > 0.5, seed
        assert model.explain()["detector"] == "time-of-day breakout", seed
