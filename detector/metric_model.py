"""The metric path: route each point to its series' model, score it, keep memory bounded.

One ``SeriesModel`` per series (name + labels), held in LRU order: when ``max_series`` is reached the
series seen least recently is evicted and counted, so a label explosion upstream costs a bounded
amount of memory rather than the process. Each entry also keeps the last score and confidence, which
the Prometheus collector reads at scrape time, with the last observed value.
"""

from __future__ import annotations

from collections import OrderedDict

from detector.records import MetricPoint, Score
from detector.series_model import SeriesModel
from detector.specs import MetricModelSpec


class SeriesEntry:
    __slots__ = ("model", "entity", "name", "value", "score", "confidence", "timestamp")

    def __init__(self, model: SeriesModel, entity: str, name: str):
        self.model = model
        self.entity = entity
        self.name = name
        self.value = 0.0
        self.score = 0.0
        self.confidence = 0.0
        self.timestamp = 0.0


class MetricModel:
    def __init__(self, spec: MetricModelSpec, evidence_threshold: float = 0.99):
        self.spec = spec
        self.evidence_threshold = evidence_threshold
        self.series: OrderedDict[str, SeriesEntry] = OrderedDict()
        self.evictions = 0

    def process(self, point: MetricPoint) -> Score | None:
        """Score the point and learn it; None, with nothing learnt, for a point at or before its
        series' newest (``last`` tells which): a model learns a series in time order only."""
        key = point.series
        entry = self.series.get(key)
        if entry is not None and point.timestamp <= entry.timestamp:
            return None
        if entry is None:
            if len(self.series) >= self.spec.max_series:
                self.series.popitem(last=False)
                self.evictions += 1
            entry = self.series[key] = SeriesEntry(SeriesModel.from_spec(self.spec), point.entity, point.name)
        else:
            self.series.move_to_end(key)
        score, confidence = entry.model.update(point.timestamp, point.value)
        entry.value, entry.score, entry.confidence, entry.timestamp = point.value, score, confidence, point.timestamp
        evidence = None
        # Building evidence for every point would dominate the hot path; only anomalies need it.
        if confidence >= self.evidence_threshold:
            evidence = {"series": key, "observed": point.value, **(entry.model.explain() or {})}
        return Score(point.timestamp, point.entity, point.name, score, confidence, evidence, key, point.value)

    def last(self, key: str) -> SeriesEntry | None:
        """The series' entry (its newest point's time and value), without touching the LRU order."""
        return self.series.get(key)

    def forget(self, key: str) -> None:
        """Drop a series' model: its next point starts a new one."""
        self.series.pop(key, None)

    def series_held(self) -> int:
        return len(self.series)
