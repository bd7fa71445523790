"""Incidents: the anomalous signals of one entity, across logs and metrics, grouped into one page.

Each score is first checked against absolute floors (``IncidentSettings``): a confident score is not
enough, the signal must also show a real change (a log template at least ``min_log_lines`` off its
expected count, an error surplus of that many lines, a metric outside its expected band and far
enough from the expected value). A score that passes is *hot*. A signal (entity, signal, series)
becomes active after ``fire_after`` consecutive hot evaluations, and the first active signal of an
entity opens an incident whose start is when that signal's hot run began. Any signal of the entity
that becomes active while the incident is open joins it. The incident resolves once none of its
signals has been hot for ``incident_window_seconds`` of the entity's event time (twice that of the
newest event time anywhere, for an entity that fell silent), and only once every input stream that
may still hold older records has been read that far (``observe``'s ``stream_time``): while the
service catches up, one topic can run hours ahead of another, and the signals of the lagging one
would otherwise come after their incident had ended. A signal that becomes active again after that
opens a new incident, so a flapping signal keeps one incident open rather than paging again and
again.

The id is derived from the entity, the start and the event time the incident opened at, all from
event time, so a replay of the same records gives the same incidents with the same ids; the opening
time tells apart incidents of one entity whose first signal is the same (a new error template that
comes back after its incident resolved counts from its first line each time). Nothing here reads
the wall clock.

New templates never open an incident on their own (a deploy brings many); they are listed as
evidence of an incident that is open.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

from detector.alerting import still_anomalous
from detector.config import AlertingSettings, IncidentSettings
from detector.logs.model import SIGNALS as LOG_SIGNALS
from detector.records import Score

SUPPORTING_ONLY = frozenset({"log_new_template"})
# Signals that open an incident only together with a second active signal of the same entity.
CORROBORATED = frozenset({"metric_drift"})


def incident_id(entity: str, start: float, opened: float) -> str:
    """Stable id: the same entity, event-time start and opening time always give the same id. Two
    incidents of one entity can share a start, not an opening: the second opens after the first
    resolved."""
    return hashlib.sha256(f"{entity}\x00{start:.3f}\x00{opened:.3f}".encode()).hexdigest()[:16]


def signal_kind(s: Score) -> str:
    # By the log model's own signal names, not by a prefix: a metric may be called log_lines_per_s
    # (an Influx measurement "log"). Both kinds name a series (a log score its input topic).
    return "log" if s.signal in LOG_SIGNALS else "metric"


@dataclass(frozen=True)
class IncidentSnapshot:
    """An incident as it stood at one event; safe to hand to another thread."""

    id: str
    entity: str
    severity: str  # "warning" | "critical"
    confidence: float
    start: float  # event time the first signal's hot run began
    end: float | None  # event time it resolved, None while open
    signals: tuple[dict, ...]  # {signal, kind, started, confidence, last_hot, detail}
    templates: tuple[dict, ...]  # {template, example, count, expected, signal}
    series: tuple[dict, ...]  # {series, observed, expected, lower, upper, at}
    runbook_url: str = ""  # incidents.runbook_url when the snapshot was taken (it can change while running)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted({s["kind"] for s in self.signals}))


class IncidentEvent(NamedTuple):
    kind: str  # "opened" | "updated" | "resolved"
    timestamp: float  # event time of the evaluation that caused it
    incident: IncidentSnapshot


class _Key:
    __slots__ = ("hot_run", "quiet_run", "active", "since", "last", "peak")

    def __init__(self) -> None:
        self.hot_run = 0
        self.quiet_run = 0
        self.active = False
        self.since = 0.0
        self.last: Score | None = None  # the latest hot score, for joining an incident another opened
        # The hot run's highest confidence: the run goes on below the threshold (sustain_confidence),
        # so the latest score can be lower than what the signal reached.
        self.peak = 0.0


class _Incident:
    def __init__(self, entity: str, start: float, opened: float):
        self.id = incident_id(entity, start, opened)
        self.entity = entity
        self.start = start
        self.last_hot = start
        self.now = opened  # newest event time among this entity's scores
        self.severity = "warning"
        self.signals: dict[str, dict] = {}
        self.templates: dict[str, dict] = {}
        self.series: dict[str, dict] = {}
        self.keys: set[tuple[str, str, str]] = set()

    def confidence(self) -> float:
        # Noisy-or over distinct signals: corroboration by a second signal raises it.
        miss = 1.0
        for s in self.signals.values():
            miss *= 1.0 - min(1.0, max(0.0, s["confidence"]))
        return 1.0 - miss

    def snapshot(self, settings: IncidentSettings, end: float | None = None) -> IncidentSnapshot:
        templates = sorted(self.templates.values(), key=_template_weight, reverse=True)[: settings.evidence_templates]
        series = sorted(self.series.values(), key=_series_weight, reverse=True)[: settings.evidence_series]
        return IncidentSnapshot(
            self.id, self.entity, self.severity, self.confidence(), self.start, end,
            tuple(dict(s) for s in sorted(self.signals.values(), key=lambda s: (s["started"], s["signal"]))),
            tuple(dict(t) for t in templates), tuple(dict(s) for s in series), settings.runbook_url,
        )


def _template_weight(t: dict) -> float:
    return abs(t["count"] - t["expected"])


def _series_weight(s: dict) -> float:
    width = abs(s["upper"] - s["lower"]) if s.get("upper") is not None and s.get("lower") is not None else 0.0
    return abs(s["observed"] - s["expected"]) / max(width, 1e-12) if s.get("expected") is not None else 0.0


class IncidentTracker:
    def __init__(self, alerting: AlertingSettings, settings: IncidentSettings):
        self.alerting = alerting
        self.settings = settings
        self._keys: OrderedDict[tuple[str, str, str], _Key] = OrderedDict()
        self._open: dict[str, _Incident] = {}
        self.now = float("-inf")  # newest event time seen in any score
        self.opened: Counter[str] = Counter()  # by severity at opening
        self.resolved = 0
        self.below_floor = 0  # confident scores that did not pass the floors
        self.evictions = 0

    # No open incident can resolve before the newest event time reaches ``_due`` (for an incident window
    # of ``_due_window``): observe, called for every record, skips the check until then.
    _due = float("-inf")
    _due_window: float | None = None

    # -- per record ------------------------------------------------------------------------------

    def observe(self, scores: list, stream_time: float = float("inf")) -> list[IncidentEvent]:
        """Judge scores in the order they came. ``stream_time`` is the event time up to which every input
        stream that may still hold older records has been read (the pipeline's lowest partition
        watermark): no incident resolves on time those streams have not reached yet. Infinite when none
        lags behind the scores (live, in step; the end of a replay). The pipeline hands the scores of a
        whole batch at once, each record's followed by the stream time after it (a float): updates and
        resolutions are judged after each record, as if each came in its own call."""
        if not self.settings.enabled:
            return []
        events: list[IncidentEvent] = []
        changed: dict[str, _Incident] = {}
        threshold = self.alerting.confidence_threshold
        sustain = self.alerting.sustain
        for s in scores:
            if s.__class__ is float:  # the end of a record: the stream time after it
                if changed or self._open:
                    events.extend(self._record_judged(changed, s))
                    changed.clear()
                continue
            if s.timestamp > self.now:
                self.now = s.timestamp
            key = (s.entity, s.signal, s.series)
            st = self._keys.get(key)
            # A hot run goes on below the threshold (see still_anomalous): whether a step lasts
            # min_duration_seconds must not depend on how many points a minute its series has.
            confident = s.confidence >= threshold or (
                st is not None and st.hot_run > 0 and still_anomalous(s, st.last.evidence, sustain))
            inc = self._open.get(s.entity)
            if inc is not None and s.timestamp > inc.now:
                inc.now = s.timestamp
            if s.signal in SUPPORTING_ONLY:
                if confident and inc is not None:
                    self._add_evidence(inc, s)
                continue
            hot = confident and self._passes_floor(s)
            if confident and not hot:
                self.below_floor += 1
            if st is None:
                if not hot:
                    continue  # nothing to remember about a quiet signal
                st = self._new_key(key)
            if not hot:
                st.hot_run = 0
                st.quiet_run += 1
                if st.quiet_run >= self.alerting.resolve_after:
                    st.active = False
                    if inc is None or key not in inc.keys:
                        del self._keys[key]
                continue
            if st.hot_run == 0:
                st.since = _hot_since(s)
                st.peak = s.confidence
            elif s.confidence > getattr(st, "peak", 0.0):  # a key saved before runs had a peak has none
                st.peak = s.confidence
            st.hot_run += 1
            st.quiet_run = 0
            if not st.active and st.hot_run >= self.alerting.fire_after and \
                    s.timestamp - st.since >= self._min_duration(s.signal):
                st.active = True
            st.last = s
            if not st.active:
                if inc is not None and key in inc.keys:
                    self._record_hot(inc, s)  # a signal of the incident heating up again keeps it open
                continue
            if inc is None:
                opening = self._opening_keys(s.entity, key)
                if opening is None:
                    continue  # a drift alone: active, waiting for a second signal to agree
                since = min(self._keys[k].since for k in opening)
                inc = self._open[s.entity] = _Incident(s.entity, since, s.timestamp)
                self._due = float("-inf")  # checked at the end of this record
                for k in opening:
                    self._join(inc, k, self._keys[k], self._keys[k].last)
                self.opened[inc.severity] += 1
                events.append(IncidentEvent("opened", s.timestamp, inc.snapshot(self.settings)))
                continue
            if key not in inc.keys:
                if self._join(inc, key, st, s):
                    changed[inc.id] = inc
            else:
                self._record_hot(inc, s)
        if not scores or scores[-1].__class__ is not float:
            events.extend(self._record_judged(changed, stream_time))
        return events

    def _record_judged(self, changed: dict[str, "_Incident"], stream_time: float) -> list[IncidentEvent]:
        """The updates of the incidents a record's scores changed, and the incidents now resolved."""
        events = [IncidentEvent("updated", self.now, inc.snapshot(self.settings))
                  for inc in changed.values() if self._open.get(inc.entity) is inc]
        if self._open:
            events.extend(self._resolve_quiet(stream_time))
        return events

    def open_incidents(self) -> list[IncidentSnapshot]:
        return [inc.snapshot(self.settings) for inc in self._open.values()]

    def _min_duration(self, signal: str) -> float:
        if signal in CORROBORATED:
            return max(self.settings.min_duration_seconds, self.settings.drift_min_duration_seconds)
        return self.settings.min_duration_seconds

    def _opening_keys(self, entity: str, key: tuple[str, str, str]) -> list | None:
        """The active signals that open an incident on ``entity`` now that ``key`` is active, or None
        when they are not enough: a drift needs a second, different active signal of the entity (a
        drift of another metric, or any other signal), because one series moving slowly away from its
        baseline is also what a scheduled job or a changed habit looks like. The same metric drifting
        on several instances at once is one signal, not two: a change made to the whole fleet (a log
        rotation, a config push, the traffic of the hour) moves every instance together."""
        active = [k for k, st in self._keys.items() if k[0] == entity and st.active]
        if key[1] in CORROBORATED and len({_corroborating(k) for k in active}) < 2:
            return None
        return active

    # -- floors ----------------------------------------------------------------------------------

    def _passes_floor(self, s: Score) -> bool:
        p = self.settings
        ev = s.evidence or {}
        if signal_kind(s) == "metric":
            observed, expected = ev.get("observed"), ev.get("expected")
            if observed is None or expected is None:
                return True  # a detector without an expected value: its confidence is all there is
            lower, upper = ev.get("lower"), ev.get("upper")
            if lower is not None and upper is not None and lower <= observed <= upper:
                return False
            relative = p.drift_min_relative_deviation if s.signal in CORROBORATED else p.min_relative_deviation
            return abs(observed - expected) >= max(p.min_absolute_deviation, relative * abs(expected))
        if s.signal == "log_template_rate":
            return any(abs(t.get("count", 0) - t.get("expected", 0.0)) >= p.min_log_lines for t in ev.get("templates") or ())
        if s.signal == "log_error_ratio":
            surplus = ev.get("errors", 0) - ev.get("expected_ratio", 0.0) * ev.get("lines", 0)
            return surplus >= p.min_log_lines
        if s.signal == "log_session":
            return bool(ev.get("anomalous"))
        if s.signal == "log_new_alarm_template":
            # A new warning or error that keeps coming back, not a one-off odd line nor a rare one:
            # enough of its lines within the recent window, spread over some minutes.
            recent = [(end, c) for end, c in ev.get("windows") or () if s.timestamp - end < p.new_template_window_seconds]
            return (sum(c for _, c in recent) >= p.new_template_min_lines
                    and recent[-1][0] - recent[0][0] >= p.new_template_min_seconds)
        return True

    # -- incident bookkeeping --------------------------------------------------------------------

    def _join(self, inc: _Incident, key, st: _Key, s: Score) -> bool:
        """Add an active signal to the incident; True when that changes what a pager would say
        (a new signal, a higher severity), which is when an update is sent."""
        inc.keys.add(key)
        sig = inc.signals.get(s.signal)
        material = sig is None
        if sig is None:
            inc.signals[s.signal] = {"signal": s.signal, "kind": signal_kind(s), "started": st.since,
                                     "confidence": max(s.confidence, getattr(st, "peak", 0.0)),
                                     "last_hot": s.timestamp, "detail": _detail(s)}
        else:
            sig["started"] = min(sig["started"], st.since)
        self._record_hot(inc, s)
        p = self.settings
        if inc.severity != "critical" and len(inc.signals) >= p.critical_signals and inc.confidence() >= p.critical_confidence:
            inc.severity = "critical"  # escalates, never steps down while open: no flapping severity
            material = True
        return material

    def _record_hot(self, inc: _Incident, s: Score) -> None:
        inc.last_hot = max(inc.last_hot, s.timestamp)
        sig = inc.signals.get(s.signal)
        if sig is not None:
            sig["confidence"] = max(sig["confidence"], s.confidence)
            sig["last_hot"] = max(sig["last_hot"], s.timestamp)
            detail = _detail(s)
            if detail:
                sig["detail"] = detail
        self._add_evidence(inc, s)

    def _add_evidence(self, inc: _Incident, s: Score) -> None:
        ev = s.evidence or {}
        if s.series and ev.get("observed") is not None:
            row = {"series": s.series, "observed": ev["observed"], "expected": ev.get("expected"),
                   "lower": ev.get("lower"), "upper": ev.get("upper"), "at": s.timestamp}
            old = inc.series.get(s.series)
            if old is None or _series_weight(row) >= _series_weight(old):
                row["since"] = old["since"] if old else s.timestamp
                inc.series[s.series] = row
            self._prune(inc.series, _series_weight, self.settings.evidence_series)
            return
        rows = ev.get("templates") or ()
        if s.signal == "log_new_template" and ev.get("template"):
            rows = ({"template": ev["template"], "example": ev.get("example"), "count": 1, "expected": 0.0},)
        for t in rows:
            text = t.get("template")
            if not text:
                continue
            row = {"template": text, "example": t.get("example"), "count": t.get("count", 0),
                   "expected": t.get("expected", 0.0), "signal": s.signal}
            if s.series:
                row["input"] = s.series  # the log topic: an entity may have several
            if t.get("since") is not None:
                # A watched new template counts its lines since it first appeared, not in one window.
                row["since"], row["most_in_window"] = t["since"], t.get("most_in_window")
            old = inc.templates.get(text)
            if old is None or _template_weight(row) >= _template_weight(old):
                inc.templates[text] = row
        self._prune(inc.templates, _template_weight, self.settings.evidence_templates)

    @staticmethod
    def _prune(rows: dict, weight, keep: int) -> None:
        # Keep twice what is shown, so a row can climb back into the top before it is forgotten.
        if len(rows) > 2 * keep + 8:
            for k, _ in sorted(rows.items(), key=lambda kv: weight(kv[1]))[: len(rows) - 2 * keep]:
                del rows[k]

    def _resolve_quiet(self, stream_time: float) -> list[IncidentEvent]:
        # The entity's own event time decides, so another entity's partition running ahead does not end
        # an incident early; an entity that fell silent altogether still resolves once the newest event
        # time anywhere is twice the window past its last hot score. Neither clock may pass the streams
        # that lag: while catching up, the entity's metrics can be hours ahead of its logs, whose
        # signals still belong to this incident.
        out = []
        window = self.alerting.incident_window_seconds
        # Both clocks are at most the newest event time, and an incident's last hot score only moves on.
        if self.now < self._due - 1.0 and window == self._due_window:  # a second's margin for rounding
            return out
        due = float("inf")
        everywhere = min(self.now, stream_time)
        for entity, inc in list(self._open.items()):
            if min(inc.now, stream_time) - inc.last_hot < window and everywhere - inc.last_hot < 2 * window:
                due = min(due, inc.last_hot + window)
                continue
            del self._open[entity]
            for key in inc.keys:
                self._keys.pop(key, None)  # the next run of these signals must earn its page again
            self.resolved += 1
            out.append(IncidentEvent("resolved", self.now, inc.snapshot(self.settings, end=inc.last_hot)))
        self._due, self._due_window = due, window
        return out

    def _new_key(self, key: tuple[str, str, str]) -> _Key:
        if len(self._keys) >= self.settings.max_keys:
            # Forget a signal that is only counting up; one that belongs to an incident goes last.
            victim = next((k for k, st in self._keys.items() if not st.active), None)
            del self._keys[victim if victim is not None else next(iter(self._keys))]
            self.evictions += 1
        st = self._keys[key] = _Key()
        return st


