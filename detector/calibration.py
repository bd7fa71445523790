"""Raw anomaly score -> confidence in [0, 1].

The confidence of a score is the fraction of recent scores of the same signal that were lower: the
empirical tail probability of the score under recent history. It is computed BEFORE the score joins
the history, so a burst of anomalies does not calibrate itself away at once. On data like the
history, ``confidence >= c`` then happens on about ``1 - c`` of the points.

With ``run_thinning`` N above 1, a run of scores at confidence ``RUN_CONFIDENCE`` or more joins the
history only one score in N after its first: the run is judged against the scores before it for N
times longer, and still becomes the norm if it lasts. The log model thins the error ratio's runs, so
that a flood of errors keeps its confidence while it goes on (a 256-window history would otherwise
take it as its new top within a dozen windows); stationary scores seldom make such runs, so the
reliability above holds either way.

Two calibrators, same contract (``update(score) -> confidence``):

- ``tail``: exact ranks within a ring of the last ``window`` scores (two arrays of ``window`` floats);
- ``histogram``: exponentially forgetting histogram on an ``asinh`` scale (one array of ``bins``
  floats, a few hundred bytes), for when there is one calibrator per series and many series.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, insort

from detector.validation import require, whole

# Low enough that a thinned run is not cut short by its own scores pushing it down the ranks (ties at
# the surprise cap, one in 256 windows each), high enough that stationary scores seldom make runs.
RUN_CONFIDENCE = 0.95


def _joins(cal, conf: float) -> bool:
    """Whether a score of confidence ``conf`` joins the history of ``cal`` (runs are thinned)."""
    if conf < RUN_CONFIDENCE:
        cal._run = 0
        return True
    cal._run += 1
    return (cal._run - 1) % cal.run_thinning == 0


class TailCalibrator:
    __slots__ = ("window", "min_history", "run_thinning", "_ring", "_sorted", "_pos", "_run")

    def __init__(self, window: int = 500, min_history: int = 30, run_thinning: int = 1):
        require(window, "window", *whole(1))
        require(min_history, "min_history", *whole(0))
        require(run_thinning, "run_thinning", *whole(1))
        self.window = window
        self.min_history = min_history
        self.run_thinning = run_thinning
        self._run = 0  # consecutive scores at RUN_CONFIDENCE or more
        self._ring = array("d")
        self._sorted = array("d")  # an array, not a list: 8 bytes a score instead of ~32
        self._pos = 0

    def update(self, score: float) -> float:
        """Confidence of ``score`` against the history, then add it to the history."""
        if score != score:
            return 0.0  # a missing score is no evidence and does not join the history
        n = len(self._sorted)
        conf = 0.0 if n < self.min_history else bisect_left(self._sorted, score) / n
        if not _joins(self, conf):
            return conf
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
        return (self.window, self.min_history, self._ring, self._sorted, self._pos, self.run_thinning, self._run)

    def __setstate__(self, state):
        # Saved before runs could be thinned: five fields, and no thinning.
        self.window, self.min_history, ring, ordered, self._pos, self.run_thinning, self._run = (*state, 1, 0)[:7]
        self._ring = ring
        self._sorted = ordered if isinstance(ordered, array) else array("d", ordered)


class HistogramCalibrator:
    """Tail probability from an exponentially forgetting histogram of past scores.

    Scores are binned on ``asinh(score)`` between ``low`` and ``high`` (so both small and huge
    scores are resolved); within a bin the mass is spread evenly, which keeps the confidence
    continuous. Forgetting multiplies the weight of each new score by ``2 ** (1 / halflife)``
    instead of decaying every bin, so an update is O(1) plus one slice sum.
    """

    __slots__ = ("bins", "low", "high", "halflife", "min_history", "run_thinning", "_hist", "_w", "_total", "_n",
                 "_growth", "_run")

    def __init__(self, bins: int = 96, low: float = -4.0, high: float = 8.0, halflife: float = 2000.0,
                 min_history: int = 30, run_thinning: int = 1):
        require(bins, "bins", *whole(1))
        require(low, "low", "a number", lambda v: True)
        require(high, "high", f"a number above low ({low!r})", lambda v: v > low)
        require(halflife, "halflife", "> 0", lambda v: v > 0)
        require(min_history, "min_history", *whole(0))
        require(run_thinning, "run_thinning", *whole(1))
        self.bins = bins
        self.low = low
        self.high = high
        self.halflife = halflife
        self.min_history = min_history
        self.run_thinning = run_thinning
        self._run = 0
        self._hist = array("d", [0.0]) * bins
        self._w = 1.0
        self._total = 0.0
        self._n = 0
        self._growth = 2.0 ** (1.0 / halflife)

    def update(self, score: float) -> float:
        if score != score:
            return 0.0
        y = (math.asinh(score) - self.low) / (self.high - self.low) * self.bins
        hist = self._hist
        if y <= 0.0:
            k, frac = 0, 0.0
        elif y >= self.bins:
            k, frac = self.bins - 1, 1.0
        else:
            k = int(y)
            frac = y - k
        conf = 0.0
        if self._n >= self.min_history and self._total > 0.0:
            conf = (sum(hist[:k]) + frac * hist[k]) / self._total
        if not _joins(self, conf):
            return conf
        w = self._w
        hist[k] += w
        self._total += w
        self._n += 1
        w *= self._growth
        if w > 1e200:  # rescale before overflow; ratios are unchanged
            for i in range(self.bins):
                hist[i] /= w
            self._total /= w
            w = 1.0
        self._w = w
        return conf

    def __getstate__(self):
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state):
        self.run_thinning, self._run = 1, 0  # saved before runs could be thinned
        for name, value in state.items():
            setattr(self, name, value)


CALIBRATORS = {"tail": TailCalibrator, "histogram": HistogramCalibrator}


def build_calibrator(name: str, params: dict):
    from detector.errors import ConfigError

    try:
        cls = CALIBRATORS[name]
    except KeyError:
        raise ConfigError(f"unknown calibrator {name!r}; known: {', '.join(CALIBRATORS)}") from None
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:  # unknown parameters, values out of range
        raise ConfigError(f"calibrator {name!r}: {exc}") from None
