"""Online, unsupervised scoring of sessions (template-count vectors) by how rare they are.

A session's score is the surprise (-log10 probability) of its least likely trait under the
sessions seen so far:

- a template it contains that few sessions contain (an exception on a write path);
- a template count that is unusual for sessions containing that template (a retry loop, a missing
  acknowledgement);
- a template that nearly every session has and this one lacks (a write that never completed);
- its exact combination of templates and counts, when that combination is new or rare.

All frequencies are exponentially forgotten with a half-life of ``halflife`` sessions, so what
counts as normal follows the traffic as it changes. Features are template ids as strings; counts
above ``max_count`` share one bucket.
"""

from __future__ import annotations

import math

from detector.detectors.base import Detector
from detector.detectors.registry import register


@register("session_rarity")
class SessionRarity(Detector):
    def __init__(self, halflife: float = 5000.0, prior: float = 0.5, max_count: int = 8,
                 common: float = 0.9, max_patterns: int = 20_000):
        self.halflife = halflife
        self.prior = prior
        self.max_count = max_count
        self.common = common
        self.max_patterns = max_patterns
        self._weight = 1.0  # weight of the next learned session; grows instead of decaying the past
        self._n = 0.0
        self._present: dict[str, float] = {}
        self._hist: dict[tuple[str, int], float] = {}
        self._patterns: dict[tuple, float] = {}
        self._last: dict | None = None

    def _bucket(self, v: float) -> int:
        v = int(v)
        return v if v < self.max_count else self.max_count

    def _pattern(self, x: dict) -> tuple:
        return tuple(sorted((k, self._bucket(v)) for k, v in x.items() if v > 0))

    def score_one(self, x: dict[str, float]) -> float:
        a = self.prior
        n = self._n
        best = 0.0
        why = None
        present = self._present
        for f, v in x.items():
            if v <= 0:
                continue
            pf = present.get(f, 0.0)
            s = -math.log10((pf + a) / (n + 2 * a))
            if s > best:
                best, why = s, {"kind": "rare_template", "feature": f}
            b = self._bucket(v)
            hb = self._hist.get((f, b), 0.0)
            s = -math.log10((hb + a) / (pf + (self.max_count + 1) * a))
            if s > best:
                best, why = s, {"kind": "unusual_count", "feature": f, "count": int(v)}
        if n > 0:
            for f, pf in present.items():
                if pf >= self.common * n and not x.get(f):
                    s = -math.log10((n - pf + a) / (n + 2 * a))
                    if s > best:
                        best, why = s, {"kind": "missing_template", "feature": f}
        pc = self._patterns.get(self._pattern(x), 0.0)
        s = -math.log10((pc + a) / (n + a * (len(self._patterns) + 1)))
        if s > best:
            best, why = s, {"kind": "rare_pattern"}
        self._last = why
        return best

    def learn_one(self, x: dict[str, float]) -> None:
        w = self._weight
        self._n += w
        for f, v in x.items():
            if v <= 0:
                continue
            self._present[f] = self._present.get(f, 0.0) + w
            k = (f, self._bucket(v))
            self._hist[k] = self._hist.get(k, 0.0) + w
        pat = self._pattern(x)
        self._patterns[pat] = self._patterns.get(pat, 0.0) + w
        self._weight = w * 2.0 ** (1.0 / self.halflife)
        if self._weight > 1e12:
            self._rescale(1.0 / self._weight)
        if len(self._patterns) > self.max_patterns:
            # Forget the rarest half of the patterns: memory stays bounded on endless variety.
            keep = sorted(self._patterns.items(), key=lambda kv: kv[1], reverse=True)[: self.max_patterns // 2]
            self._patterns = dict(keep)

    def _rescale(self, f: float) -> None:
        self._weight *= f
        self._n *= f
        for d in (self._present, self._hist, self._patterns):
            for k in d:
                d[k] *= f

    def explain(self):
        return self._last
