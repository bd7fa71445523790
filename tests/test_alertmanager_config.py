"""The shipped Alertmanager example config: valid for amtool, and with a real Alertmanager a pushed
incident reaches the receiver with its evidence, resolves, and mutes entity-level alerts."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from detector.config import AlertmanagerSink
from detector.incidents import IncidentEvent
from detector.sinks.alertmanager import AlertmanagerPusher, rfc3339
from tests.test_alertmanager_push import T0, snapshot, wait_until

CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "alertmanager" / "alertmanager.yml"


def test_shipped_alertmanager_config_passes_amtool():
    amtool = shutil.which("amtool")
    assert amtool, "amtool not found: run scripts/setup.sh"
    done = subprocess.run([amtool, "check-config", str(CONFIG)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.integration
def test_a_pushed_incident_reaches_the_receiver_resolves_and_mutes_entity_alerts(alertmanager, webhook):
    pusher = AlertmanagerPusher(AlertmanagerSink(url=alertmanager.url, resend_seconds=30)).start()
    try:
        pusher.emit([IncidentEvent("opened", T0, snapshot(severity="critical", kinds=("log", "metric")))])
        firing = webhook.wait_for(lambda a: a["labels"].get("alertname") == "OutageDetectorIncident"
                                  and a["status"] == "firing", timeout=30)
        assert firing is not None, alertmanager.log()
        alert = firing[1]
        assert alert["labels"]["service"] == "checkout" and alert["labels"]["severity"] == "critical"
        assert "payment gateway timeout after 30000 ms" in alert["annotations"]["description"]
        assert alert["annotations"]["runbook_url"] == "https://runbooks.example/incident"

        # An entity-level alert about the same service, as the shipped Prometheus rules would send it.
        now = time.time()
        rule_alert = [{"labels": {"alertname": "OutageDetectorAnomaly", "entity": "checkout", "service": "checkout",
                                  "signal": "latency_ms", "severity": "warning"},
                       "annotations": {"summary": "latency anomalous"}, "startsAt": rfc3339(now),
                       "endsAt": rfc3339(now + 300)}]
        req = urllib.request.Request(alertmanager.url + "/api/v2/alerts", data=json.dumps(rule_alert).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()
        listed = alertmanager.get_json("/api/v2/alerts")
        anomaly = next(a for a in listed if a["labels"]["alertname"] == "OutageDetectorAnomaly")
        assert anomaly["status"]["state"] == "suppressed" and anomaly["status"]["inhibitedBy"]
        muted = webhook.alerts()

        pusher.emit([IncidentEvent("resolved", T0 + 600, snapshot(severity="critical", kinds=("log", "metric"), end=T0 + 300))])
        resolved = webhook.wait_for(lambda a: a["labels"].get("alertname") == "OutageDetectorIncident"
                                    and a["status"] == "resolved", timeout=30)
        assert resolved is not None, alertmanager.log()
    finally:
        pusher.close()
    assert not [a for _, a in muted if a["labels"]["alertname"] == "OutageDetectorAnomaly"]
    # Once the incident is over the entity-level alert is no longer muted.
    assert webhook.wait_for(lambda a: a["labels"]["alertname"] == "OutageDetectorAnomaly", timeout=30)


@pytest.mark.integration
def test_an_incident_that_ended_before_it_could_be_pushed_still_notifies_then_resolves(alertmanager, webhook):
    # Opened and resolved before the first push, as while Alertmanager is down or on a backlog.
    pusher = AlertmanagerPusher(AlertmanagerSink(url=alertmanager.url, resend_seconds=3))
    pusher.emit([IncidentEvent("opened", T0, snapshot(iid="gone", entity="payments")),
                 IncidentEvent("resolved", T0 + 600, snapshot(iid="gone", entity="payments", end=T0 + 300))])
    pusher.start()
    def ours(status):
        return lambda a: (a["labels"].get("alertname") == "OutageDetectorIncident"
                          and a["labels"]["service"] == "payments" and a["status"] == status)

    try:
        assert webhook.wait_for(ours("firing"), timeout=30) is not None, alertmanager.log()
        assert webhook.wait_for(ours("resolved"), timeout=30) is not None, alertmanager.log()
        assert wait_until(lambda: pusher.pending() == 0)
    finally:
        pusher.close()


@pytest.mark.integration
def test_an_alertmanager_behind_https_and_basic_auth_receives_the_push(secured_alertmanager, webhook):
    from tests.conftest import SECURED_PASSWORD, SECURED_USER

    pusher = AlertmanagerPusher(AlertmanagerSink(url=secured_alertmanager.url, username=SECURED_USER,
                                                 password=SECURED_PASSWORD, ca_file=secured_alertmanager.ca_file,
                                                 resend_seconds=30)).start()
    try:
        pusher.emit([IncidentEvent("opened", T0, snapshot())])
        firing = webhook.wait_for(lambda a: a["labels"].get("alertname") == "OutageDetectorIncident"
                                  and a["status"] == "firing", timeout=30)
        assert firing is not None, secured_alertmanager.log()
        assert firing[1]["labels"]["service"] == "checkout"
    finally:
        pusher.close()


@pytest.mark.integration
def test_a_push_refused_for_its_credentials_is_kept_and_retried_not_dropped(secured_alertmanager, caplog):
    from tests.conftest import SECURED_USER

    pusher = AlertmanagerPusher(AlertmanagerSink(url=secured_alertmanager.url, username=SECURED_USER,
                                                 password="wrong", ca_file=secured_alertmanager.ca_file,
                                                 max_backoff_seconds=0.5)).start()
    try:
        pusher.emit([IncidentEvent("opened", T0, snapshot())])
        assert wait_until(lambda: pusher.pushes_failed >= 2), "the refused push was not retried"
        assert pusher.pending() == 1 and pusher.dropped == 0
    finally:
        pusher.close()
    assert "HTTP 401: check sinks.alertmanager.username and password" in caplog.text
    assert not [a for a in secured_alertmanager.get_json("/api/v2/alerts")
                if a["labels"]["alertname"] == "OutageDetectorIncident"]
