"""The incident simulator: deterministic, ordered, well-formed, and its disruptions are real and placed.

Every scenario is generated once per session (16 simulated hours, half the default log volume) and
compared with the quiet day of the same seed: the data before a disruption's start must be the quiet
day's, byte for byte, and after it the affected entity's signals must change the way its incident does.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict

import numpy as np
import orjson
import pytest

from detector.simulate import FLEET, METRICS, SCENARIOS, build_world, generate
from detector.simulate.generate import schedule

START = 1714521600.0  # 2024-05-01T00:00:00Z
HOURS = 16.0
SEED = 3
VOLUME = 0.5
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"debug", "info", "warn", "error"}


class Run:
    """What the tests need from one generated scenario, kept compact."""

    def __init__(self, name: str):
        self.scenario = SCENARIOS[name]
        self.timeline = self.scenario.timeline(START, HOURS)
        cut = self.timeline.disruption_start if self.timeline else SCENARIOS["memory_leak_oom"].disruption_start(START, HOURS)
        self.before_digest = hashlib.sha256()
        self.metrics: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
        self.lines: list[tuple[float, str, str, str]] = []  # (time, service, level, message)
        self.count = 0
        for rec in generate(self.scenario, START, HOURS, SEED, volume=VOLUME):
            self.count += 1
            if rec.timestamp < cut:
                self.before_digest.update(rec.key + b"\0" + rec.value + b"\n")
            obj = orjson.loads(rec.value)
            if rec.kind == "metric":
                labels = obj["labels"]
                self.metrics[(labels["service"], obj["name"], labels["instance"])].append((obj["timestamp"], obj["value"]))
            else:
                self.lines.append((rec.timestamp, obj["service"]["name"], obj["log"]["level"], obj["message"]))

    def stat(self, service: str, metric: str, t0: float, t1: float, how=np.median) -> float:
        """``how`` of the service's metric over [t0, t1), all its instances pooled."""
        values = [v for (s, m, _), pts in self.metrics.items() if s == service and m == metric
                  for t, v in pts if t0 <= t < t1]
        return float(how(values)) if values else math.nan

    def line_times(self, pattern: str, service: str | None = None) -> list[float]:
        rx = re.compile(pattern)
        return [t for t, s, _, m in self.lines if (service is None or s == service) and rx.search(m)]


_RUNS: dict[str, Run] = {}


def run_of(name: str) -> Run:
    if name not in _RUNS:
        _RUNS[name] = Run(name)
    return _RUNS[name]


def test_same_seed_gives_the_same_records_and_another_seed_does_not():
    first = list(generate("error_burst_after_deploy", START, 3.0, seed=7, volume=0.3))
    again = list(generate("error_burst_after_deploy", START, 3.0, seed=7, volume=0.3))
    other = list(generate("error_burst_after_deploy", START, 3.0, seed=8, volume=0.3))
    assert first == again
    assert first != other


def test_records_come_in_event_time_order_as_ecs_logs_and_metric_points():
    services = {s.name: set(s.hosts) for s in FLEET}
    recs = list(generate("cert_auth_failures", START, 5.0, seed=1, volume=0.3))
    times = [r.timestamp for r in recs]
    assert times == sorted(times)
    kinds = {"log": 0, "metric": 0}
    for rec in recs:
        kinds[rec.kind] += 1
        obj = orjson.loads(rec.value)
        service = rec.key.decode()
        assert service in services
        if rec.kind == "log":
            assert set(obj) == {"@timestamp", "message", "log", "service", "host"}
            assert RFC3339_MS.match(obj["@timestamp"])
            stamp = np.datetime64(obj["@timestamp"][:-1], "ms").astype("int64") / 1000.0
            assert stamp == pytest.approx(rec.timestamp, abs=1e-6)
            assert obj["log"]["level"] in LEVELS
            assert isinstance(obj["message"], str) and obj["message"]
            assert obj["service"] == {"name": service}
            assert obj["host"]["name"] in services[service]
        else:
            assert set(obj) == {"name", "labels", "value", "timestamp"}
            assert obj["name"] in METRICS
            assert obj["labels"]["service"] == service and obj["labels"]["instance"] in services[service]
            assert isinstance(obj["value"], float) and math.isfinite(obj["value"])
            assert obj["timestamp"] == rec.timestamp
    assert kinds["log"] > 1000 and kinds["metric"] > 10000


