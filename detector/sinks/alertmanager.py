"""Direct push of incidents to Alertmanager's ``/api/v2/alerts``.

The processing loop only hands incident events to ``emit``, which records the newest state of each
incident and returns; a background thread does the HTTP. That thread re-sends every active incident
each ``resend_seconds`` of wall time with ``endsAt`` a few resend periods ahead (so Alertmanager
resolves it by itself if this service dies), and sends a resolved incident once with ``endsAt`` set
to now. When Alertmanager is down, pushes are retried with exponential backoff and the states wait
in a bounded map keyed by incident: only the newest state of each incident is kept, so when
Alertmanager is back it receives what is true now, not the history. An incident that ended before
Alertmanager ever received it firing is sent firing, then resolved one resend period later:
Alertmanager notifies nobody about an alert it only ever sees resolved. If more incidents than
``max_pending`` wait at once, the oldest resolved ones that Alertmanager has seen firing are dropped
first (it ends those by their last ``endsAt`` anyway), then the oldest other resolved ones, then the
oldest active ones; every drop is counted. The ended incidents still waiting are saved with the
service's checkpoint (``owed``) and taken back at start-up (``restore``), so a restart while
Alertmanager is down loses none of them.

Alert labels identify an alert to Alertmanager, so a change of severity or of the signal kinds of an
incident resolves the alert under its old labels and fires it under the new ones.
"""

from __future__ import annotations

import base64
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from datetime import datetime, timezone

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from detector.config import AlertmanagerSink as AlertmanagerSettings
from detector.incidents import IncidentEvent, IncidentSnapshot, describe, summary

log = logging.getLogger(__name__)

ALERTNAME = "OutageDetectorIncident"
P = "outage_detector_alertmanager_"


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_labels(inc: IncidentSnapshot) -> dict[str, str]:
    # entity and service are the same value: routes group by service, inhibition matches on entity.
    return {"alertname": ALERTNAME, "service": inc.entity, "entity": inc.entity, "severity": inc.severity,
            "signal_kinds": ",".join(inc.kinds)}


def alert_annotations(inc: IncidentSnapshot) -> dict[str, str]:
    return {
        "summary": summary(inc),
        "description": describe(inc),
        "runbook_url": inc.runbook_url,
        "incident_id": inc.id,
        "started": rfc3339(inc.start),
        "confidence": f"{inc.confidence:.4f}",
        "signals": ",".join(s["signal"] for s in inc.signals),
    }


class _Entry:
    __slots__ = ("snapshot", "resolved", "version", "sent_version", "last_sent", "labels", "stale", "shown",
                 "hold_until")

    def __init__(self) -> None:
        self.snapshot: IncidentSnapshot | None = None
        self.resolved = False
        self.version = 0  # bumped by every emit; the sender compares it to what it delivered
        self.sent_version = -1
        self.last_sent = float("-inf")  # monotonic time of the last delivery
        self.labels: dict[str, str] | None = None  # labels Alertmanager knows this incident by
        self.stale: list[dict[str, str]] = []  # older label sets still to be resolved
        self.shown = False  # Alertmanager has received this incident as firing
        self.hold_until = float("-inf")  # monotonic time before which its resolved state must wait


