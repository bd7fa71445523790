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
measures (a redeployed pod, a crashed process), and so is a restart the caller tells of with
``restarted_at`` (one too quick to miss a scrape): the short mean starts again from the new value and
the series *settles* for ``settle_seconds`` (warm-up of caches and JIT), during which nothing is
scored, the baseline is not moved and the short mean follows four times faster, so that the
baseline starts again from where the series settled rather than from a mean still catching up.
The first ``warmup_seconds`` of a series are not scored.

A *step* is not a drift either. When points land far off the short mean (``step_factor`` times
further than the series' usual distance from it, which for a steadily trending series is its movement
over one short window) on the same side for ``step_seconds`` in a row, the series moved to a new level
within minutes: a log rotation, a cache flush, a fleet change. Spotting that is the point model's
business (``robust_seasonal`` flags level shifts); here the short mean starts again from the new level and
the baseline keeps the gap it had from the short mean before the step; nothing is scored (nor learnt into
the baseline) for two ``short_seconds`` while the short mean settles, then the baseline is placed that gap
below the settled short mean; a series that settled noisier than before (a latency that tripled, noise
and all) has its gap's deviation widened by the same factor. A spike or a blip shorter than
``step_seconds`` stays what it was (scored while it lasts, barely learnt), and a drift, whose every
point is only a little ahead of the short mean,
never looks like a step: drift evidence has to build up gradually. Unlike a restart, a step does not
make the series *settling*, so the point scores of the shift are not held back.

