"""One metric series: its detector and its calibrator, updated score-before-learn."""

from __future__ import annotations

from detector.calibration import build_calibrator
from detector.specs import MetricModelSpec


class SeriesModel:
    __slots__ = ("detector", "calibrator")

    def __init__(self, detector, calibrator):
        self.detector = detector
        self.calibrator = calibrator

    @classmethod
    def from_spec(cls, spec: MetricModelSpec) -> "SeriesModel":
        return cls(spec.detector.build(), build_calibrator(spec.calibrator.name, spec.calibrator.params))

    def update(self, timestamp: float, value: float) -> tuple[float, float]:
        """Score the point, calibrate the score, then learn the point. Returns (score, confidence)."""
        x = {"value": value, "timestamp": timestamp}
        score = self.detector.score_one(x)
        confidence = self.calibrator.update(score)
        self.detector.learn_one(x)
        return score, confidence

    def update_many(self, timestamps, values) -> tuple[list[float], list[float]]:
        """``update`` for each point of one series in time order; returns (scores, confidences)."""
        scores, confidences = [], []
        for t, v in zip(timestamps, values):
            s, c = self.update(float(t), float(v))
            scores.append(s)
            confidences.append(c)
        return scores, confidences

    def explain(self) -> dict | None:
        return self.detector.explain()
