"""``evaluate incidents``: what counts as detected, as lead time, as a false alert; and the replay feed."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from detector.cli import main
from detector.evaluation.incidents import BATCH, START, START_HOURS, raw_batches, score
from detector.simulate import SCENARIOS, generate

HOURS = 24.0
DAY = 86400.0


def _times(name: str):
    return SCENARIOS[name].timeline(START, HOURS)


def test_an_alert_on_the_entity_before_customers_notice_is_a_detection_with_its_lead():
    sc = SCENARIOS["error_burst_after_deploy"]
    d, v, e = _times(sc.name)
    row = score(sc, [(d + 300.0, "checkout", "log_new_template"), (v + 60.0, "checkout", "error_ratio")], HOURS)
    assert row["detected"] is True
    assert row["lead_seconds"] == pytest.approx(v - d - 300.0)
    assert row["false_alerts_per_day"] == 0


def test_an_alert_only_after_customers_notice_is_late_with_a_negative_lead():
    sc = SCENARIOS["disk_filling"]
    d, v, e = _times(sc.name)
    row = score(sc, [(v + 120.0, "search", "http_request_error_ratio")], HOURS)
    assert row["detected"] is False
    assert row["lead_seconds"] == pytest.approx(-120.0)


def test_alerts_elsewhere_or_before_the_disruption_are_false_and_related_ones_are_not():
    sc = SCENARIOS["dependency_latency_timeouts"]  # entity inventory, related checkout and api-gateway
    d, v, e = _times(sc.name)
    pages = [
        (START + 3600.0, "inventory", "p99"),  # the entity, hours before the fault: false
        (d + 600.0, "auth", "p99"),  # a service the incident does not touch: false
        (v + 60.0, "checkout", "error_ratio"),  # a service that suffers from it: not false
        (e + 600.0, "api-gateway", "error_ratio"),  # settling after the mitigation: not false
        (e + 3 * 3600.0, "checkout", "p99"),  # long after: false
    ]
    row = score(sc, pages, HOURS)
    assert row["false_alerts"] == 3
    assert row["false_alerts_per_day"] == pytest.approx(3.0)
    assert row["detected"] is False and row["lead_seconds"] is None  # the entity was only paged before D


def test_the_quiet_day_only_counts_false_alerts():
    row = score(SCENARIOS["quiet"], [(START + 7200.0, "auth", "p99"), (START + 9000.0, "search", "cpu")], 12.0)
    assert row["detected"] is None and row["lead_seconds"] is None
    assert row["false_alerts_per_day"] == pytest.approx(4.0)


def test_replay_feed_looks_like_a_consumer_poll_keyed_partitions_and_dense_offsets():
    recs = list(generate("quiet", START, 1.0, seed=4, volume=0.3))
    batches = list(raw_batches(recs, partitions=3))
    raws = [r for b in batches for r in b]
    assert len(raws) == len(recs) and all(len(b) <= BATCH for b in batches)
    partitions_of = defaultdict(set)
    offsets = defaultdict(list)
    for raw, rec in zip(raws, recs):
        assert raw.topic == {"log": "logs", "metric": "metrics"}[rec.kind]
        assert (raw.key, raw.value, raw.timestamp) == (rec.key, rec.value, rec.timestamp)
        partitions_of[raw.key].add(raw.partition)
        offsets[(raw.topic, raw.partition)].append(raw.offset)
    assert all(len(p) == 1 for p in partitions_of.values())
    assert len({next(iter(p)) for p in partitions_of.values()}) > 1  # six services do not all share one partition
    assert all(o == list(range(len(o))) for o in offsets.values())


def test_evaluate_incidents_prints_the_report_as_json(capsys):
    code = main(["evaluate", "incidents", "--json", "--hours", "5", "--seed", "2", "--start-hours", "0,13",
                 "--scenario", "error_burst_after_deploy", "--scenario", "quiet"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    names = [(r["name"], r["start_hour"]) for r in report["scenarios"]]
    assert names == [("error_burst_after_deploy", 0), ("quiet", 0), ("error_burst_after_deploy", 13), ("quiet", 13)]
    assert report["start_hours"] == [0, 13] and list(report["by_start_hour"]) == ["0", "13"]
    for h, (burst, quiet) in zip(("0", "13"), (report["scenarios"][:2], report["scenarios"][2:])):
        assert isinstance(burst["detected"], bool) and quiet["detected"] is None
        part = report["by_start_hour"][h]
        assert part["detection_rate"] == float(burst["detected"])
        assert part["median_lead_seconds"] == (burst["lead_seconds"] if burst["detected"] else None)
        assert part["false_alerts_per_day"] == pytest.approx((burst["false_alerts"] + quiet["false_alerts"]) / (2 * 5 / 24),
                                                             abs=1e-3)
    bursts = [r for r in report["scenarios"] if r["detected"] is not None]
    assert report["detection_rate"] == pytest.approx(sum(r["detected"] for r in bursts) / 2, abs=1e-3)
    total_false = sum(r["false_alerts"] for r in report["scenarios"])
    assert report["false_alerts_per_day"] == pytest.approx(total_false / (4 * 5 / 24), abs=1e-3)


def test_hours_too_short_for_a_scenario_are_refused_before_any_run(capsys):
    assert main(["evaluate", "incidents", "--hours", "6"]) == 2
    err = capsys.readouterr().err
    assert "'memory_leak_oom' (needs at least 12)" in err and "Traceback" not in err
    assert " alerts, " not in err  # no scenario ran first


def test_a_run_that_starts_later_in_the_day_is_scored_on_its_own_timeline():
    sc = SCENARIOS["error_burst_after_deploy"]
    start = START + 9 * 3600.0
    d, v, e = sc.timeline(start, HOURS)
    assert d == START + DAY + 3 * 3600.0  # 18 h in: 03:00 the next day
    row = score(sc, [(START + DAY + 600.0, "search", "disk_used_ratio"), (d + 300.0, "checkout", "p99")],
                HOURS, start)
    assert row["detected"] is True and row["lead_seconds"] == pytest.approx(v - d - 300.0)
    assert row["false_alerts"] == 1 and row["false_alert_examples"][0]["offset_hours"] == pytest.approx(15.17, abs=0.01)


def test_the_default_runs_have_the_nightly_rotation_hours_before_a_disruption():
    # At least one default run has 00:00 UTC (the log rotation of the normal day) inside it and at
    # least two hours before its disruption, so a false alert at the rotation is counted.
    def midnight_well_before_d(h):
        start = START + h * 3600.0
        midnight = START + DAY
        d = SCENARIOS["memory_leak_oom"].timeline(start, HOURS).disruption_start
        return start < midnight <= d - 2 * 3600.0

    assert any(midnight_well_before_d(h) for h in START_HOURS)


def test_an_unknown_scenario_is_an_error(capsys):
    assert main(["evaluate", "incidents", "--scenario", "nope"]) == 2
    assert "unknown scenario" in capsys.readouterr().err


@pytest.mark.parametrize("hours", ["nan", "inf", "-3"])
def test_hours_must_be_a_finite_positive_number(capsys, hours):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "incidents", "--hours", hours])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --hours:" in err and "Traceback" not in err


@pytest.mark.parametrize("partitions", ["0", "-2"])
def test_partitions_must_be_at_least_one(capsys, partitions):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "incidents", "--partitions", partitions])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument --partitions: must be at least 1, got {partitions}" in err
