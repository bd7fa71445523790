"""The shipped Prometheus rules and example config: valid for promtool, unit-tested with promtool, and
over metrics the service really exports; the service's real /metrics passes `promtool check metrics`."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from detector.broker import free_port
from tests.exported_metrics import exported_names, queried_names, service_exposition
from tests.kafka_helpers import RunningService, ecs_line, metric_point, pipeline_spec, produce, scrape

PROMETHEUS = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


def with_alertmanager(spec, url: str, resend_seconds: float = 60.0):
    """The spec with incidents pushed to ``url`` (nothing need listen there)."""
    from detector.config import AlertmanagerSink

    sinks = spec.sinks.model_copy(update={"alertmanager": AlertmanagerSink(url=url, resend_seconds=resend_seconds)})
    return spec.model_copy(update={"sinks": sinks})


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool not found: run scripts/setup.sh"
    return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, timeout=120)


def test_shipped_rules_pass_promtool_check():
    done = promtool("check", "rules", str(PROMETHEUS / "rules.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_shipped_rules_pass_their_promtool_unit_tests():
    done = promtool("test", "rules", str(PROMETHEUS / "rules_test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_example_prometheus_config_is_valid_and_loads_the_rules():
    done = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rules.yml" in done.stdout


def test_every_alert_has_severity_summary_description_and_runbook():
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 8
    for rule in alerts:
        assert rule["labels"].get("severity") in ("warning", "critical") or "severity" in rule["expr"], rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
    assert all("for" in r for r in alerts if r["alert"] != "OutageDetectorAlertmanagerDroppedIncidents")


def test_no_alert_the_pushed_incident_mutes_outlives_it():
    # The pushed OutageDetectorIncident resolves the moment its incident ends: an alert it mutes that
    # kept firing after its own series ended (keep_firing_for) would then be delivered un-inhibited,
    # for an incident already over.
    import re

    config = yaml.safe_load((PROMETHEUS.parent / "alertmanager" / "alertmanager.yml").read_text())
    muted = [rule["target_matchers"] for rule in config["inhibit_rules"]
             if 'alertname="OutageDetectorIncident"' in rule["source_matchers"]]
    assert muted
    names = set()
    for matchers in muted:
        for m in matchers:
            name, op, value = re.fullmatch(r'(\w+)\s*(=~|=)\s*"(.*)"', m).groups()
            assert name == "alertname"
            names.update(value.split("|") if op == "=~" else [value])
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    assert names <= set(rules)
    assert not [name for name in names if "keep_firing_for" in rules[name]]


def test_rules_query_only_metrics_the_service_exports(tmp_path):
    names = exported_names(service_exposition(tmp_path))
    queried = queried_names((PROMETHEUS / "rules.yml").read_text())
    assert queried and queried <= names, sorted(queried - names)


def test_exposition_of_every_metric_passes_promtool_check_metrics(tmp_path):
    done = promtool("check", "metrics", stdin=service_exposition(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.integration
def test_real_metrics_endpoint_of_a_running_service_passes_promtool_check_metrics(broker, tmp_path):
    port = free_port()
    spec = with_alertmanager(pipeline_spec(broker.bootstrap_servers, tmp_path, port=port), f"http://127.0.0.1:{free_port()}")
    t0 = 1_700_000_000.0
    logs = [(b"checkout", ecs_line(t0 + i, "checkout", f"GET /api/items/{i} 200")) for i in range(300)]
    metrics = [(b"checkout", metric_point(t0 + 15 * i, "checkout", "latency_ms", 100.0 + i % 7)) for i in range(100)]
    n = sum(produce(broker.bootstrap_servers, spec.inputs[0].topic, logs + [(b"x", b"{bad")]).values())
    n += sum(produce(broker.bootstrap_servers, spec.inputs[1].topic, metrics).values())
    with RunningService(spec) as running:
        deadline = time.monotonic() + 60
        while running.pipeline.consumed.total() < n and time.monotonic() < deadline:
            time.sleep(0.1)
        body = scrape(f"http://127.0.0.1:{port}/metrics")
    assert "outage_detector_anomaly_score{" in body and "outage_detector_records_dead_lettered_total{" in body
    done = promtool("check", "metrics", stdin=body)
    assert done.returncode == 0, done.stdout + done.stderr
