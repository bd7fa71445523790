"""Alerts with hysteresis per (entity, signal, series).

A key fires after ``fire_after`` consecutive anomalous evaluations (confidence at or above the
threshold) and resolves after ``resolve_after`` consecutive quiet ones, so one noisy point neither
pages nor ends a page. A key whose signal falls silent (a series whose process is gone sends no quiet
scores) resolves once the newest event time is twice ``incident_window_seconds`` past its last score,
as an incident of a silent entity does. The state map is bounded: keys that are quiet and not firing
are the only ones evicted.
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
    series: str  # the metric series, or "" for log signals
    state: str  # "firing" | "resolved"
    confidence: float
    since: float  # event time the anomalous run began
    evidence: dict | None


class _KeyState:
    __slots__ = ("anomalous_run", "quiet_run", "firing", "since", "confidence", "evidence", "last")

    def __init__(self) -> None:
        self.anomalous_run = 0
        self.quiet_run = 0
        self.firing = False
        self.since = 0.0
        self.confidence = 0.0
        self.evidence: dict | None = None
        self.last = float("-inf")  # event time of the key's newest score


class Alerting:
    now = float("-inf")  # newest event time observed (a class default for state saved before it existed)

    def __init__(self, settings: AlertingSettings, max_keys: int = 200_000):
        self.settings = settings
        self.max_keys = max_keys
        self._keys: OrderedDict[tuple[str, str, str], _KeyState] = OrderedDict()
        self.evictions = 0

    def observe(self, scores: list[Score]) -> list[AlertTransition]:
        threshold = self.settings.confidence_threshold
        fire_after = self.settings.fire_after
        resolve_after = self.settings.resolve_after
        out: list[AlertTransition] = []
        keys = self._keys
        now = self.now
        for s in scores:
            if s.timestamp > now:
                now = s.timestamp
            key = (s.entity, s.signal, s.series)
            st = keys.get(key)
            anomalous = s.confidence >= threshold
            if st is None:
                if not anomalous:
                    continue  # nothing to remember about a quiet key
                st = self._new_key(key)
            else:
                keys.move_to_end(key)  # least recently scored first, for _silent
            st.last = s.timestamp
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
                    out.append(AlertTransition(s.timestamp, *key, "firing", st.confidence, st.since, st.evidence))
            else:
                st.quiet_run += 1
                st.anomalous_run = 0
                if st.firing and st.quiet_run >= resolve_after:
                    st.firing = False
                    out.append(AlertTransition(s.timestamp, *key, "resolved", st.confidence, st.since, st.evidence))
                if not st.firing and st.quiet_run >= resolve_after:
                    del keys[key]
        self.now = now
        out.extend(self._silent())
        return out

    def _silent(self) -> list[AlertTransition]:
        """Resolve (and forget) the keys that have had no score for twice the incident window."""
        silence = 2 * self.settings.incident_window_seconds
        cutoff = self.now - silence
        keys = self._keys
        out = []
        while keys:
            key, st = next(iter(keys.items()))
            last = getattr(st, "last", None)
            if last is None:  # saved before keys knew their last score: counts as scored now
                st.last = self.now
                keys.move_to_end(key)
                continue
            if last >= cutoff:
                break
            del keys[key]
            if st.firing:  # resolved as of the moment its silence became long enough, whatever the batches
                out.append(AlertTransition(last + silence, *key, "resolved", st.confidence, st.since, st.evidence))
        return out

    def _new_key(self, key: tuple[str, str, str]) -> _KeyState:
        if len(self._keys) >= self.max_keys:
            # Prefer forgetting a key that is only counting up; a firing one goes only if all fire.
            victim = next((k for k, st in self._keys.items() if not st.firing), None)
            del self._keys[victim if victim is not None else next(iter(self._keys))]
            self.evictions += 1
        st = self._keys[key] = _KeyState()
        return st

    def firing(self) -> list[tuple[tuple[str, str, str], float, float, dict | None]]:
        """Currently firing keys with (confidence, since, evidence)."""
        return [(k, st.confidence, st.since, st.evidence) for k, st in self._keys.items() if st.firing]