def test_every_instance_is_scraped_for_every_metric_each_interval():
    recs = [r for r in generate("quiet", START, 1.0, seed=2, volume=0.1, scrape_interval=15.0) if r.kind == "metric"]
    per_series = defaultdict(list)
    for rec in recs:
        obj = orjson.loads(rec.value)
        per_series[(obj["labels"]["instance"], obj["name"])].append(obj["timestamp"])
    hosts = [h for s in FLEET for h in s.hosts]
    assert set(per_series) == {(h, m) for h in hosts for m in METRICS}
    gaps = np.concatenate([np.diff(ts) for ts in per_series.values()])
    # A routine restart may cost a scrape; otherwise every 15 s (give or take the scrape jitter).
    assert np.median(gaps) == pytest.approx(15.0, abs=0.1)
    assert gaps.min() > 14.9


def test_a_default_day_stays_under_300k_records_and_volume_scales_the_logs():
    full = schedule(build_world("quiet", START, 24.0, 0))
    half = schedule(build_world("quiet", START, 24.0, 0, volume=0.5))
    assert 150_000 < len(full) <= 300_000
    logs_full, logs_half = int((full.kinds == 1).sum()), int((half.kinds == 1).sum())
    assert logs_half < 0.7 * logs_full
    assert len(full) - logs_full == len(half) - logs_half  # metric points do not depend on the log volume


def test_timelines_are_ordered_inside_the_run_and_short_runs_are_refused():
    for name, sc in SCENARIOS.items():
        if sc.entity is None:
            assert sc.disruption_start(START, 24.0) is None and sc.customer_visible_start(START, 24.0) is None
            continue
        d, v, e = sc.timeline(START, 24.0)
        assert START + 12 * 3600 <= d < v < e <= START + 24 * 3600, name
        assert sc.entity in {s.name for s in FLEET} and sc.entity not in sc.related
        with pytest.raises(ValueError, match="needs at least"):
            sc.timeline(START, sc.min_hours - 1)


@pytest.mark.parametrize("name", [n for n, s in SCENARIOS.items() if s.entity is not None])
def test_nothing_changes_before_the_disruption_starts(name):
    assert run_of(name).before_digest.digest() == run_of("quiet").before_digest.digest()


def _windows(run: Run):
    d, v, e = run.timeline
    late_precursor = (v - (v - d) / 3, v)
    return d, v, e, late_precursor


def test_memory_leak_climbs_through_the_precursor_then_oom_kills_fail_payments():
    run, quiet = run_of("memory_leak_oom"), run_of("quiet")
    d, v, e, (a, b) = _windows(run)
    mem = "process_resident_memory_bytes"
    assert run.stat("payments", mem, a, b) > 1.25 * quiet.stat("payments", mem, a, b)
    # In its first minutes the leak adds a few percent at most: it has to be found by its slope.
    assert run.stat("payments", mem, d, d + 600) < 1.03 * quiet.stat("payments", mem, d, d + 600)
    assert run.stat("payments", "http_request_error_ratio", v, e, np.max) > 0.1
    assert quiet.stat("payments", "http_request_error_ratio", v, e, np.max) < 0.05
    ooms = run.line_times("OutOfMemoryError", "payments")
    assert ooms and min(ooms) >= v
    full_gcs = run.line_times(r"Pause Full", "payments")
    assert full_gcs and min(full_gcs) >= d
    assert not quiet.line_times("OutOfMemoryError|Pause Full")


def test_dependency_latency_creeps_then_checkout_times_out():
    run, quiet = run_of("dependency_latency_timeouts"), run_of("quiet")
    d, v, e, (a, b) = _windows(run)
    p99 = "http_request_duration_seconds_p99"
    assert run.stat("inventory", p99, a, b) > 2.0 * quiet.stat("inventory", p99, a, b)
    assert run.stat("inventory", p99, d, d + 600) < 1.5 * quiet.stat("inventory", p99, d, d + 600)
    assert run.stat("inventory", "open_connections", v, e) > quiet.stat("inventory", "open_connections", v, e) + 10
    assert run.stat("checkout", "http_request_error_ratio", v + 300, e) > 0.1
    slow = run.line_times(r"update stock s set reserved", "inventory")
    assert slow and min(slow) >= d and any(t < v for t in slow)
    timeouts = run.line_times(r"inventory reserve timed out", "checkout")
    assert timeouts and min(timeouts) >= v


def test_deploy_brings_a_new_exception_template_first_rare_then_a_burst():
    run, quiet = run_of("error_burst_after_deploy"), run_of("quiet")
    d, v, e, _ = _windows(run)
    trace = run.line_times(r"KeyError: 'country_code'", "checkout")
    early = [t for t in trace if t < v]
    assert early and min(trace) >= d
    assert len([t for t in trace if v <= t < e]) > 5 * len(early)
    assert not quiet.line_times(r"KeyError")
    err = "http_request_error_ratio"
    assert run.stat("checkout", err, v + 180, e) > 0.05
    assert quiet.stat("checkout", err, v + 180, e) < 0.01
    versions = run.line_times(r"checkout 3\.8\.0 ready", "checkout")
    assert versions and min(versions) >= d