Memory is a fixed handful of floats per series.
"""

from __future__ import annotations

import math

from detector.detectors.base import Detector
from detector.detectors.registry import register
from detector.validation import require, whole

(_T0, _TL, _IV, _SH, _LG, _DM, _DA, _SU, _Z, _D, _NS, _DT, _WS, _WL, _WT,
 _SS, _SG, _SR, _GB, _SQ, _RH) = range(21)
_NEW = [math.nan, math.nan, 0.0, 0.0, 0.0, 0.0, 0.0, -math.inf, 0.0, 0.0, 0.0, math.nan, 0.0, 0.0, 0.0,
        math.nan, 0.0, 0.0, 0.0, -math.inf, math.inf]


# What each parameter may be, checked when the detector is built (see detector.validation).
_VALID = {
    "short_seconds": ("> 0", lambda v: v > 0),
    "long_seconds": ("> 0", lambda v: v > 0),
    "stats_seconds": ("> 0", lambda v: v > 0),
    "warmup_seconds": (">= 0", lambda v: v >= 0),
    "clip": ("> 0", lambda v: v > 0),
    "gap_factor": ("> 1 (a pause of one usual interval is no restart)", lambda v: v > 1),
    "settle_seconds": (">= 0", lambda v: v >= 0),
    "step_factor": ("> 0", lambda v: v > 0),
    "step_seconds": (">= 0", lambda v: v >= 0),
    "seed": whole(0),
}


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
    step_factor : float
        A point this many times further off the short mean than the series' usual distance from it
        (its noise width) is part of a step, if the next ones are too.
    step_seconds : float
        Event time points must stay that far off, on the same side, for a step: shorter is a blip.
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

    # Class defaults for a detector saved before steps were recognised (restored without __init__).
    step_factor = 8.0
    step_seconds = 150.0

    def __init__(self, short_seconds: float = 600.0, long_seconds: float = 10800.0,
                 stats_seconds: float = 21600.0, warmup_seconds: float = 7200.0, clip: float = 3.0,
                 gap_factor: float = 1.5, settle_seconds: float = 3600.0, step_factor: float = 8.0,
                 step_seconds: float = 150.0, seed: int = 0):
        self.short_seconds = short_seconds
        self.long_seconds = long_seconds
        self.stats_seconds = stats_seconds
        self.warmup_seconds = warmup_seconds
        self.clip = clip
        self.gap_factor = gap_factor
        self.settle_seconds = settle_seconds
        self.step_factor = step_factor
        self.step_seconds = step_seconds
        self.seed = seed
        for name, (rule, ok) in _VALID.items():
            require(getattr(self, name), name, rule, ok)

    def _state(self) -> list:
        st = self.__dict__.get("_st")
        if st is None:
            # first time, last time, typical interval, short mean, long mean, gap mean, gap deviation,
            # settled-after time, last z, last gap,
            # noise (mean absolute step of a point off the short mean), then the last interval and its
            # three weights: scrapes are regular, so the exponentials are mostly computed once;
            # then a possible step: when its run began (nan: none), its side, the noise width and the
            # gap between short mean and baseline from before it, and the time a step has settled;
            # then the time from which the next point is a restart (told by ``restarted_at``)
            st = self._st = list(_NEW)
        elif len(st) < len(_NEW):
            st.extend(_NEW[len(st):])  # a state saved before steps were recognised
        return st

    # -- the protocol ----------------------------------------------------------------------------

    def score_one(self, x: dict) -> float:
        z = self._step(float(x.get("timestamp", 0.0)), float(x.get("value", math.nan)), learn=False)
        return 1.0 - math.exp(-abs(z)) if z == z else 0.0

    def learn_one(self, x: dict) -> None:
        self._step(float(x.get("timestamp", 0.0)), float(x.get("value", math.nan)), learn=True)

    def restarted_at(self, t: float) -> None:
        """The process behind the series restarted at ``t`` without a gap in its scrapes (its start
        time changed, a counter of it reset): its next point from ``t`` on is taken as a restart."""
        st = self._state()
        if t < st[_RH]:
            st[_RH] = t

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
        st = self.__dict__.get("_st")
        if st is None or len(st) < len(_NEW):
            st = self._state()
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
        restarted = (interval > 0.0 and dt > self.gap_factor * interval) or t >= st[_RH]
        since, stepped, begun = st[_SS], False, False  # a step's run: when it began (nan: none)
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
            since = math.nan
        else:
            # The point is scored with all of its weight (``seen``), but learnt Huber-clipped: a spike
            # or a one-minute blip scores for as long as it lasts and then moves the short mean by a
            # few noise widths at most, while a drift, which moves every point a little, is followed
            # in full and keeps scoring.
            r = raw = v - short
            seen = short + ws * r
            c = self.clip * noise
            if c > 0.0:
                r = c if r > c else (-c if r < -c else r)
            learnt = short + r  # the point as it is learnt, here and by the baseline
            # While a restarted process settles, its series climbs to where it will run; the short mean
            # follows at four times the pace, so that the baseline it starts from once settled is that
            # level and not a lagging one (whose catching up would read as a drift).
            short += (1.0 - math.exp(-4.0 * dt / self.short_seconds) if t < settle else ws) * r
            noise += ws * ((r if r >= 0 else -r) - noise)
            # A step: points far off the short mean, all on one side, for ``step_seconds``. The run is
            # judged against the noise width from before it began, which the run itself inflates.
            if since == since:
                if raw * st[_SG] > self.step_factor * st[_SR]:
                    stepped = t - since >= self.step_seconds
                else:
                    since = math.nan  # back where it was: a blip, not a step
            if since != since and t >= settle and st[_NS] > 0.0 and abs(raw) > self.step_factor * st[_NS]:
                since, begun = t, True
        d = seen - long_
        scale = dabs + 1e-9 * (abs(long_) + 1.0) + 1e-12
        z = (d - dmean) / scale
        if stepped:
            # The series jumped to a new level: the short mean starts again from there and settles on it
            # unscored for two short windows, the noise width is the one from before the run, and the
            # baseline keeps its gap from before the step, first from this point, then (once settled)
            # from the short mean, so that one noisy point does not offset it for hours.
            short, noise = v, st[_SR]
            long_ = v - st[_GB]
            d = short - long_
            quiet = t + 2.0 * self.short_seconds
            since = math.nan
        else:
            quiet = st[_SQ]
        if t < settle or t < quiet or t - t0 < self.warmup_seconds:
            z = 0.0
        if not learn:
            st[_Z], st[_D] = z, d
            return z
        if not restarted:
            interval = dt if interval == 0.0 else interval + 0.1 * (dt - interval)
        if t >= settle and t >= quiet:
            if st[_SU] > tl:
                # First point after settling: the baseline starts again from what the series reads
                # now, as what it read before the restart no longer describes the new process.
                long_ = short
            elif quiet > tl:
                # First point after a step settled: the baseline is where it was against the series.
                long_ = short - st[_GB]
                # A series that stepped to a noisier level (latency tripling, noise and all) has a
                # noisier short mean too: its gap's deviation grows by as much, or the new noise alone
                # would keep crossing the threshold for hours.
                if st[_SR] > 0.0 and noise > st[_SR]:
                    dabs *= noise / st[_SR]
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
        if begun:  # its side, and the noise width and gap from before it (from before the last step,
            # if this one comes while that one settles)
            st[_SG], st[_SR] = 1.0 if raw > 0.0 else -1.0, st[_NS]
            if t >= st[_SQ]:
                st[_GB] = st[_SH] - st[_LG]
        st[_TL], st[_IV], st[_SH], st[_LG], st[_DM], st[_DA], st[_SU], st[_Z], st[_D], st[_NS] = (
            t, interval, short, long_, dmean, dabs, settle, z, d, noise)
        st[_SS], st[_SQ] = since, quiet
        if restarted:
            st[_RH] = math.inf
        return z

    # Score then learn one point in one step (the pipeline's path): ``update(t, v)`` returns the signed
    # z. An alias rather than a wrapper, as it runs for every metric point.
    update = _step
