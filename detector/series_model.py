"""One metric series: its detector and its calibrator, updated score-before-learn.

The calibrator sees the detector's continuous ``evidence`` when it has one (the surprise before any
refractory rule zeroes repeats), else the score: a calibrator needs a quantity without a pile of ties
at zero to turn into a tail probability.
"""

from __future__ import annotations

from detector.calibration import build_calibrator
from detector.errors import ConfigError
from detector.specs import MetricModelSpec


class SeriesModel:
    __slots__ = ("detector", "calibrator", "_evidence")

    def __init__(self, detector, calibrator):
        self.detector = detector
        self.calibrator = calibrator
        self._evidence = hasattr(type(detector), "evidence")

    @property
    def _batched(self):
        """The detector's loop that scores then learns a run of points, when it has one."""
        return getattr(self.detector, "score_many", None)

    @classmethod
    def from_spec(cls, spec: MetricModelSpec) -> "SeriesModel":
        return cls(spec.detector.build(), build_calibrator(spec.calibrator.name, spec.calibrator.params))

    @classmethod
    def check(cls, spec: MetricModelSpec) -> None:
        """Build the model and run it on a few points, so that a spec it cannot run with fails when it
        is loaded (start-up, ``check-config``, a reload) rather than on the first point of live traffic."""
        model = cls.from_spec(spec)
        try:
            model.update_many([0.0, 60.0, 120.0], [0.0, 1.0, 0.5])
            model.update(180.0, 2.0)
            model.explain()
        except Exception as exc:  # whatever a detector or calibrator raises on parameters it cannot use
            raise ConfigError(f"detector {spec.detector.name!r} with calibrator {spec.calibrator.name!r} fails on "
                              f"a test point: {type(exc).__name__}: {exc}") from None

    def update(self, timestamp: float, value: float) -> tuple[float, float]:
        """Score the point, calibrate the score, then learn the point. Returns (score, confidence)."""
        batched = self._batched
        if batched is not None:
            # One pass that scores, then learns: score_one + learn_one would run the detector twice.
            evidence: list[float] = []
            score = batched((timestamp,), (value,), learn=True, evidence_out=evidence)[0]
            return score, self.calibrator.update(evidence[0])
        x = {"value": value, "timestamp": timestamp}
        score = self.detector.score_one(x)
        confidence = self.calibrator.update(self.detector.evidence if self._evidence else score)
        self.detector.learn_one(x)
        return score, confidence

    def update_many(self, timestamps, values) -> tuple[list[float], list[float]]:
        """``update`` for each point of one series in time order; returns (scores, confidences).

        Uses the detector's batched loop when it has one: same scores, a fraction of the cost.
        """
        batched = self._batched
        if batched is None:
            scores, confidences = [], []
            for t, v in zip(timestamps, values):
                s, c = self.update(float(t), float(v))
                scores.append(s)
                confidences.append(c)
            return scores, confidences
        timestamps = timestamps.tolist() if hasattr(timestamps, "tolist") else list(timestamps)
        values = values.tolist() if hasattr(values, "tolist") else list(values)
        evidence: list[float] = []
        scores = batched(timestamps, values, learn=True, evidence_out=evidence)
        calibrate = self.calibrator.update
        return scores, [calibrate(e) for e in evidence]

    def explain(self) -> dict | None:
        return self.detector.explain()
