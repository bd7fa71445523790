"""Robust level + automatic daily seasonality, scored by how far the evidence lies in its own tail.

Per point, seven sub-detectors look at the value against what the model expected and has seen:

- ``spike``: the robust z-score of the residual;
- ``level shift``: a short exponentially weighted mean of the z-scores (a run of same-signed residuals),
  at most the median of the last three z-scores, so that one large value is not a shift;
- ``sustained shift``: one-sided CUSUMs of the z-scores (each point adds how far its clipped z-score
  exceeds a drift, so only a change that persists adds up), restarted after every point that is news;
- ``sustained deviation``: a CUSUM of |z| beyond a small drift: the series has stayed off its expected
  value for a while, in either direction (it got noisier, or it moved and keeps moving);
- ``distribution change``: the recent z-scores sit on one side of where this series' own z-scores
  usually fall: each z-score is ranked against a histogram of the past ones, and the short mean of those
  ranks leaves one half (the values moved within their usual spread, or lost one side of it);
- ``range breakout``: the value leaves the range seen so far by more than ``breakout_margin`` of it;
- ``time-of-day breakout``: the value leaves the range seen so far at this time of day (``phase_cells``
  parts of a day, each judged with its nearer neighbour, once a day of history has been seen) by more
  than ``phase_margin`` of the whole range: a 2 s latency at 3 am, where only the midday peaks reached
  3 s, is no new extreme of the series, nor a spike of a size it has not produced before.

The two breakouts have a fixed surprise, growing with how far the value left its range (``breakout_surprise``,
``phase_surprise`` and ``phase_slope``); each of the other five is turned into a surprise ``-log p``
with a peaks-over-threshold tail fitted to
that series' own history of the same evidence (an exponential tail above a running high quantile), so
one threshold means the same thing on a calm series and on a spiky one. A large spike is also checked
against a count of the spike sizes seen so far: a size the series keeps producing (a periodic burst)
is only as surprising as its frequency says, and no spike is more surprising than the length of the
history can support (about ``log(n / 2)`` after ``n`` points). An anomaly is news the first
time: a surprise that does not exceed the largest one of the last ``refractory`` points is reported as
0, so one incident gives one report, and more only as its surprise grows, rather than a run of them.
Evidence that only a run of points can raise (level shift, sustained shift, distribution change)
climbs while a change goes on: its climb is reported once, at its peak, at most ``peak_wait`` points
later; spikes, breakouts and deviations are reported at once.

Everything runs in one loop over plain floats (:meth:`RobustSeasonal.score_many`); the per-point
``score_one``/``learn_one`` run that same loop on one point, so both paths give identical scores.
"""

from __future__ import annotations

import math
from array import array

from detector.detectors.base import Detector
from detector.detectors.registry import register
from detector.validation import require, whole

SUB_DETECTORS = ("none", "spike", "level shift", "range breakout", "sustained shift", "sustained deviation",
                 "distribution change", "time-of-day breakout")

# Z-scores are counted in a histogram of sign and log(1 + |z|), COUNT_BINS_PER_E bins per unit and
# COUNT_BINS per sign, so that a spike size the series has produced before is judged by how often it did,
# and each z-score can be ranked among the past ones (see ``score_many``).
COUNT_BINS_PER_E = 8.0
COUNT_BINS = 64
COUNT_MEMORY = 32768.0  # counts are halved when their total reaches this: old spikes fade out
COUNTED_ABOVE = 6.0  # surprise above which a spike is checked against the counts
# Pseudo-count of spikes at least as large as any: n points of history cannot support a tail
# probability much below COUNT_PRIOR / n, however far the exponential tail extrapolates.
COUNT_PRIOR = 2.0
TAIL_CLIP = 6.0  # one excess moves a tail's slope by at most this many times the slope (see _track_tail)
PROFILE_SCALE_FLOOR = 0.02  # the profile's error is taken as at least this share of the level's
# Values beyond this size are scored as this size: differences of two values near the largest float
# (1e308 and -1e308) overflow to infinity, and the level and scale would become NaN for good.
VALUE_LIMIT = 1e150
# The distribution-change channel ranks z-scores once the counts hold RANK_REFERENCE of them, and reports
# only once they hold RANK_REFERENCE + RANK_QUIET: its own tail must first learn what a rank mean of this
# series looks like.
RANK_REFERENCE = 100.0
RANK_QUIET = 300.0