def _corroborating(key: tuple[str, str, str]) -> tuple[str, str]:
    """What a signal counts as when a drift waits for a second one: a drift by its metric (the series
    name without its labels), any other signal by its name."""
    entity, signal, series = key
    if signal in CORROBORATED:
        return signal, (series or "").split("{", 1)[0]
    return signal, ""


def _hot_since(s: Score) -> float:
    """When the hot run of a signal began: a signal whose evidence says how long it has been going
    on (a new template that keeps recurring) counts from then, anything else from this score."""
    since = (s.evidence or {}).get("since") if s.signal == "log_new_alarm_template" else None
    return min(since, s.timestamp) if isinstance(since, (int, float)) else s.timestamp


def _detail(s: Score) -> dict | None:
    """The few numbers that say what a signal saw, for the incident's description."""
    ev = s.evidence or {}
    if s.signal == "log_error_ratio" and "errors" in ev:
        return {"errors": ev["errors"], "lines": ev.get("lines"), "expected_ratio": ev.get("expected_ratio")}
    if s.signal == "log_template_rate" and "lines" in ev:
        return {"lines": ev["lines"]}
    if s.series and ev.get("observed") is not None:
        return {"series": s.series, "observed": ev["observed"], "expected": ev.get("expected")}
    return None


# -- text for people (console, Alertmanager annotations) ------------------------------------------


