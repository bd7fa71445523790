"""Drift scores for every metric series, beside the metric model's point scores.

One drift detector (``trend_drift`` by default) per series, held in LRU order with a bound, fed
every point of a metric partition. It yields a ``metric_drift`` score only while a series is near
or past drifting (and once more when it stops), so the alerting layers see the runs begin and end
without a second score for every point. It also knows which series are settling after a restart.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from detector.detectors.registry import build
from detector.records import MetricPoint, Score

SIGNAL = "metric_drift"
EMIT_Z = 3.0  # below this (confidence 0.95) a series is plainly not drifting, and nothing is emitted


class DriftMonitor:
    def __init__(self, detector: str = "trend_drift", params: dict | None = None, max_series: int = 100_000):
        self.detector = detector
        self.params = dict(params or {})
        self.max_series = max_series
        # key -> [detector, emitting, its one-step score-and-learn ``update(t, v) -> z`` if it has one]
        self.series: OrderedDict[str, list] = OrderedDict()
        self.evictions = 0
        build(detector, self.params)  # fail at load time, not on the first point

    def process(self, point: MetricPoint, key: str | None = None) -> Score | None:
        """The drift score to pass on, or None. ``key`` is the point's series when the caller has it."""
        if key is None:
            key = point.series
        entry = self.series.get(key)
        if entry is None:
            if len(self.series) >= self.max_series:
                self.series.popitem(last=False)
                self.evictions += 1
            det = build(self.detector, self.params)
            entry = self.series[key] = [det, False, getattr(det, "update", None)]
        else:
            self.series.move_to_end(key)
        det = entry[0]
        t = point.timestamp
        update = entry[2]
        if update is not None:
            z = update(t, point.value)
        else:  # any detector of the common protocol: its score in [0, 1) read as a tail probability
            x = {"value": point.value, "timestamp": t}
            z = -math.log(max(1.0 - det.score_one(x), 1e-300))
            det.learn_one(x)
        near = abs(z) >= EMIT_Z
        if not near and not entry[1]:
            return None
        entry[1] = near
        confidence = 1.0 - math.exp(-abs(z))
        evidence = {"series": key, **(det.explain() or {})}
        return Score(t, point.entity, SIGNAL, abs(z), confidence, evidence, key)

    def level_before_restart(self, key: str, t: float) -> float | None:
        """While the series ``key`` settles after a restart (a gap in its scrapes), the baseline it
        had before; None when it is not settling (or its detector knows nothing of restarts)."""
        entry = self.series.get(key)
        if entry is None or not hasattr(entry[0], "settling") or not entry[0].settling(t):
            return None
        return (entry[0].explain() or {}).get("baseline")

    def __len__(self) -> int:
        return len(self.series)