# What each parameter may be, checked when the detector is built (see detector.validation).
_VALID = {
    "alpha": ("in (0, 1]", lambda v: 0 < v <= 1),
    "shift_rate": ("in (0, 1]", lambda v: 0 < v <= 1),
    "tail_quantile": ("in (0, 1)", lambda v: 0 < v < 1),
    "refractory": whole(0),
    "breakout_margin": (">= 0", lambda v: v >= 0),
    "breakout_surprise": (">= 0", lambda v: v >= 0),
    "cusum_drift": (">= 0", lambda v: v >= 0),
    "cusum_clip": ("> 0", lambda v: v > 0),
    "deviation_drift": (">= 0", lambda v: v >= 0),
    "deviation_clip": ("> 0", lambda v: v > 0),
    "rank_rate": ("in (0, 1]", lambda v: 0 < v <= 1),
    "peak_wait": whole(0),
    "period": (">= 0 (0: no season)", lambda v: v >= 0),
    "buckets": whole(1),
    "warmup": whole(0),
    "phase_cells": whole(0),
    "phase_surprise": (">= 0", lambda v: v >= 0),
    "phase_slope": (">= 0", lambda v: v >= 0),
    "phase_margin": (">= 0", lambda v: v >= 0),
    "phase_days": (">= 0", lambda v: v >= 0),
}


def _track_tail(x: float, u: float, b: float, up: float, down: float) -> tuple[float, float]:
    """One step of an evidence's tail model: ``u`` tracks a high quantile by fixed steps (``up`` when
    ``x`` is above it, ``down`` otherwise, so it settles where ``P(x > u) = down / (up + down)``) and ``b``
    the mean excess above it, the scale of the exponential tail. One excess counts for at most
    ``TAIL_CLIP`` times the current scale, so a single huge anomaly cannot flatten the tail and hide
    the next one."""
    if x > u:
        excess = x - u
        b += 0.02 * ((excess if excess < TAIL_CLIP * b else TAIL_CLIP * b) - b)
        u += up
    else:
        u -= down
    return u, (b if b > 0.05 else 0.05)