def test_disk_fills_past_the_watermarks_then_search_fails():
    run, quiet = run_of("disk_filling"), run_of("quiet")
    d, v, e, (a, b) = _windows(run)
    disk = "disk_used_ratio"
    assert run.stat("search", disk, a, b) > quiet.stat("search", disk, a, b) + 0.15
    assert run.stat("search", disk, v, e, np.max) >= 0.95
    assert run.stat("search", "http_request_error_ratio", v + 180, e) > 0.1
    warnings = run.line_times(r"disk watermark \[(85|90)%\] exceeded", "search")
    assert warnings and d < min(warnings) < v
    flood = run.line_times(r"flood stage disk watermark", "search")
    assert flood and min(flood) >= v
    assert not quiet.line_times(r"disk watermark")


def test_upstream_outage_first_thins_then_cuts_the_traffic():
    run, quiet = run_of("traffic_drop_upstream"), run_of("quiet")
    d, v, e, (a, b) = _windows(run)
    rps = "http_requests_per_second"
    assert run.stat("api-gateway", rps, a, b) < 0.92 * quiet.stat("api-gateway", rps, a, b)
    assert run.stat("api-gateway", rps, v + 180, e) < 0.5 * quiet.stat("api-gateway", rps, v + 180, e)
    assert run.stat("search", rps, v + 180, e) < 0.5 * quiet.stat("search", rps, v + 180, e)
    # The requests that fail never arrive: the gateway's own error ratio does not tell.
    assert run.stat("api-gateway", "http_request_error_ratio", v, e) < 0.01
    handshakes = run.line_times(r"SSL_do_handshake\(\) failed", "api-gateway")
    assert handshakes and min(handshakes) >= d and any(t < v for t in handshakes)


def test_certificate_rollout_fails_handshakes_then_logins():
    run, quiet = run_of("cert_auth_failures"), run_of("quiet")
    d, v, e, _ = _windows(run)
    bad = run.line_times(r"tls: bad certificate", "auth")
    early = [t for t in bad if t < v]
    assert early and min(bad) >= d
    assert len([t for t in bad if v <= t < e]) > 10 * len(early)
    rps = "http_requests_per_second"
    assert run.stat("auth", rps, v + 120, e) < 0.6 * quiet.stat("auth", rps, v + 120, e)
    assert run.stat("api-gateway", "http_request_error_ratio", v + 120, e) > 0.03
    assert not quiet.line_times(r"bad certificate|certificate verify")


def test_the_quiet_day_has_no_incident():
    quiet = run_of("quiet")
    assert quiet.scenario.entity is None and quiet.timeline is None
    by_service = defaultdict(list)
    for (service, metric, _), pts in quiet.metrics.items():
        if metric == "http_request_error_ratio":
            by_service[service].extend(v for _, v in pts)
    limits = {s.name: s.memory_limit_bytes for s in FLEET}
    for service, ratios in by_service.items():
        # Benign blips exist, but no service fails more than 5% of its requests for more than a few scrapes.
        assert np.mean(np.array(ratios) > 0.05) < 0.005, service
        assert quiet.stat(service, "process_resident_memory_bytes", START, START + HOURS * 3600, np.max) < 0.8 * limits[service]
        assert quiet.stat(service, "disk_used_ratio", START, START + HOURS * 3600, np.max) < 0.8
    assert not quiet.line_times(r"OutOfMemoryError|Traceback|flood stage|bad certificate|Connection is not available")


def test_logs_mix_many_templates_with_warnings_and_background_jobs():
    quiet = run_of("quiet")
    levels = defaultdict(int)
    shapes = set()
    for _, service, level, message in quiet.lines:
        levels[level] += 1
        # A crude template: digits, hex ids and quoted values masked.
        shapes.add((service, re.sub(r'"[^"]*"|\b[0-9a-f]{8,}\b|[\d.]+', "*", message)[:60]))
    total = sum(levels.values())
    assert levels["info"] > 0.8 * total
    assert 0.005 * total < levels["warn"] < 0.1 * total
    assert 0 < levels["error"] < 0.05 * total
    assert len(shapes) > 40
    assert quiet.line_times(r"\[gc\] GC\(\d+\) Pause Young") and quiet.line_times(r"cart cleanup job removed")
