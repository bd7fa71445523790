"""Robust level + automatic daily seasonality, scored as a tail probability of the residual."""

from __future__ import annotations

import math

from detector.detectors.base import Detector
from detector.detectors.registry import register

_SQRT2 = math.sqrt(2.0)


@register("robust_seasonal")
class RobustSeasonal(Detector):
    """Robust level/scale tracker with an optional daily profile.

    Parameters
    ----------
    alpha : float
        Adaptation rate of the level and scale (per point).
    period : float
        Candidate season length in seconds (a day by default).
    buckets : int
        Phase buckets per season; memory per series grows with this.
    warmup : int
        Points learned before any score above zero is returned.
    seed : int
        Unused (the model is deterministic); accepted for the common protocol.

    Examples
    --------
    >>> det = RobustSeasonal()
    >>> for t in range(200):
    ...     x = {"value": 10.0 + (t % 3), "timestamp": 60.0 * t}
    ...     _ = det.score_one(x); det.learn_one(x)
    >>> det.score_one({"value": 500.0, "timestamp": 12000.0}) > 0.9
    True
    """

    def __init__(self, alpha: float = 0.02, period: float = 86400.0, buckets: int = 96,
                 warmup: int = 50, seed: int = 0):
        self.alpha = alpha
        self.period = period
        self.buckets = buckets
        self.warmup = warmup
        self.seed = seed
        self._n = 0
        self._level = 0.0
        self._scale = 0.0
        self._season: list[float] | None = None
        self._err_flat = 0.0
        self._err_season = 0.0
        self._last = None

    def _expected(self, t: float) -> tuple[float, int]:
        b = int((t % self.period) / self.period * self.buckets)
        if self._season is not None and self._err_season < 0.8 * self._err_flat:
            s = self._season[b]
            if s == s:  # bucket seen
                return s, b
        return self._level, b

    def score_one(self, x: dict) -> float:
        v = float(x.get("value", 0.0))
        t = float(x.get("timestamp", 0.0))
        exp, _ = self._expected(t)
        sigma = 1.25 * self._scale + 1e-9 * (abs(self._level) + 1.0)
        z = abs(v - exp) / sigma
        self._last = (exp, sigma, z)
        if self._n < self.warmup:
            return 0.0
        p = math.erfc(z / _SQRT2)
        return min(1.0, -math.log10(max(p, 1e-300)) / 10.0)

    def learn_one(self, x: dict) -> None:
        v = float(x.get("value", 0.0))
        t = float(x.get("timestamp", 0.0))
        a = self.alpha if self._n > 20 else 1.0 / (self._n + 1)
        if self._season is None:
            self._season = [float("nan")] * self.buckets
        b = int((t % self.period) / self.period * self.buckets)
        r_flat = v - self._level
        s = self._season[b]
        r_seas = v - s if s == s else r_flat
        if self._n == 0:
            self._level = v
        else:
            c = 4.0 * 1.25 * self._scale
            rc = max(-c, min(c, r_flat)) if c > 0 else r_flat
            self._level += a * rc
            self._scale += a * (min(abs(r_flat), c if c > 0 else abs(r_flat)) - self._scale)
            self._err_flat += a * (r_flat * r_flat - self._err_flat)
            self._err_season += a * (r_seas * r_seas - self._err_season)
        self._season[b] = v if s != s else s + 0.3 * (v - s)
        self._n += 1

    def explain(self) -> dict | None:
        if self._last is None:
            return None
        exp, sigma, z = self._last
        return {"expected": exp, "lower": exp - 4 * sigma, "upper": exp + 4 * sigma,
                "detector": "level"}
