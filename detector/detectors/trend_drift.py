"""Slow drift of a series away from its own long baseline: the precursor a point detector adapts to.

A leak, a filling disk or a creeping latency moves a series by a few percent an hour. A detector
built to flag spikes and level shifts (``robust_seasonal``) follows such a drift with its adaptive
level and never sees a large residual. This one compares two time-based exponential means of the
series, a short one (``short_seconds``, which smooths measurement noise away) and a long one
(``long_seconds``, the baseline), and scores their gap ``d = short - long`` against how that gap
usually behaves on this series: its running mean (a steady trend, such as a disk that always grows,
keeps the short mean a constant step ahead of the long one, and that step is normal) and its mean
absolute deviation. ``z = (d - mean) / deviation`` is large only when the series moves away from
its baseline faster or further than it ever did while the statistics were learnt. Scored gaps do
not update those statistics, so a drift does not teach the model that drifting is normal.

Event time drives everything (weights are ``1 - exp(-dt / tau)``), so irregular scrapes are fine.
A gap in the series longer than ``gap_factor`` typical intervals is a restart of whatever the series
measures (a redeployed pod, a crashed process): the short mean starts again from the new value and
the series *settles* for ``settle_seconds`` (warm-up of caches and JIT), during which nothing is
scored and the baseline is not moved. The first ``warmup_seconds`` of a series are not scored.

Memory is a fixed handful of floats per series.
"""

from __future__ import annotations

import math

from detector.detectors.base import Detector
from detector.detectors.registry import register

_T0, _TL, _IV, _SH, _LG, _DM, _DA, _SU, _Z, _D, _NS, _DT, _WS, _WL, _WT = range(15)