class AlertmanagerPusher:
    def __init__(self, settings: AlertmanagerSettings, registry: CollectorRegistry | None = None):
        if not settings.url:
            raise ValueError("sinks.alertmanager.url is not set")
        self.settings = settings
        self.endpoint = settings.url.rstrip("/") + "/api/v2/alerts"
        self._headers = {"Content-Type": "application/json"}
        if settings.username is not None:
            # Sent with every push rather than after a 401 challenge: one round trip per push.
            pair = f"{settings.username}:{settings.password.get_secret_value()}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self._tls = ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else None
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="alertmanager-push", daemon=True)
        self.pushes_ok = 0
        self.pushes_failed = 0
        self.alerts_sent = 0
        self.dropped = 0
        self.backoff = 0.0  # seconds until the next retry while Alertmanager is unreachable
        if registry is not None:
            registry.register(_PusherCollector(self))

    # -- called by the processing loop: never blocks on the network ---------------------------

    def emit(self, events: list[IncidentEvent]) -> None:
        if not events:
            return
        with self._cond:
            for ev in events:
                self._put(ev.incident, ev.kind == "resolved")
            self._cond.notify()

    def pending(self) -> int:
        """Incidents whose newest state has not reached Alertmanager yet."""
        with self._cond:
            return sum(1 for e in self._entries.values() if e.version != e.sent_version or e.stale)

    # -- across a restart: open incidents come back from the incident tracker, ended ones from here --

    def owed(self) -> list[tuple[IncidentSnapshot, bool]]:
        """Each ended incident whose end Alertmanager has not received, and whether it was shown firing."""
        now = time.monotonic()
        with self._cond:
            # One still held after its firing push may not have been notified yet (group wait): it goes
            # out firing again after the restart.
            return [(e.snapshot, e.shown and e.hold_until <= now) for e in self._entries.values()
                    if e.resolved and e.version != e.sent_version]

    def restore(self, owed: list[tuple[IncidentSnapshot, bool]]) -> None:
        """Take back what ``owed`` returned before a restart; delivered like any waiting state."""
        with self._cond:
            for inc, shown in owed:
                self._put(inc, resolved=True).shown = shown
            self._cond.notify()

    def _put(self, inc: IncidentSnapshot, resolved: bool) -> _Entry:
        # Called under the lock: the incident's newest state replaces what was waiting.
        entry = self._entries.get(inc.id)
        if entry is None:
            entry = self._entries[inc.id] = _Entry()
            self._bound()
        entry.snapshot = inc
        entry.resolved = resolved
        entry.version += 1
        return entry

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "AlertmanagerPusher":
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread after one last attempt to deliver what changed."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the sender thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    wait = self._next_due(time.monotonic())
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                stopping = self._stop
                batch = self._collect(time.monotonic(), changed_only=stopping)
            if batch:
                self._deliver(batch)
            if stopping:
                return
            if self.backoff > 0:
                with self._cond:
                    # Sleep through the backoff unless asked to stop; new events need not wake us,
                    # they will go with the retry.
                    deadline = time.monotonic() + self.backoff
                    while not self._stop and time.monotonic() < deadline:
                        self._cond.wait(deadline - time.monotonic())

    def _next_due(self, now: float) -> float:
        """Seconds until something must be sent (0: now)."""
        resend = self.settings.resend_seconds
        wait = resend
        for e in self._entries.values():
            if e.hold_until > now:
                wait = min(wait, e.hold_until - now)
            elif e.version != e.sent_version or e.stale:
                return 0.0
            elif not e.resolved:
                wait = min(wait, e.last_sent + resend - now)
        return wait

    def _collect(self, now: float, changed_only: bool = False) -> list[tuple[str, int, list[dict], bool]]:
        """(incident id, version, alerts, sent as firing) for every incident due; called under the lock."""
        resend = self.settings.resend_seconds
        wall = time.time()
        out = []
        for iid, e in self._entries.items():
            changed = e.version != e.sent_version or bool(e.stale)
            if not changed and (changed_only or e.resolved or now - e.last_sent < resend):
                continue
            if e.hold_until > now:
                continue
            inc = e.snapshot
            labels = alert_labels(inc)
            if e.labels is not None and labels != e.labels and e.labels not in e.stale:
                e.stale.append(e.labels)
            e.labels = labels
            # Alertmanager notifies nobody about an alert it only ever sees resolved: an incident that
            # ended before it could be pushed (Alertmanager down, a backlog) goes out firing first.
            firing = not e.resolved or not e.shown
            starts = rfc3339(min(inc.start, wall))
            ends = rfc3339(wall + 3 * resend if firing else wall)
            annotations = alert_annotations(inc)
            alerts = [{"labels": labels, "annotations": annotations, "startsAt": starts, "endsAt": ends}]
            alerts += [{"labels": old, "annotations": annotations, "startsAt": starts, "endsAt": rfc3339(wall)}
                       for old in e.stale]
            out.append((iid, e.version, alerts, firing))
        return out

    def _deliver(self, batch: list[tuple[str, int, list[dict], bool]]) -> None:
        body = orjson.dumps([a for _, _, alerts, _ in batch for a in alerts])
        req = urllib.request.Request(self.endpoint, data=body, method="POST", headers=self._headers)
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout_seconds, context=self._tls) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                # The alerts are fine, the credentials are not: they wait and are retried, so fixing
                # sinks.alertmanager.username/password (and restarting) delivers them.
                self._failed(f"HTTP {exc.code}: check sinks.alertmanager.username and password", level=logging.ERROR)
                return
            if 400 <= exc.code < 500 and exc.code != 429:
                # Alertmanager refused these alerts as invalid: sending them again cannot help.
                log.error("Alertmanager rejected %d alert(s) with HTTP %d: %s", len(batch), exc.code,
                          exc.read()[:300].decode("utf-8", "replace"))
                self._done(batch, delivered=False)
                return
            self._failed(f"HTTP {exc.code}")
            return
        except (OSError, ValueError) as exc:  # URLError, timeouts and refused connections are OSErrors
            self._failed(str(getattr(exc, "reason", exc)))
            return
        self._done(batch, delivered=True)

    def _failed(self, why: str, level: int = logging.WARNING) -> None:
        with self._cond:
            self.pushes_failed += 1
            first = self.backoff == 0
            self.backoff = min(self.settings.max_backoff_seconds, max(0.5, 2 * self.backoff))
        if first:
            log.log(level, "push to Alertmanager at %s failed (%s); retrying with backoff, newest incident states "
                    "kept", self.endpoint, why)

    def _done(self, batch, delivered: bool) -> None:
        now = time.monotonic()
        with self._cond:
            if delivered:
                if self.backoff:
                    log.info("Alertmanager at %s reachable again", self.endpoint)
                self.pushes_ok += 1
                self.alerts_sent += sum(len(alerts) for _, _, alerts, _ in batch)
            else:
                self.dropped += len(batch)
            self.backoff = 0.0
            for iid, version, _, firing in batch:
                e = self._entries.get(iid)
                if e is None:
                    continue
                e.stale.clear()
                e.last_sent = now
                if delivered and firing:
                    e.shown = True
                if e.version == version:
                    if delivered and firing and e.resolved:
                        # Sent firing although over: the resolved state follows one resend period
                        # later, after Alertmanager's group wait has let it notify.
                        e.hold_until = now + self.settings.resend_seconds
                        continue
                    e.sent_version = version
                    if e.resolved:
                        del self._entries[iid]

    def _bound(self) -> None:
        # Called under the lock after adding an entry.
        while len(self._entries) > self.settings.max_pending:
            # First what Alertmanager already has and ends by its last endsAt, then what is over.
            victim = next((k for k, e in self._entries.items() if e.resolved and e.shown), None)
            if victim is None:
                victim = next((k for k, e in self._entries.items() if e.resolved), next(iter(self._entries)))
            del self._entries[victim]
            self.dropped += 1
            log.warning("more than %d incidents waiting for Alertmanager: dropped the state of %s",
                        self.settings.max_pending, victim)


class _PusherCollector(Collector):
    def __init__(self, pusher: AlertmanagerPusher):
        self.pusher = pusher

    def collect(self):
        p = self.pusher
        pushes = CounterMetricFamily(P + "pushes", "Pushes to Alertmanager's /api/v2/alerts, by outcome.", labels=["outcome"])
        pushes.add_metric(["success"], p.pushes_ok)
        pushes.add_metric(["failure"], p.pushes_failed)
        yield pushes
        yield CounterMetricFamily(P + "alerts_sent", "Alerts delivered to Alertmanager (re-sends included).",
                                  value=p.alerts_sent)
        yield CounterMetricFamily(P + "alerts_dropped",
                                  "Incident states dropped undelivered: over max_pending, or rejected as invalid.",
                                  value=p.dropped)
        yield GaugeMetricFamily(P + "pending_incidents", "Incidents whose newest state has not reached Alertmanager.",
                                value=p.pending())
