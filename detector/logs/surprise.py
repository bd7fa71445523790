"""Tail probabilities as surprise scores: -log10 of the chance of a count at least (or at most)
this extreme under the expected rate. A score of 3 means "one window in a thousand"."""

from __future__ import annotations

import math

from scipy.special import bdtrc, pdtr, pdtrc

# log10 of the smallest tail probability reported: beyond this everything is equally alarming.
MAX_SURPRISE = 30.0


def _log10(p: float) -> float:
    if p <= 0.0 or p != p:
        return MAX_SURPRISE
    return min(MAX_SURPRISE, -math.log10(p))


def poisson_high(count: int, rate: float) -> float:
    """Surprise of seeing ``count`` or more events when ``rate`` were expected."""
    if count <= 0 or count <= rate:
        return 0.0
    return _log10(float(pdtrc(count - 1, rate)))


def poisson_low(count: int, rate: float) -> float:
    """Surprise of seeing ``count`` or fewer events when ``rate`` were expected."""
    if count >= rate:
        return 0.0
    return _log10(float(pdtr(count, rate)))


def binomial_high(k: int, n: int, p: float) -> float:
    """Surprise of ``k`` or more successes out of ``n`` with success probability ``p``."""
    if k <= 0 or k <= n * p:
        return 0.0
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return _log10(float(bdtrc(k - 1, n, p)))
