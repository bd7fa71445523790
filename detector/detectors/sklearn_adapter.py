"""scikit-learn batch anomaly models behind the online protocol: refit periodically on a bounded buffer."""

from __future__ import annotations

from collections import deque

from detector.detectors.base import Detector
from detector.detectors.registry import register
from detector.validation import require, require_keys, whole

SEEDS = 2**32  # scikit-learn takes a random_state in [0, 2**32 - 1]

# What each parameter may be, checked when the detector is built (see detector.validation), rather
# than at the first refit, hundreds of points into live traffic.
_VALID = {
    # A forest fitted on 2 points isolates each of them with one split: every score is the same.
    "buffer_size": whole(3),
    "refit_every": whole(1),  # 0 or less would refit after every point
    "n_estimators": whole(1),  # scikit-learn's own range
    "seed": (f"a whole number in [0, {SEEDS - 1}]", lambda v: isinstance(v, int) and 0 <= v < SEEDS),
}


@register("isolation_forest")
class IsolationForestDetector(Detector):
    """scikit-learn's ``IsolationForest``, refitted every ``refit_every`` points on the last
    ``buffer_size`` points.

    ``score_samples`` is higher for normal points; the adapter returns its negation, so that, as for
    every detector here, higher is more anomalous. Until the first fit the score is 0.

    Parameters
    ----------
    features : tuple of str
        Keys of ``x`` used as features; a missing key counts as 0.0, other keys are ignored.
    buffer_size : int
        Most recent points kept for refitting (bounded memory); at least 3.
    refit_every : int
        Points learned between refits (at least 1); the first fit happens once this many points are
        buffered.
    n_estimators : int
        Trees per forest; at least 1.
    seed : int
        ``random_state`` of every fit, in [0, 2**32 - 1] (a fit's seed also depends on how many fits
        came before, so refits differ from each other yet the whole stream is reproducible).

    Examples
    --------
    >>> det = IsolationForestDetector(refit_every=100, seed=3)
    >>> for i in range(300):
    ...     x = {"value": float(i % 7)}
    ...     _ = det.score_one(x); det.learn_one(x)
    >>> det.score_one({"value": 500.0}) > det.score_one({"value": 3.0})
    True
    """

    def __init__(self, features: tuple = ("value",), buffer_size: int = 512, refit_every: int = 256,
                 n_estimators: int = 50, seed: int = 0):
        self.features = features
        self.buffer_size = buffer_size
        self.refit_every = refit_every
        self.n_estimators = n_estimators
        self.seed = seed
        require_keys(features, "features")
        for name, (rule, ok) in _VALID.items():
            require(getattr(self, name), name, rule, ok)

    def _vector(self, x: dict) -> list[float]:
        out = []
        for key in self.features:
            v = x.get(key, 0.0)
            out.append(float(v) if v == v else 0.0)
        return out

    def score_one(self, x: dict) -> float:
        forest = self.__dict__.get("_forest")
        if forest is None:
            return 0.0
        return float(-forest.score_samples([self._vector(x)])[0])

    def learn_one(self, x: dict) -> None:
        if "_buffer" not in self.__dict__:
            self._buffer = deque(maxlen=self.buffer_size)
            self._since_fit = 0
            self._fits = 0
        self._buffer.append(self._vector(x))
        self._since_fit += 1
        if self._since_fit >= self.refit_every:
            self._refit()

    def _refit(self) -> None:
        from sklearn.ensemble import IsolationForest

        forest = IsolationForest(n_estimators=self.n_estimators, random_state=(self.seed + self._fits) % SEEDS)
        self._forest = forest.fit(list(self._buffer))
        self._fits += 1
        self._since_fit = 0