def _utc(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def summary(inc: IncidentSnapshot) -> str:
    names = ", ".join(s["signal"] for s in inc.signals)
    return f"{inc.severity} incident on {inc.entity}: {len(inc.signals)} anomalous signal(s) ({names})"


def describe(inc: IncidentSnapshot, max_chars: int = 300) -> str:
    """The evidence as plain lines: when each signal started, series observed against their expected
    band, and the top templates with an example line."""
    out = [f"incident {inc.id} on {inc.entity} since {_utc(inc.start)}, confidence {inc.confidence:.4f}"]
    if inc.end is not None:
        out[0] += f", quiet since {_utc(inc.end)}"
    for s in inc.signals:
        line = f"signal {s['signal']} ({s['kind']}) since {_utc(s['started'])}, confidence {s['confidence']:.4f}"
        d = s.get("detail") or {}
        if "errors" in d:
            line += f": {d['errors']} error lines of {d['lines']} (expected share {d['expected_ratio']:.2%})"
        out.append(line)
    for r in inc.series:
        band = ""
        if r.get("lower") is not None and r.get("upper") is not None:
            band = f", expected band {r['lower']:.4g}..{r['upper']:.4g}"
        exp = f" expected {r['expected']:.4g}" if r.get("expected") is not None else ""
        out.append(f"series {r['series']}: observed {r['observed']:.4g},{exp}{band} at {_utc(r['at'])}")
    for t in inc.templates:
        if t.get("since") is not None:
            most = f", at most {t['most_in_window']} in a window" if t.get("most_in_window") is not None else ""
            counted = f"{t['count']} lines since {_utc(t['since'])}{most}, new"
        else:
            counted = f"{t['count']} lines in a window, expected {t['expected']:.3g}"
        if t.get("input"):
            counted += f", on {t['input']}"
        out.append(f"template ({counted}): {t['template'][:max_chars]}")
        if t.get("example"):
            out.append(f"  e.g. {str(t['example']).replace(chr(10), ' | ')[:max_chars]}")
    return "\n".join(out)