@register("trend_drift")
class TrendDrift(Detector):
    """Short-against-long baseline drift, scored against the gap's own normal behaviour.

    Parameters
    ----------
    short_seconds : float
        Time constant of the short mean (what the series reads now, without its noise).
    long_seconds : float
        Time constant of the baseline; drifts much slower than this are absorbed.
    stats_seconds : float
        Time constant of the mean and mean absolute deviation of the gap.
    warmup_seconds : float
        Event time a series is learnt before it is scored.
    clip : float
        A point moves the short mean by at most this many noise widths (mean absolute deviations of
        points from the short mean), so spikes and short blips barely move it.
    gap_factor : float
        A pause this many typical intervals long counts as a restart of the series.
    settle_seconds : float
        Event time after a restart during which the series is not scored.
    seed : int
        Unused (the model is deterministic); accepted for the common protocol.

    Examples
    --------
    >>> det = TrendDrift(warmup_seconds=3600.0)
    >>> for i in range(480):  # four hours of a flat, slightly noisy series
    ...     x = {"value": 100.0 + (i % 3), "timestamp": 30.0 * i}
    ...     _ = det.score_one(x); det.learn_one(x)
    >>> for i in range(480, 600):  # then it climbs by 1% every five minutes
    ...     x = {"value": 100.0 * (1 + (i - 480) / 1000.0), "timestamp": 30.0 * i}
    ...     _ = det.score_one(x); det.learn_one(x)
    >>> det.score_one({"value": 112.0, "timestamp": 18000.0}) > 0.9
    True
    """

    def __init__(self, short_seconds: float = 600.0, long_seconds: float = 10800.0,
                 stats_seconds: float = 21600.0, warmup_seconds: float = 7200.0, clip: float = 3.0,
                 gap_factor: float = 1.5, settle_seconds: float = 3600.0, seed: int = 0):
        self.short_seconds = short_seconds
        self.long_seconds = long_seconds
        self.stats_seconds = stats_seconds
        self.warmup_seconds = warmup_seconds
        self.clip = clip
        self.gap_factor = gap_factor
        self.settle_seconds = settle_seconds
        self.seed = seed

    def _state(self) -> list:
        st = self.__dict__.get("_st")
        if st is None:
            # first time, last time, typical interval, short mean, long mean, gap mean, gap deviation,
            # settled-after time, last z, last gap
            # settled-after time, last z, last gap,
            # noise (mean absolute step of a point off the short mean), then the last interval and its
            # three weights: scrapes are regular, so the exponentials are mostly computed once
            st = self._st = [math.nan, math.nan, 0.0, 0.0, 0.0, 0.0, 0.0, -math.inf, 0.0, 0.0, 0.0,
                             math.nan, 0.0, 0.0, 0.0]
        return st

    # -- the protocol ----------------------------------------------------------------------------

    def score_one(self, x: dict) -> float:
        z = self._step(float(x.get("timestamp", 0.0)), float(x.get("value", math.nan)), learn=False)
        return 1.0 - math.exp(-abs(z)) if z == z else 0.0

    def learn_one(self, x: dict) -> None:
        self._step(float(x.get("timestamp", 0.0)), float(x.get("value", math.nan)), learn=True)


    def settling(self, t: float) -> bool:
        """True while the series is warming up after a restart (see the module docstring); the
        ``baseline`` of :meth:`explain` is then still the level from before the restart."""
        return t < self._state()[_SU]


    def explain(self) -> dict | None:
        st = self._state()
        if st[_T0] != st[_T0]:
            return None
        expected = st[_LG] + st[_DM]
        band = 4.6 * st[_DA]  # where the confidence reaches 0.99
        return {"observed": st[_SH], "expected": expected, "lower": expected - band, "upper": expected + band,
                "detector": "drift", "z": st[_Z], "baseline": st[_LG]}

    # -- one step ----------------------------------------------------------------------------------

    def _step(self, t: float, v: float, learn: bool = True) -> float:
        st = self.__dict__.get("_st") or self._state()
        if v != v or v in (math.inf, -math.inf):
            return 0.0  # a gap is not evidence
        t0, tl = st[_T0], st[_TL]
        if t0 != t0:
            if learn:
                st[_T0] = st[_TL] = t
                st[_SH] = st[_LG] = v
            return 0.0
        dt = t - tl
        if dt < 0.0:
            return 0.0  # late point: the means have moved on
        interval, short, long_, dmean, dabs, settle, noise = (st[_IV], st[_SH], st[_LG], st[_DM], st[_DA],
                                                              st[_SU], st[_NS])
        restarted = interval > 0.0 and dt > self.gap_factor * interval
        if dt == st[_DT]:
            ws, wl, wt = st[_WS], st[_WL], st[_WT]
        else:
            ws = 1.0 - math.exp(-dt / self.short_seconds)
            wl = 1.0 - math.exp(-dt / self.long_seconds)
            wt = 1.0 - math.exp(-dt / self.stats_seconds)
            if learn:
                st[_DT], st[_WS], st[_WL], st[_WT] = dt, ws, wl, wt
        if restarted:
            short = seen = learnt = v
            settle = t + self.settle_seconds
        else:
            # The point is scored with all of its weight (``seen``), but learnt Huber-clipped: a spike
            # or a one-minute blip scores for as long as it lasts and then moves the short mean by a
            # few noise widths at most, while a drift, which moves every point a little, is followed
            # in full and keeps scoring.
            r = v - short
            seen = short + ws * r
            c = self.clip * noise
            if c > 0.0:
                r = c if r > c else (-c if r < -c else r)
            learnt = short + r  # the point as it is learnt, here and by the baseline
            short += ws * r
            noise += ws * ((r if r >= 0 else -r) - noise)
        d = seen - long_
        scale = dabs + 1e-9 * (abs(long_) + 1.0) + 1e-12
        z = (d - dmean) / scale
        if t < settle or t - t0 < self.warmup_seconds:
            z = 0.0
        if not learn:
            st[_Z], st[_D] = z, d
            return z
        if not restarted:
            interval = dt if interval == 0.0 else interval + 0.1 * (dt - interval)
        if t >= settle:
            if st[_SU] > tl:
                # First point after settling: the baseline starts again from what the series reads
                # now, as what it read before the restart no longer describes the new process.
                long_ = short
            gap = short - long_  # the gap as learnt: without the unclipped part of a spike
            long_ += wl * (learnt - long_)
            # Plain running means while the history is shorter than the time constant, so the first
            # hours are not dominated by the first point. While drifting, the gap's statistics learn
            # at a quarter of the pace: a drift does not quickly teach the model that drifting is
            # normal, yet a series whose behaviour changed for good is not scored as drifting forever.
            age = t - t0
            w = max(wt, dt / age if age > 0.0 else 1.0)
            if abs(z) >= 4.6:
                w *= 0.25
            dmean += w * (gap - dmean)
            dabs += w * (abs(gap - dmean) - dabs)
        st[_TL], st[_IV], st[_SH], st[_LG], st[_DM], st[_DA], st[_SU], st[_Z], st[_D], st[_NS] = (
            t, interval, short, long_, dmean, dabs, settle, z, d, noise)
        return z

    # Score then learn one point in one step (the pipeline's path): ``update(t, v)`` returns the signed
    # z. An alias rather than a wrapper, as it runs for every metric point.
    update = _step
