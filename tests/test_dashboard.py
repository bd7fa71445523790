"""The shipped Grafana dashboard queries only metrics the service exports, in valid PromQL, and covers
incidents, anomalies and pipeline health."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.exported_metrics import exported_names, queried_names, service_exposition
from tests.test_prometheus_rules import promtool

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "outage-detector.json"

# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "$entity": ".*", "$series": ".*"}


def _panels(items):
    for p in items:
        yield p
        yield from _panels(p.get("panels", []))


def queries(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets", []) if t.get("expr")]
    exprs += [a["expr"] for a in dashboard.get("annotations", {}).get("list", []) if a.get("expr")]
    for var in dashboard.get("templating", {}).get("list", []):
        q = var.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if var.get("type") == "query" and q:
            exprs.append(q)
    return exprs


def promql(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    m = re.fullmatch(r"label_values\((.*),\s*\w+\)", expr.strip())
    return m.group(1) if m else expr  # label_values(selector, label): the selector is PromQL


def test_dashboard_queries_only_metrics_the_service_exports(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    queried = set().union(*(queried_names(q) for q in queries(dashboard)))
    exported = exported_names(service_exposition(tmp_path))
    assert queried - exported == set()
    # Incidents, anomalies and pipeline health are all on it.
    for name in ("outage_detector_incident_open", "outage_detector_anomaly_confidence_ratio",
                 "outage_detector_anomaly_score", "outage_detector_expected_lower", "outage_detector_expected_upper",
                 "outage_detector_records_consumed_total", "outage_detector_records_dead_lettered_total",
                 "outage_detector_consumer_lag_records", "outage_detector_batch_processing_seconds_bucket",
                 "outage_detector_series_held", "outage_detector_templates_held", "outage_detector_checkpoint_age_seconds",
                 # What the pipeline runbook (docs/alerting.md) tells the on-call to look at.
                 "outage_detector_checkpoint_failures_total", "outage_detector_kafka_up",
                 "outage_detector_model_reload_last_successful"):
        assert name in queried, name


def test_every_dashboard_query_is_valid_promql(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [promql(q) for q in queries(dashboard)]
    # promtool validates PromQL in rule files: one recording rule per query.
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": e}
                                                         for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(rules))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(exprs)} rules found" in done.stdout


def test_every_panel_has_a_query_on_the_dashboard_datasource():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    assert panels
    for p in panels:
        assert p["targets"], p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]


def test_the_band_panel_plots_the_observed_series_against_the_expected_band():
    # The OutageDetectorAnomaly alert tells the on-call to compare the band with the observed series
    # on this dashboard: both must be on one panel, with the same series selection.
    dashboard = json.loads(DASHBOARD.read_text())
    band = next(p for p in _panels(dashboard["panels"])
                if any("outage_detector_expected_lower" in t.get("expr", "") for t in p.get("targets", [])))
    exprs = {next(iter(queried_names(t["expr"]))): t["expr"] for t in band["targets"]}
    assert {"outage_detector_observed_value", "outage_detector_expected_lower", "outage_detector_expected_upper",
            "outage_detector_expected_value"} <= set(exprs)
    selector = exprs["outage_detector_expected_lower"].split("{", 1)[1]
    assert exprs["outage_detector_observed_value"].split("{", 1)[1] == selector
    assert "observed" in band["description"] and "Overlay the series itself" not in band["description"]


def test_the_band_renders_between_the_lower_and_upper_fields():
    # fillBelowTo names a field by its display name: it must be one the panel has, or nothing is filled.
    # The panel repeats per series, so each copy has one field per query, named by its legend.
    dashboard = json.loads(DASHBOARD.read_text())
    band = next(p for p in _panels(dashboard["panels"])
                if any("outage_detector_expected_lower" in t.get("expr", "") for t in p.get("targets", [])))
    legends = {t["legendFormat"] for t in band["targets"]}
    fills = [(o["matcher"], prop["value"]) for o in band["fieldConfig"]["overrides"] for prop in o["properties"]
             if prop["id"] == "custom.fillBelowTo"]
    assert fills, "no band fill"
    for matcher, below in fills:
        assert matcher["id"] == "byName" and matcher["options"] in legends and below in legends
        assert "{{" not in matcher["options"] + below
    assert band["repeat"] == "series"
    series = next(v for v in dashboard["templating"]["list"] if v["name"] == "series")
    assert not series.get("includeAll")  # "All" would be a panel per series exported, thousands of them
