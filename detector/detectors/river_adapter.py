"""river's Half-Space Trees behind the project's detector protocol."""

from __future__ import annotations

from detector.detectors.base import Detector
from detector.detectors.registry import register
from detector.validation import require, require_keys, whole

# What each parameter may be, checked when the detector is built (see detector.validation). river checks
# none of them, and out of range they fail late or quietly: no trees, a tree of height 0 or a window
# that never fills (window_size <= 0) score every point the same, and a negative height never ends.
_VALID = {
    "n_trees": whole(1),
    # Each level doubles the nodes of every tree of every series: at 16 (the paper used 15) one series
    # of 10 trees already holds hundreds of MB.
    "height": ("a whole number in [1, 16]", lambda v: isinstance(v, int) and 1 <= v <= 16),
    "window_size": whole(1),
    "seed": ("a whole number", lambda v: isinstance(v, int)),
}


@register("half_space_trees")
class HalfSpaceTreesDetector(Detector):
    """river's ``HalfSpaceTrees`` on online min-max scaled features.

    Half-space trees need features in [0, 1]; a running min-max scaler puts them there, so the
    adapter works on raw metric values.

    Parameters
    ----------
    features : tuple of str
        Keys of ``x`` used as features; a missing key counts as 0.0, other keys are ignored.
    n_trees, height, window_size : int
        Passed to ``river.anomaly.HalfSpaceTrees``: trees (at least 1), levels per tree (1 to 16;
        memory doubles with each) and points per reference window (at least 1).
    seed : int
        Seed of the random trees.

    Examples
    --------
    >>> det = HalfSpaceTreesDetector(seed=1)
    >>> for i in range(600):
    ...     x = {"value": float(i % 10)}
    ...     _ = det.score_one(x); det.learn_one(x)
    >>> det.score_one({"value": 1000.0}) > det.score_one({"value": 5.0})
    True
    """

    def __init__(self, features: tuple = ("value",), n_trees: int = 10, height: int = 8,
                 window_size: int = 250, seed: int = 0):
        self.features = features
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        require_keys(features, "features")
        for name, (rule, ok) in _VALID.items():
            require(getattr(self, name), name, rule, ok)

    def _model(self):
        model = self.__dict__.get("_pipeline")
        if model is None:
            from river import anomaly, preprocessing

            model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
                n_trees=self.n_trees, height=self.height, window_size=self.window_size, seed=self.seed)
            self._pipeline = model
        return model

    def _vector(self, x: dict) -> dict:
        out = {}
        for key in self.features:
            v = x.get(key, 0.0)
            out[key] = float(v) if v == v else 0.0
        return out

    def score_one(self, x: dict) -> float:
        return float(self._model().score_one(self._vector(x)))

    def learn_one(self, x: dict) -> None:
        self._model().learn_one(self._vector(x))
