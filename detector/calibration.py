"""Raw anomaly score -> confidence in [0, 1].

The confidence of a score is the fraction of recent scores of the same signal that were lower: the
empirical tail probability of the score under recent history. It is computed BEFORE the score joins
the history, so a burst of anomalies does not calibrate itself away at once. Memory is a fixed ring of
``window`` floats per signal.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort


class TailCalibrator:
    __slots__ = ("window", "min_history", "_ring", "_sorted", "_pos")

    def __init__(self, window: int = 500, min_history: int = 30):
        self.window = window
        self.min_history = min_history
        self._ring = array("d")
        self._sorted: list[float] = []
        self._pos = 0

    def update(self, score: float) -> float:
        """Confidence of ``score`` against the history, then add it to the history."""
        n = len(self._sorted)
        conf = 0.0 if n < self.min_history else bisect_left(self._sorted, score) / n
        if n < self.window:
            self._ring.append(score)
        else:
            old = self._ring[self._pos]
            del self._sorted[bisect_left(self._sorted, old)]
            self._ring[self._pos] = score
            self._pos = (self._pos + 1) % self.window
        insort(self._sorted, score)
        return conf

    def __getstate__(self):
        return (self.window, self.min_history, self._ring, self._sorted, self._pos)

    def __setstate__(self, state):
        self.window, self.min_history, self._ring, self._sorted, self._pos = state


CALIBRATORS = {"tail": TailCalibrator}


def build_calibrator(name: str, params: dict):
    from detector.errors import ConfigError

    try:
        cls = CALIBRATORS[name]
    except KeyError:
        raise ConfigError(f"unknown calibrator {name!r}; known: {', '.join(CALIBRATORS)}") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"calibrator {name!r}: {exc}") from None