@register("robust_seasonal")
class RobustSeasonal(Detector):
    """Robust level/scale tracker with automatic daily seasonality and tail-calibrated surprise.

    Parameters
    ----------
    alpha : float
        Adaptation rate of the level and of both scales (per point); about ``1/alpha`` points of
        memory, plain running means until that many points have been seen.
    shift_rate : float
        Weight of the newest z-score in the level-shift mean (about ``1/shift_rate`` points).
    tail_quantile : float
        Quantile above which each sub-detector's history is modelled as an exponential tail.
    refractory : int
        Points during which a surprise must exceed the largest recent one to be reported.
    breakout_margin : float
        Fraction of the seen range a value must leave it by to count as a range breakout.
    breakout_surprise : float
        Surprise (``-log p``) given to a range breakout, before adding how far it broke out.
    cusum_drift : float
        Size a z-score must exceed (in one direction) to add to the sustained-shift CUSUM.
    cusum_clip : float
        Z-scores are clipped at this size before entering the CUSUM, so one spike adds at most
        ``cusum_clip - cusum_drift`` and only persistence makes the sum large.
    deviation_drift, deviation_clip : float
        The sustained-deviation CUSUM adds ``min(|z|, deviation_clip) - deviation_drift`` per point.
    rank_rate : float
        Weight of the newest rank in the distribution-change mean (about ``1/rank_rate`` points).
    peak_wait : int
        Points a climb of level-shift, sustained-shift or distribution-change surprise may be held to
        report it once at its peak (0 reports every step of a climb).
    period : float
        Candidate season length in seconds (a day); the profile is used only while its own robust
        error is below 0.8 of the level's, and residuals are then scaled by the profile's error.
    buckets : int
        Phase buckets per season; memory per series grows with this.
    warmup : int
        Points learned before any score above zero is returned, and before :meth:`explain` gives an
        expected value and band (None until then).
    phase_cells : int
        Parts of a season (``period``) whose own value range is kept for the time-of-day breakout
        (0: no time-of-day breakout).
    phase_surprise, phase_slope : float
        A value beyond the range of its part of the day (and of the nearer neighbouring part) by a share
        ``x`` of the whole range seen so far is given the surprise ``phase_surprise + phase_slope * x``.
    phase_margin : float
        Share of the whole range a value must leave its time of day's range by to count.
    phase_days : float
        Seasons of history needed before the time-of-day ranges are used.
    seed : int
        Unused (the model is deterministic); accepted for the common protocol.

    Examples
    --------
    >>> det = RobustSeasonal()
    >>> for t in range(300):
    ...     x = {"value": 10.0 + (t % 3), "timestamp": 60.0 * t}
    ...     _ = det.score_one(x); det.learn_one(x)
    >>> det.score_one({"value": 500.0, "timestamp": 18000.0}) > 0.5
    True
    >>> det.explain()["detector"]
    'range breakout'
    """

    def __init__(self, alpha: float = 0.005, shift_rate: float = 0.3, tail_quantile: float = 0.995,
                 refractory: int = 100, breakout_margin: float = 0.05, breakout_surprise: float = 10.0,
                 cusum_drift: float = 3.0, cusum_clip: float = 4.0, deviation_drift: float = 1.2,
                 deviation_clip: float = 6.0, rank_rate: float = 0.0625, peak_wait: int = 3,
                 period: float = 86400.0, buckets: int = 96, warmup: int = 50, seed: int = 0,
                 phase_cells: int = 7, phase_surprise: float = 8.0, phase_slope: float = 10.0,
                 phase_margin: float = 0.06, phase_days: float = 1.0):
        self.alpha = alpha
        self.shift_rate = shift_rate
        self.tail_quantile = tail_quantile
        self.refractory = refractory
        self.breakout_margin = breakout_margin
        self.breakout_surprise = breakout_surprise
        self.cusum_drift = cusum_drift
        self.cusum_clip = cusum_clip
        self.deviation_drift = deviation_drift
        self.deviation_clip = deviation_clip
        self.rank_rate = rank_rate
        self.peak_wait = peak_wait
        self.period = period
        self.buckets = buckets
        self.warmup = warmup
        self.seed = seed
        self.phase_cells = phase_cells
        self.phase_surprise = phase_surprise
        self.phase_slope = phase_slope
        self.phase_margin = phase_margin
        self.phase_days = phase_days
        for name, (rule, ok) in _VALID.items():
            require(getattr(self, name), name, rule, ok)

    # -- state -------------------------------------------------------------------------------
    # Scalars live in one list so that a step can load them into locals and store them back.
    # (u, b) pairs are the tail models of spike, level shift, sustained shift, deviation and rank evidence;
    # held, held_by and climb are a climb of reports waiting for its peak; first is the first point's
    # time and rising the last value while the series has only risen (a counter), until its first day ends.
    _FIELDS = ("n", "level", "scale", "scale_season", "cusum_up", "shift", "u1", "b1", "u2", "b2",
               "hi", "lo", "m1", "a1", "m2", "a2", "evidence", "expected", "sigma", "fired", "z",
               "cusum_down", "u3", "b3", "deviation", "u4", "b4", "z1", "z2", "rank_mean", "u6", "b6",
               "held", "held_by", "climb", "first", "rising")
    _INITIAL = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0,
                -math.inf, math.inf, 0.0, 0.0, 0.0, 0.0, 0.0, math.nan, math.nan, 0.0, 0.0,
                0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, math.nan, math.nan)

    def _state(self) -> list:
        st = self.__dict__.get("_st")
        if st is None:
            st = self._st = list(self._INITIAL)
            self._season = array("d", [math.nan]) * self.buckets
        if self.__dict__.get("_phase_hi") is None or len(self._phase_hi) != self.phase_cells:
            # Highest and lowest value seen in each part of the season (none yet).
            self._phase_hi = array("d", [-math.inf]) * self.phase_cells
            self._phase_lo = array("d", [math.inf]) * self.phase_cells
        if len(st) < len(self._INITIAL):  # restored from a checkpoint written by an older version
            st.extend(self._INITIAL[len(st):])
        counts = self.__dict__.get("_counts")
        if counts is None or len(counts) != 2 * COUNT_BINS + 2:
            # Cells COUNT_BINS - 1 down to 0 count negative z by size, COUNT_BINS up positive z; then
            # the total, and the total of negative z. Float32 holds these counts exactly.
            self._counts = array("f", [0.0]) * (2 * COUNT_BINS + 2)
            if counts is not None:
                # Written by a version that counted sizes only: share each size between both signs.
                for k in range(COUNT_BINS):
                    self._counts[COUNT_BINS - 1 - k] = self._counts[COUNT_BINS + k] = 0.5 * counts[k]
                self._counts[2 * COUNT_BINS] = counts[COUNT_BINS]
                self._counts[2 * COUNT_BINS + 1] = 0.5 * counts[COUNT_BINS]
        return st

    def score_one(self, x: dict) -> float:
        t = float(x.get("timestamp", 0.0))
        v = float(x.get("value", math.nan))
        return self.score_many((t,), (v,), learn=False)[0]

    def learn_one(self, x: dict) -> None:
        t = float(x.get("timestamp", 0.0))
        v = float(x.get("value", math.nan))
        self.score_many((t,), (v,), learn=True)

    @property
    def evidence(self) -> float:
        """Size of the last scored point's robust z-score: the continuous quantity calibrated into a
        confidence (it is stationary on normal data, unlike the tail-relative surprise)."""
        return self._state()[20]

    def explain(self) -> dict | None:
        st = self._state()
        exp, sigma = st[17], st[18]
        # No expected value until the model has one: through the warm-up the level and scale are still
        # forming from the first few points (after one point, 0 +- 4e-9; after two, a zero-width band),
        # and the scores are held at 0 for that reason.
        if exp != exp or st[0] <= self.warmup:
            return None
        band = 4.0 * sigma
        # A series never seen below 0 (a ratio, a rate, a count) is not expected below 0 either.
        lower = exp - band if exp - band >= 0.0 or st[11] < 0.0 else 0.0
        return {"expected": exp, "lower": lower, "upper": exp + band,
                "detector": SUB_DETECTORS[int(st[19])], "surprise": st[16]}

    def score_many(self, timestamps, values, learn: bool = True, evidence_out: list | None = None) -> list[float]:
        """Score each point, then (if ``learn``) learn it; returns the scores in [0, 1].

        With ``learn=False`` only the first point is scored and the model is left unchanged.
        ``evidence_out``, when given, receives each point's ``evidence`` (the robust |z|).
        """
        st = self._state()
        (n, level, scale, scale_s, cu, shift, u1, b1, u2, b2, hi, lo, m1, a1, m2, a2,
         evidence, expected, sigma, fired, za, cd, u3, b3, cv, u4, b4, z1, z2, rm, u6, b6,
         held, held_by, climb, first, rising) = st
        season, counts = self._season, self._counts
        phase_hi, phase_lo = self._phase_hi, self._phase_lo
        pcells, pbrk, pslope = self.phase_cells, self.phase_surprise, self.phase_slope
        pmargin = self.phase_margin
        pfrom = self.phase_days * self.period
        use_phase = pcells > 0 and self.period > 0
        pratio = pcells / self.buckets
        alpha, kshift, q = self.alpha, self.shift_rate, self.tail_quantile
        up, down = 0.05 * q, 0.05 * (1.0 - q)  # quantile tracking steps, in z units
        base_surprise = -math.log(1.0 - q)
        refractory, margin, brk = self.refractory, self.breakout_margin, self.breakout_surprise
        period, buckets, warmup = self.period, self.buckets, self.warmup
        drift, cclip = self.cusum_drift, self.cusum_clip
        vdrift, vclip = self.deviation_drift, self.deviation_clip
        rrate = self.rank_rate
        wait = self.peak_wait
        # The rank mean is measured in standard deviations it has while ranks are uniform (those of an
        # exponentially weighted mean of uniform(-1/2, 1/2) values).
        rnorm = 1.0 / math.sqrt(rrate / (2.0 - rrate) / 12.0)
        NB, NT, NN = COUNT_BINS, 2 * COUNT_BINS, 2 * COUNT_BINS + 1
        rank_from, rank_reports_from = RANK_REFERENCE, RANK_REFERENCE + RANK_QUIET
        log, log1p = math.log, math.log1p
        out = []
        append = out.append
        keep = evidence_out.append if evidence_out is not None else None
        for t, v in zip(timestamps, values):
            if v != v or v in (math.inf, -math.inf):
                append(0.0)  # nothing to score; a gap is not evidence
                za = math.nan
                if keep is not None:
                    keep(za)
                if not learn:
                    break
                continue
            if v > VALUE_LIMIT:
                v = VALUE_LIMIT
            elif v < -VALUE_LIMIT:
                v = -VALUE_LIMIT
            pos = (t % period) / period * buckets if period > 0 else 0.0
            b = int(pos)
            s = season[b]
            # The profile is piecewise linear between bucket centres: the prediction interpolates
            # between this bucket and the nearer neighbour (this bucket alone while that one is unset).
            sp, bn, ph = s, b, 0.0
            if s == s and buckets > 1:
                ph = pos - b - 0.5
                if ph >= 0.0:
                    bn = b + 1 if b + 1 < buckets else 0
                else:
                    bn = b - 1 if b > 0 else buckets - 1
                    ph = -ph
                s_next = season[bn]
                if s_next == s_next:
                    sp = s + ph * (s_next - s)
                else:
                    bn, ph = b, 0.0
            if n == 0:
                first, rising = t, v
            if rising == rising:
                # During its first day the profile predicts each phase from the values just seen there,
                # which follow a climbing series closely; once the day wraps it predicts from a day
                # ago, which for a counter is far behind. A series that has only risen (resets of a
                # counter apart) so far starts the next day with the profile's error at the level's,
                # so the profile must earn its use again (it will not, for a counter).
                rising = v if v >= rising or v < 0.1 * rising else math.nan
                if t - first >= period * (1.0 - 2.0 / buckets):
                    rising = math.nan
                    if scale_s < scale:
                        scale_s = scale
            # The profile is used only while it predicts clearly better than the level, and then the
            # residual is scaled by the profile's own error: a seasonal series is calm around its
            # profile even when its swings are large.
            if s == s and scale_s < 0.8 * scale:
                expected, sc = sp, scale_s
                # A profile that fits a noise-free series almost exactly would otherwise see its
                # error shrink towards zero, and every day's same small misfit grow into a new record.
                if sc < PROFILE_SCALE_FLOOR * scale:
                    sc = PROFILE_SCALE_FLOOR * scale
            else:
                expected, sc = level, scale
            sigma = 1.25 * sc + 1e-9 * (abs(level) + 1.0) + 1e-12
            z = (v - expected) / sigma
            za = -z if z < 0 else z
            if za > 1e3:
                za = 1e3
            zc = 10.0 if z > 10.0 else (-10.0 if z < -10.0 else z)
            shift_new = shift + kshift * (zc - shift)
            f2 = -shift_new if shift_new < 0 else shift_new
            lo3, md3 = (zc, z1) if zc < z1 else (z1, zc)  # median of this and the previous two z
            if md3 > z2:
                md3 = z2 if z2 > lo3 else lo3
            if md3 < 0.0:
                md3 = -md3
            if md3 < f2:
                f2 = md3
            e1 = (za - u1) / b1
            # A large spike of a size the series has produced before is only as surprising as the
            # share of points that were at least that large (a periodic burst is not news each time).
            kz = int(COUNT_BINS_PER_E * log1p(za))
            if kz >= COUNT_BINS:
                kz = COUNT_BINS - 1
            kr = NB + kz if z >= 0.0 else NB - 1 - kz  # this z's cell of the counts
            if e1 + base_surprise > COUNTED_ABOVE:
                kn = NB - 1 - kz  # the cell of a negative z of this size
                seen = (sum(counts[NB + kz + 1:NT]) + sum(counts[:kn])
                        + 0.5 * (counts[NB + kz] + counts[kn]) + COUNT_PRIOR)
                e_seen = -log(seen / (counts[NT] + COUNT_PRIOR)) - base_surprise
                if e_seen < e1:
                    e1 = e_seen
            e2 = (f2 - u2) / b2
            # Sustained shift: one CUSUM per direction of the clipped z-score beyond the drift.
            zq = cclip if zc > cclip else (-cclip if zc < -cclip else zc)
            cu_new = cu + zq - drift
            if cu_new < 0.0:
                cu_new = 0.0
            cd_new = cd - zq - drift
            if cd_new < 0.0:
                cd_new = 0.0
            f3 = cu_new if cu_new > cd_new else cd_new
            e3 = (f3 - u3) / b3
            # Sustained deviation: a CUSUM of |z| beyond a drift, whichever the sign of each residual.
            cv_new = cv + (vclip if za > vclip else za) - vdrift
            if cv_new < 0.0:
                cv_new = 0.0
            e4 = (cv_new - u4) / b4
            # Distribution change: the rank of this z among the past ones (the share below it, ties
            # counted half) is uniform while nothing changes, so the recent mean of rank - 1/2 stays
            # near 0; values that settle on one side of their usual spread move it away. Each point
            # moves it by at most rank_rate / 2: one spike is not a change of distribution.
            rtot = counts[NT]
            below = counts[NN] + sum(counts[NB:kr]) if kr >= NB else counts[NN] - sum(counts[kr:NB])
            if rtot >= rank_from:
                rm_new = rm + rrate * ((below + 0.5 * counts[kr]) / rtot - 0.5 - rm)
            else:
                rm_new = rm
            f6 = (rm_new if rm_new > 0.0 else -rm_new) * rnorm
            e6 = (f6 - u6) / b6 if rtot >= rank_reports_from else -1.0
            evidence, fired = e1, 1.0
            if e2 > evidence:
                evidence, fired = e2, 2.0
            if e3 > evidence:
                evidence, fired = e3, 4.0
            if e4 > evidence:
                evidence, fired = e4, 5.0
            if e6 > evidence:
                evidence, fired = e6, 6.0
            raw = evidence + base_surprise if evidence > 0.0 else 0.0
            if n <= warmup:
                raw = 0.0
            elif v > hi or v < lo:
                # Leaving a range of zero width (a constant series) counts as leaving it by its width.
                out_of_range = (v - hi if v > hi else lo - v) / (hi - lo) if hi > lo else 1.0
                if out_of_range > margin and brk + out_of_range > raw:
                    raw = brk + out_of_range
                    evidence, fired = raw, 3.0
            if use_phase:
                # Time-of-day breakout: the value leaves the range this part of the day (with the nearer
                # neighbouring part) has shown on the days before.
                ppos = pos * pratio
                pc = int(ppos)
                if pc >= pcells:
                    pc = pcells - 1
                # (A part not seen yet has no range; an unseen neighbour widens nothing.)
                if first != first:
                    first = t  # restored from a checkpoint older than the first point's time: from now on
                if t - first >= pfrom and n > warmup and phase_hi[pc] >= phase_lo[pc] and hi > lo:
                    pn = (pc + 1 if pc + 1 < pcells else 0) if ppos - pc >= 0.5 else (pc - 1 if pc > 0 else pcells - 1)
                    top, bottom = phase_hi[pc], phase_lo[pc]
                    if phase_hi[pn] > top:
                        top = phase_hi[pn]
                    if phase_lo[pn] < bottom:
                        bottom = phase_lo[pn]
                    if v > top or v < bottom:
                        out_of_phase = (v - top if v > top else bottom - v) / (hi - lo)
                        if out_of_phase > pmargin and pbrk + pslope * out_of_phase > raw:
                            raw = pbrk + pslope * out_of_phase
                            evidence, fired = raw, 7.0
            # Refractory rule: report only a surprise larger than any of the last `refractory` points.
            if a1 > refractory:
                m1, a1, m2, a2 = m2, a2, 0.0, 0.0
            news = raw > m1
            # Evidence that only a run of points can raise (level shift, sustained shift, distribution
            # change) grows point by point while a change goes on, and each step is news. Such a climb
            # is held and reported once, at its peak: on the point after it stops growing, or once it
            # has been held `peak_wait` points. Evidence one point can raise (spike, range breakout,
            # sustained deviation) is reported at once, with any climb held so far.
            report = 0.0
            if news:
                if climb < wait and (fired == 2.0 or fired == 4.0 or fired == 6.0):
                    held, held_by, climb = raw, fired, climb + 1.0
                else:
                    report, held, climb = raw, 0.0, 0.0
            elif held > 0.0:
                report, held, climb = held, 0.0, 0.0
                fired = held_by  # explain() names the sub-detector of the report
            score = report / (report + 10.0)
            append(score)
            if keep is not None:
                keep(za)
            if not learn:
                break
            if raw >= m1:
                m1, a1, m2, a2 = raw, 0.0, 0.0, 0.0
            elif raw >= m2:
                m2, a2 = raw, 0.0
            a1 += 1.0
            a2 += 1.0
            # Learn: robust (Huber-clipped) level and scale, seasonal profile and its own scale, tails
            # of the evidence. Until the first 1/alpha points have been seen the averages are plain
            # running means, so a short history is not dominated by its first point.
            a = alpha if n * alpha > 1.0 else 1.0 / (n + 1.0)
            if n == 0:
                level = v
            else:
                r = v - level
                c = 5.0 * scale
                if c > 0.0:
                    r = c if r > c else (-c if r < -c else r)
                level += a * r
                scale += a * ((r if r >= 0 else -r) - scale)
            if s == s:
                rs = v - sp
                c = 5.0 * scale_s
                if c > 0.0:
                    rs = c if rs > c else (-c if rs < -c else rs)
                scale_s += a * ((rs if rs >= 0 else -rs) - scale_s)
                # The error of an interpolated prediction is shared by its two buckets, by their weights.
                season[b] = s + 0.3 * (1.0 - ph) * rs
                if bn != b:
                    season[bn] += 0.3 * ph * rs
            else:
                season[b] = v
                if scale_s == 0.0:
                    scale_s = scale  # first visit of the profile: start from the level's scale
            shift = shift_new
            z1, z2 = zc, z1
            # News restarts the sums: what is reported again must persist anew.
            if news:
                cu = cd = cv = 0.0
            else:
                cu, cd, cv = cu_new, cd_new, cv_new
            u1, b1 = _track_tail(za, u1, b1, up, down)
            u2, b2 = _track_tail(f2, u2, b2, up, down)
            u3, b3 = _track_tail(f3, u3, b3, up, down)
            u4, b4 = _track_tail(cv_new, u4, b4, up, down)
            u6, b6 = _track_tail(f6, u6, b6, up, down)
            rm = rm_new
            if n > warmup:  # the first z-scores, against a scale still forming, are not spike sizes
                counts[kr] += 1.0
                counts[NT] += 1.0
                if kr < NB:
                    counts[NN] += 1.0
                if counts[NT] >= COUNT_MEMORY:
                    for i in range(NN + 1):
                        counts[i] *= 0.5
            if v > hi:
                hi = v
            if v < lo:
                lo = v
            if use_phase:
                if v > phase_hi[pc]:
                    phase_hi[pc] = v
                if v < phase_lo[pc]:
                    phase_lo[pc] = v
            n += 1
        if learn:
            st[:] = (n, level, scale, scale_s, cu, shift, u1, b1, u2, b2, hi, lo, m1, a1, m2, a2,
                     evidence, expected, sigma, fired, za, cd, u3, b3, cv, u4, b4, z1, z2, rm, u6, b6,
                     held, held_by, climb, first, rising)
        else:
            st[16:21] = (evidence, expected, sigma, fired, za)
        return out

