"""Slow drifts: a series creeping away from its baseline is flagged while the change is still small,
and what a normal day does to a series (noise, spikes, a steady trend, a restart) is not."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from detector.detectors import build
from detector.detectors.drift_monitor import DriftMonitor
from detector.detectors.robust_seasonal import RobustSeasonal
from detector.records import MetricPoint

STEP = 30.0  # seconds between scrapes
DAY_START = 1_714_521_600.0


def noisy(n, level=1000.0, noise=0.003, seed=0, start=0):
    """A flat series with measurement noise, one point per scrape: (timestamp, value)."""
    rng = random.Random(seed)
    return [(DAY_START + STEP * (start + i), level * (1.0 + rng.gauss(0.0, noise))) for i in range(n)]


def drift_z(points, det=None):
    det = det or build("trend_drift")
    return det, [det.update(t, v) for t, v in points]


def drifting(points, det=None):
    """Indices where the series counts as drifting for an incident: confidence 0.99 or more
    (|z| >= 4.6) and at least 10 % away from where the baseline expects it."""
    det = det or build("trend_drift")
    out = []
    for i, (t, v) in enumerate(points):
        z = det.update(t, v)
        ev = det.explain()
        if abs(z) >= 4.6 and abs(ev["observed"] - ev["expected"]) >= 0.1 * abs(ev["expected"]):
            out.append(i)
    return out


def test_a_slow_leak_is_flagged_before_it_becomes_a_big_deviation():
    calm = noisy(480)  # four hours
    # Then memory climbs by 6 % an hour, for two hours.
    leak = [(t, v * (1.0 + 0.06 * (i * STEP) / 3600.0)) for i, (t, v) in enumerate(noisy(240, seed=1, start=480))]
    det, zs = drift_z(calm + leak)
    flagged = next(i for i, z in enumerate(zs[480:]) if z >= 4.6)  # where its confidence reaches 0.99
    growth = 0.06 * flagged * STEP / 3600.0
    assert growth < 0.05, growth  # seen within the first 5 % of growth
    # The point detector, which follows the level, still sees nothing alarming there.
    point = RobustSeasonal()
    confident = []
    for t, v in (calm + leak)[: 480 + flagged + 1]:
        x = {"value": v, "timestamp": t}
        confident.append(point.score_one(x))
        point.learn_one(x)
    assert max(confident[480:]) < 0.5


def test_noise_spikes_and_a_one_minute_blip_are_not_a_drift():
    points = noisy(720, seed=2)
    for i in (300, 420, 421, 600, 601, 602):  # a spike, and a blip of three scrapes at x3
        points[i] = (points[i][0], points[i][1] * 3.0)
    det, zs = drift_z(points)
    # Scored while they last, but they move the baseline so little that the series is calm again
    # at the next scrape: no run long enough to count as a drift.
    hot = [i for i, z in enumerate(zs) if abs(z) >= 4.6]
    assert hot == [300, 420, 421, 600, 601, 602]


def test_a_series_that_always_grows_steadily_is_not_drifting_but_an_acceleration_is():
    rng = random.Random(3)
    # A disk filling with logs at 1 % an hour, for eight hours.
    steady = [(DAY_START + STEP * i, 0.4 + 0.01 * i * STEP / 3600.0 + rng.gauss(0.0, 1.5e-4)) for i in range(960)]
    det, zs = drift_z(steady)
    assert max(abs(z) for z in zs) < 4.6
    # Then something writes ten times as fast.
    last = steady[-1][1]
    faster = [(DAY_START + STEP * (960 + i), last + 0.1 * i * STEP / 3600.0 + rng.gauss(0.0, 1.5e-4)) for i in range(120)]
    _, zs = drift_z(faster, det)
    assert max(zs) >= 4.6


@pytest.mark.parametrize("back_at, fill_seconds", [(0.7, 1200.0), (0.3, 1800.0)])
def test_a_restart_that_warms_up_is_not_a_drift(back_at, fill_seconds):
    calm = noisy(480, seed=4)
    # A scrape is missed while the process restarts; it comes back at 70 % and fills its caches over
    # twenty minutes, or at 30 % and fills them over half an hour (still climbing when it has settled).
    t_back = calm[-1][0] + 3 * STEP
    warm = [(t_back + STEP * i, v * (back_at + (1.0 - back_at) * (1.0 - math.exp(-STEP * i / fill_seconds))))
            for i, (_, v) in enumerate(noisy(360, seed=5))]
    assert drifting(calm + warm) == []


def test_the_monitor_speaks_only_around_drifts_and_holds_a_bounded_number_of_series():
    mon = DriftMonitor(max_series=3)
    emitted = []
    series = ["a", "b", "c"]
    for i, (t, v) in enumerate(noisy(600, seed=6)):
        if i == 300:  # a short-lived series arrives: the least recently seen one makes room
            mon.process(MetricPoint(t, "svc", "memory_bytes", (("instance", "d"),), v))
            series = ["b", "c", "a"]
        for name in series:
            level = v * (1.0 + (0.1 * max(0, i - 480) / 120.0 if name == "c" else 0.0))
            s = mon.process(MetricPoint(t, "svc", "memory_bytes", (("instance", name),), level))
            if s is not None:
                emitted.append((i, name, s))
    assert len(mon) == 3 and mon.evictions == 2  # "a", then "d"
    assert len(emitted) < 0.1 * 3 * 600  # a score now and then, not one per point
    drifting = [s for i, _, s in emitted if s.confidence >= 0.99]
    assert {s.series for s in drifting} == {'memory_bytes{instance="c"}'}  # only the drifting series
    assert all(s.signal == "metric_drift" and s.entity == "svc" for s in drifting)
    ev = drifting[-1].evidence
    assert ev["observed"] > ev["upper"] and ev["detector"] == "drift"


def test_drift_state_survives_a_checkpoint():
    points = noisy(600, seed=7)
    det, _ = drift_z(points[:400])
    twin = pickle.loads(pickle.dumps(det))
    assert drift_z(points[400:], twin)[1] == drift_z(points[400:], det)[1]


def _pipeline_run(values, gap_at, missed=True, tells=None):
    """Memory of one instance through the whole pipeline, one JSON point per scrape; the process
    restarts at scrape ``gap_at``, which is missing if ``missed``. ``tells`` adds a series of the same
    process that shows the restart: its start time, or a counter that starts again from 0. Returns
    the incident events and the confident memory scores from the restart on."""
    import json

    from detector.config import load_pipeline
    from detector.pipeline import Pipeline
    from detector.records import RawRecord

    spec = load_pipeline(None, inputs=[{"topic": "metrics", "kind": "metric", "format": "metric_json"}])
    pipe = Pipeline.from_spec(spec)
    raws = []
    restart = values[gap_at][0]
    labels = {"service": "payments", "instance": "node-6"}
    for i, (t, v) in enumerate(values):
        if i == gap_at and missed:
            continue
        points = [("process_resident_memory_bytes", v)]
        if tells == "start time":
            points.append(("process_start_time_seconds", restart if i >= gap_at else values[0][0]))
        elif tells == "counter":
            points.append(("process_cpu_seconds_total", 0.4 * (i - gap_at if i >= gap_at else i)))
        for name, value in points:
            body = {"name": name, "labels": labels, "value": value, "timestamp": t}
            raws.append(RawRecord("metrics", 0, len(raws), t, b"payments", json.dumps(body).encode()))
    events, confident = [], []
    for k in range(0, len(raws), 500):
        result = pipe.process(raws[k:k + 500])
        events += result.incidents
        confident += [s for s in result.scores if s.confidence >= 0.99 and s.timestamp > restart
                      and s.signal == "process_resident_memory_bytes"]
    return events, confident


def test_a_restarted_process_filling_its_caches_again_is_not_anomalous_but_one_using_more_memory_is():
    calm = noisy(600, level=4.4e8, noise=0.002, seed=8)
    # A scrape is missed while the process restarts; it comes back at 70 % and fills up over 20 minutes.
    warm = [(t, v * (0.7 + 0.3 * (1.0 - math.exp(-STEP * i / 1200.0))))
            for i, (t, v) in enumerate(noisy(240, level=4.4e8, noise=0.002, seed=9, start=600))]
    events, confident = _pipeline_run(calm + warm, gap_at=600)
    assert events == [] and confident == []
    # The same restart, but the new build holds 40 % more than before: that stays anomalous.
    bigger = [(t, v * 1.4) for t, v in noisy(240, level=4.4e8, noise=0.002, seed=9, start=600)]
    _, confident = _pipeline_run(calm + bigger, gap_at=600)
    assert confident and all(s.evidence["observed"] > s.evidence["expected"] for s in confident)


@pytest.mark.parametrize("tells", ["start time", "counter"])
def test_a_restart_too_quick_to_miss_a_scrape_is_known_by_its_start_time_or_a_counter_reset(tells):
    calm = noisy(2400, level=4.4e8, noise=0.002, seed=8)  # 20 hours
    # Back at 30 % of its memory, filling up over half an hour.
    warm = [(t, v * (0.3 + 0.7 * (1.0 - math.exp(-STEP * i / 1800.0))))
            for i, (t, v) in enumerate(noisy(240, level=4.4e8, noise=0.002, seed=9, start=2400))]
    # Nothing else tells of the restart: the drop opens an incident.
    events, confident = _pipeline_run(calm + warm, gap_at=2400, missed=False)
    assert [e.kind for e in events][:1] == ["opened"] and confident
    # The process's start time changes, or its counters start again from 0: it is a restart.
    events, confident = _pipeline_run(calm + warm, gap_at=2400, missed=False, tells=tells)
    assert events == [] and confident == []


def test_the_start_time_of_a_process_is_read_as_a_restart_cue_not_scored():
    import json

    from detector.config import load_pipeline
    from detector.pipeline import Pipeline
    from detector.records import RawRecord

    pipe = Pipeline.from_spec(load_pipeline(None, inputs=[{"topic": "m", "kind": "metric", "format": "metric_json"}]))
    raws = [RawRecord("m", 0, i, t, b"api", json.dumps({
        "name": name, "labels": {"service": "api", "instance": "node-1"}, "timestamp": t,
        "value": v if name != "process_start_time_seconds" else DAY_START + (0 if i < 400 else 400 * STEP)}).encode())
        for i, (t, v) in enumerate(noisy(600, seed=12))
        for name in ("process_resident_memory_bytes", "process_start_time_seconds")]
    result = pipe.process(raws)
    assert {s.signal for s in result.scores} == {"process_resident_memory_bytes"}
    assert pipe.decoded["m"] == len(raws) and not result.dead_letters


def test_a_restart_of_one_process_leaves_the_other_processes_of_the_service_alone():
    mon = DriftMonitor()
    for t, v in noisy(600, seed=10):
        for node in ("node-1", "node-2"):
            labels = (("instance", node),)
            mon.process(MetricPoint(t, "api", "process_resident_memory_bytes", labels, v))
            mon.process(MetricPoint(t, "api", "process_start_time_seconds", labels, DAY_START))
    t = DAY_START + 600 * STEP
    mon.process(MetricPoint(t, "api", "process_start_time_seconds", (("instance", "node-1"),), t))
    for node in ("node-1", "node-2"):
        mon.process(MetricPoint(t, "api", "process_resident_memory_bytes", (("instance", node),), 700.0))
    assert mon.level_before_restart('process_resident_memory_bytes{instance="node-1"}', t) is not None
    assert mon.level_before_restart('process_resident_memory_bytes{instance="node-2"}', t) is None


def test_a_counter_that_only_dips_is_not_a_restart():
    mon = DriftMonitor()
    labels = (("instance", "node-1"),)
    key = 'process_resident_memory_bytes{instance="node-1"}'
    for i, (t, v) in enumerate(noisy(600, seed=11)):
        mon.process(MetricPoint(t, "api", "process_resident_memory_bytes", labels, v))
        mon.process(MetricPoint(t, "api", "open_connections_total", labels, 400.0 + 100.0 * math.sin(i / 20.0)))
    assert mon.level_before_restart(key, t) is None
    # A real reset starts again from 0.
    mon.process(MetricPoint(t + STEP, "api", "open_connections_total", labels, 3.0))
    mon.process(MetricPoint(t + STEP, "api", "process_resident_memory_bytes", labels, 700.0))
    assert mon.level_before_restart(key, t + STEP) is not None


def disk(hours, seed, level=0.43, growth=0.01, noise=1.5e-3, start=0.0):
    """A disk filling with logs at ``growth`` an hour and emptied by the rotation at 00:00 UTC, from
    ``start`` seconds after DAY_START (a midnight) on."""
    rng = random.Random(seed)
    times = [DAY_START + start + STEP * i for i in range(int(hours * 3600.0 / STEP))]
    return [(t, level + growth * ((t - DAY_START) % 86400.0) / 3600.0 + rng.gauss(0.0, noise)) for t in times]


def test_a_step_down_is_not_a_drift_but_the_same_fall_spread_over_hours_is():
    # From 00:00 to 06:00 the next day: at the rotation the disk drops from ~0.67 to 0.43 within one
    # scrape, and goes on filling from there.
    det, zs = drift_z(disk(30.0, seed=10))
    rotation = int(86400.0 / STEP)
    assert max(abs(z) for z in zs[480:rotation]) < 4.6
    hot = [i for i, z in enumerate(zs) if abs(z) >= 4.6]
    assert all(rotation <= i < rotation + 6 for i in hot)  # scored like a spike while it is new, no more
    assert drifting(disk(30.0, seed=10)) == []
    # The same fall from ~0.67 to 0.43, but over two hours: that is a drift.
    points = disk(24.0, seed=11)
    last = points[-1][1]
    fall = [(points[-1][0] + STEP * (i + 1), last - 0.24 * (i + 1) / 240.0 + random.Random(i).gauss(0.0, 1.5e-3))
            for i in range(240)]
    flagged = drifting(points + fall)
    assert flagged and min(flagged) < len(points) + 240


def test_a_jump_up_to_a_new_level_is_not_a_drift_and_a_leak_after_it_still_is():
    calm = noisy(480, seed=12)
    jumped = [(t, v * 1.5) for t, v in noisy(240, seed=13, start=480)]  # a config change: +50 % at once
    det, zs = drift_z(calm + jumped)
    assert drifting(calm + jumped) == []
    # On the new level, a slow leak of 6 % an hour is flagged as before.
    base = jumped[-1][1]
    leak = [(t, base * (1.0 + 0.06 * (i * STEP) / 3600.0) * (v / 1000.0))
            for i, (t, v) in enumerate(noisy(240, seed=14, start=720))]
    _, zs = drift_z(leak, det)
    assert max(zs) >= 4.6


def test_a_jump_to_a_noisier_level_is_not_scored_as_drifting_for_hours():
    # Latency tripling after a bad deploy: the level and its noise triple at once, and stay.
    for seed in (12, 13, 14):
        calm = noisy(480, seed=seed)
        tripled = [(t, 3.0 * v) for t, v in noisy(480, seed=seed + 1, start=480)]
        _, zs = drift_z(calm + tripled)
        hot = [i - len(calm) for i, z in enumerate(zs) if abs(z) >= 4.6 and i >= len(calm)]
        # Scored while the jump is new; an hour later the new noise is the series' own.
        assert hot and max(hot) < 3600.0 / STEP


def _metric_raws(series_values):
    """One JSON point per scrape for each instance: {instance: [(t, v)]} -> RawRecords in time order."""
    import json

    from detector.records import RawRecord

    rows = sorted((t, inst, v) for inst, values in series_values.items() for t, v in values)
    raws = []
    for t, inst, v in rows:
        body = {"name": "disk_used_ratio", "labels": {"service": "search", "instance": inst}, "value": v,
                "timestamp": t}
        raws.append(RawRecord("metrics", 0, len(raws), t, b"search", json.dumps(body).encode()))
    return raws


def test_the_nightly_rotation_on_every_instance_of_a_service_pages_nobody():
    from detector.config import load_pipeline
    from detector.pipeline import Pipeline

    spec = load_pipeline(None, inputs=[{"topic": "metrics", "kind": "metric", "format": "metric_json"}])
    pipe = Pipeline.from_spec(spec)
    # Two instances, from 12:00 to 06:00 the day after: both disks empty at the rotation at midnight.
    nodes = {f"node-{n}": disk(18.0, seed=20 + n, level=0.4 + 0.03 * n, start=12 * 3600.0) for n in (1, 2)}
    raws = _metric_raws(nodes)
    events, drifts = [], []
    for k in range(0, len(raws), 500):
        result = pipe.process(raws[k:k + 500])
        events += result.incidents
        drifts += [s for s in result.drift if s.confidence >= 0.99]
    assert events == []
    assert not any(s.timestamp > DAY_START + 86400.0 + 600.0 for s in drifts)  # no drift after the rotation


@pytest.mark.parametrize("incidents, expected", [
    ("drift_detector: nosuch", "incidents.drift_detector: unknown detector 'nosuch'; registered:"),
    ("drift_params: {bogus: 1}", "incidents.drift_params: detector 'trend_drift':"),
    ("drift_params: {short_seconds: -1}", "short_seconds"),
    ("drift_params: {gap_factor: 0.5}", "gap_factor"),
])
def test_a_bad_drift_detector_in_a_pipeline_names_its_key(tmp_path, capsys, incidents, expected):
    from detector.cli import main

    spec = tmp_path / "pipeline.yaml"
    spec.write_text(f"inputs: [{{topic: m, kind: metric, format: metric_json}}]\nincidents:\n  {incidents}\n")
    assert main(["check-config", str(spec)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
