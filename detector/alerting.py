"""Alerts with hysteresis per (entity, signal, series).

A key fires after ``fire_after`` consecutive anomalous evaluations (confidence at or above the
threshold) and resolves after ``resolve_after`` consecutive quiet ones, so one noisy point neither
pages nor ends a page.

A firing key whose signal falls silent (a pod that is gone sends no quiet scores) resolves once its
entity's own event time is past its last score by twice ``incident_window_seconds``, or by three of
the key's own intervals between scores if longer (an hourly series is not silent after 30 minutes).
Its entity's time, not the newest time anywhere, so that an entity whose partition is catching up
hours behind the others still alerts; an entity that sends nothing at all is judged against the
event time up to which every input stream has been read (``observe``'s ``stream_time``, capped at the
newest event time in any score): once every stream is past its silence, nothing it sent can still
come. Event time only: how the scores were cut into ``observe`` calls does not change the outcome.
The state map is bounded: keys that are quiet and not firing are the only ones evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from detector.config import AlertingSettings
from detector.records import Score


class AlertTransition(NamedTuple):
    timestamp: float  # event time of the evaluation that caused the change
    entity: str
    signal: str
    series: str  # the metric series, or the input topic of a log signal
    state: str  # "firing" | "resolved"
    confidence: float
    since: float  # event time the anomalous run began
    evidence: dict | None


def still_anomalous(s: Score, before: dict | None, sustain: float) -> bool:
    """Whether a score below the confidence threshold still continues a run of anomalous scores whose
    latest evidence was ``before`` (hysteresis): at or above ``sustain``, and off its expected value on
    the same side. A lasting change joins its series' history, and its confidence falls point by
    point; without this a step stays anomalous for a number of points, not of minutes. A series that
    swings back past an expected value still catching up with a blip is not the same change, nor is a
    log template falling silent after its flood ends."""
    if s.confidence < sustain:
        return False
    now, then = _direction(s.evidence), _direction(before)
    return now is None or then is None or now * then > 0


def _direction(evidence: dict | None) -> float | None:
    """How far, and which way, the evidence is off its expected value: the observed metric value, or
    the count of the log template that scored; None when the evidence does not say."""
    if not evidence:
        return None
    if "observed" in evidence:
        o, e = evidence.get("observed"), evidence.get("expected")
    else:
        top = (evidence.get("templates") or [None])[0]
        if not isinstance(top, dict):
            return None
        o, e = top.get("count"), top.get("expected")
    return None if o is None or e is None else o - e


class _KeyState:
    __slots__ = ("anomalous_run", "quiet_run", "firing", "since", "confidence", "evidence", "last", "gap")

    def __init__(self) -> None:
        self.anomalous_run = 0
        self.quiet_run = 0
        self.firing = False
        self.since = 0.0
        self.confidence = 0.0
        self.evidence: dict | None = None
        self.last = float("-inf")  # event time of the key's newest score
        self.gap = 0.0  # event time between its last two scores


class Alerting:
    # No firing key can have fallen silent before the newest event time reaches ``_due`` (computed for a
    # silence window of ``_due_window``): observe, called for every record, skips the scan until then.
    _due = float("-inf")
    _due_window: float | None = None

    def __init__(self, settings: AlertingSettings, max_keys: int = 200_000):
        self.settings = settings
        self.max_keys = max_keys
        self._keys: OrderedDict[tuple[str, str, str], _KeyState] = OrderedDict()
        self.evictions = 0
        self.now = float("-inf")  # newest event time in any score
        # Entities with a firing key: [their newest event time, their firing keys].
        self._watched: dict[str, list] = {}

    def __setstate__(self, state: dict) -> None:
        # State saved before silent keys were resolved: each firing key counts as last scored when its
        # anomalous run began, and is judged from its entity's next score on.
        self.__dict__.update(state)
        if "_watched" not in state:
            self.now, self._watched = float("-inf"), {}
            for key, st in self._keys.items():
                st.last, st.gap = st.since, 0.0
                if st.firing:
                    self._watch(key, st.since)
        elif "_batches" in state:  # saved when an entity's silence was counted in batches
            del self.__dict__["_batches"]
            self._watched = {entity: [t, keys] for entity, (t, _, keys) in self._watched.items()}

    def observe(self, scores: list, stream_time: float = float("inf")) -> list[AlertTransition]:
        """Judge scores in the order they came. ``stream_time``: the event time up to which every input
        stream that may still hold older records has been read (see ``Pipeline.stream_time``). The
        pipeline hands the scores of a whole batch at once, each record's followed by the stream time
        after it (a float): silence is judged after each record, as if each came in its own call."""
        threshold = self.settings.confidence_threshold
        sustain = self.settings.sustain
        fire_after = self.settings.fire_after
        resolve_after = self.settings.resolve_after
        out: list[AlertTransition] = []
        watched, now = self._watched, self.now
        for s in scores:
            if s.__class__ is float:  # the end of a record: the stream time after it
                self.now = now
                if watched:
                    out.extend(self._silent(min(now, s)))
                continue
            t = s.timestamp
            if t > now:
                now = t
            seen = watched.get(s.entity)
            if seen is not None and t > seen[0]:
                seen[0] = t
            key = (s.entity, s.signal, s.series)
            st = self._keys.get(key)
            anomalous = s.confidence >= threshold or (
                st is not None and st.anomalous_run > 0 and still_anomalous(s, st.evidence, sustain))
            if st is None:
                if not anomalous:
                    continue  # nothing to remember about a quiet key
                st = self._new_key(key)
            elif t > st.last:
                st.gap = t - st.last
            st.last = t
            if st.firing and t + 3 * st.gap < self._due:  # a key scoring faster than it did falls silent sooner
                self._due = float("-inf")
            if anomalous:
                if st.anomalous_run == 0:
                    st.since = s.timestamp
                st.anomalous_run += 1
                st.quiet_run = 0
                st.confidence = max(st.confidence, s.confidence) if st.firing else s.confidence
                if s.evidence is not None:
                    st.evidence = s.evidence
                if not st.firing and st.anomalous_run >= fire_after:
                    st.firing = True
                    self._watch(key, t)
                    out.append(AlertTransition(s.timestamp, *key, "firing", st.confidence, st.since, st.evidence))
            else:
                st.quiet_run += 1
                st.anomalous_run = 0
                if st.firing and st.quiet_run >= resolve_after:
                    st.firing = False
                    self._unwatch(key)
                    out.append(AlertTransition(s.timestamp, *key, "resolved", st.confidence, st.since, st.evidence))
                if not st.firing and st.quiet_run >= resolve_after:
                    del self._keys[key]
        self.now = now
        if not scores or scores[-1].__class__ is not float:
            out.extend(self._silent(min(now, stream_time)))
        return out

    def _watch(self, key: tuple[str, str, str], t: float) -> None:
        self._due = float("-inf")  # a key firing: scanned at the next check
        seen = self._watched.setdefault(key[0], [t, set()])
        seen[1].add(key)

    def _unwatch(self, key: tuple[str, str, str]) -> None:
        seen = self._watched[key[0]]
        seen[1].discard(key)
        if not seen[1]:
            del self._watched[key[0]]

    def _silent(self, everywhere: float) -> list[AlertTransition]:
        """Resolve (and forget) the firing keys whose signal has fallen silent: by their entity's own
        event time, or by ``everywhere``, the time every stream has been read up to."""
        window = 2 * self.settings.incident_window_seconds
        out = []
        if self.now < self._due - 1.0 and window == self._due_window:  # a second's margin for rounding
            return out
        due = float("inf")
        for entity, (entity_now, firing) in list(self._watched.items()):
            clock = max(entity_now, everywhere)
            for key in list(firing):
                st = self._keys[key]
                quiet_for = max(window, 3 * st.gap)
                if clock - st.last > quiet_for:
                    del self._keys[key]
                    self._unwatch(key)
                    # Resolved as of the moment its silence became long enough, whatever the batches.
                    out.append(AlertTransition(st.last + quiet_for, *key, "resolved", st.confidence, st.since,
                                               st.evidence))
                else:
                    due = min(due, st.last + quiet_for)
        self._due, self._due_window = due, window
        return out

    def _new_key(self, key: tuple[str, str, str]) -> _KeyState:
        if len(self._keys) >= self.max_keys:
            # Prefer forgetting a key that is only counting up; a firing one goes only if all fire.
            victim = next((k for k, st in self._keys.items() if not st.firing), None)
            if victim is None:
                victim = next(iter(self._keys))
                self._unwatch(victim)
            del self._keys[victim]
            self.evictions += 1
        st = self._keys[key] = _KeyState()
        return st

    def firing(self) -> list[tuple[tuple[str, str, str], float, float, dict | None]]:
        """Currently firing keys with (confidence, since, evidence)."""
        return [(k, st.confidence, st.since, st.evidence) for k, st in self._keys.items() if st.firing]
