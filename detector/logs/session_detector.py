"""Online, unsupervised scoring of sessions (template-count vectors) by how rare they are.

Each template in a session gets a surprise (-log10 of an estimated probability) for the least
likely of its traits, under the sessions seen so far:

- ``rare_template``: few sessions contain it (an exception on a write path). How many do is counted
  as lines arrive (``observe``), not only when sessions close, so that a new template appearing in
  hundreds of open sessions at once reads as new traffic rather than as an anomaly of whichever
  session closes first. Templates that do not read as warnings or errors (feature names without a
  leading "!") count ``info_weight`` as much: a rare error is a likelier incident than a rare
  notice;
- ``unusual_count``: its count is unusual for sessions that contain it (a retry loop, a block
  written to fewer replicas);
- ``missing_partner``: it is nearly always (``partner`` of the time) accompanied by another
  template, which is missing (a block received but never acknowledged).

The session's score is the sum of the template surprises of at least ``min_trait`` (independent
oddities add up, as log-probabilities do), or the largest one when none is. 2 reads "about one
session in a hundred looks like this". Frequencies are smoothed with ``prior`` pseudo-counts (so
early on nothing is very surprising) and exponentially forgotten with a half-life of ``halflife``
sessions, so what counts as normal follows the traffic as it changes. Counts above ``max_count``
share one bucket. Memory grows with the number of templates (pairs are learned among at most
``max_pair_templates`` templates of a session), never with the number of sessions; the log model
has it ``forget`` the templates its miner no longer holds.
"""

from __future__ import annotations

import math
from typing import Callable

from detector.detectors.base import Detector
from detector.detectors.registry import register


@register("session_rarity")
class SessionRarity(Detector):
    def __init__(self, halflife: float = 5000.0, prior: float = 0.5, max_count: int = 8,
                 partner: float = 0.9, info_weight: float = 0.5, min_trait: float = 1.0,
                 max_pair_templates: int = 32):
        self.halflife = halflife
        self.prior = prior
        self.max_count = max_count
        self.partner = partner
        self.info_weight = info_weight
        self.min_trait = min_trait
        self.max_pair_templates = max_pair_templates
        self._weight = 1.0  # weight of the next session; grows instead of decaying the past
        self._n = 0.0  # sessions learned
        self._present: dict[str, float] = {}  # learned sessions containing a template
        self._hist: dict[tuple[str, int], float] = {}  # ... with a given count of it
        self._co: dict[str, dict[str, float]] = {}  # ... containing two templates together
        self._opened = 0.0  # sessions opened, as lines arrive
        self._seen: dict[str, float] = {}  # sessions a template entered, as lines arrive
        self._last: dict | None = None

    def observe(self, feature: str | None) -> None:
        """A line arrived: ``None`` when it opened a session, else the feature (template) it
        brought into its session for the first time. Optional for session detectors; the log
        model calls it when present."""
        w = self._weight
        if feature is None:
            self._opened += w
        else:
            self._seen[feature] = self._seen.get(feature, 0.0) + w

    def _bucket(self, v: float) -> int:
        v = int(v)
        return v if v < self.max_count else self.max_count

    def score_one(self, x: dict[str, float]) -> float:
        a = self.prior
        n = self._n
        w = self._weight
        # This session was itself observed as it arrived: leave out about one current weight.
        opened = max(self._opened - w, n)
        traits = []
        for f, v in x.items():
            if v <= 0:
                continue
            pf = self._present.get(f, 0.0)
            seen = max(self._seen.get(f, 0.0) - w, pf)
            s = -math.log10((seen + a) / (opened + 2 * a))
            if f[:1] != "!":
                s *= self.info_weight
            best, why = s, {"kind": "rare_template", "feature": f}
            hb = self._hist.get((f, self._bucket(v)), 0.0)
            s = -math.log10((hb + a) / (pf + (self.max_count + 1) * a))
            if s > best:
                best, why = s, {"kind": "unusual_count", "feature": f, "count": int(v)}
            co = self._co.get(f)
            if co:
                limit = self.partner * pf
                for g, c in co.items():
                    if c >= limit and not x.get(g):
                        s = -math.log10((pf - c + a) / (pf + 2 * a))
                        if s > best:
                            best, why = s, {"kind": "missing_partner", "feature": f, "missing": g}
            why["surprise"] = round(best, 3)
            traits.append((best, why))
        if not traits:
            self._last = None
            return 0.0
        traits.sort(key=lambda t: t[0], reverse=True)
        self._last = {"traits": [t[1] for t in traits[:3]]}
        strong = sum(s for s, _ in traits if s >= self.min_trait)
        return strong if strong > 0 else traits[0][0]

    def learn_one(self, x: dict[str, float]) -> None:
        w = self._weight
        self._n += w
        feats = [f for f, v in x.items() if v > 0]
        present, hist, co = self._present, self._hist, self._co
        # Pairs grow with the square of a session's templates: a session with very many of them
        # teaches pairs among its first ``max_pair_templates`` only.
        pair_list = feats[: self.max_pair_templates]
        paired = set(pair_list)
        for f in feats:
            present[f] = present.get(f, 0.0) + w
            k = (f, self._bucket(x[f]))
            hist[k] = hist.get(k, 0.0) + w
            if f not in paired:
                continue
            row = co.get(f)
            if row is None:
                row = co[f] = {}
            for g in pair_list:
                if g != f:
                    row[g] = row.get(g, 0.0) + w
        self._weight = w * 2.0 ** (1.0 / self.halflife)
        if self._weight > 1e12:
            self._rescale(1.0 / self._weight)

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop what was learnt of the features ``keep`` says no, and of pairs with them: templates
        evicted or merged away never come back under their id, so what is known of them is dead weight
        (and a partner that never comes back would be missed in every session of its template)."""
        self._present = {f: c for f, c in self._present.items() if keep(f)}
        self._seen = {f: c for f, c in self._seen.items() if keep(f)}
        self._hist = {k: c for k, c in self._hist.items() if keep(k[0])}
        self._co = {f: {g: c for g, c in row.items() if keep(g)} for f, row in self._co.items() if keep(f)}

    def _rescale(self, f: float) -> None:
        self._weight *= f
        self._n *= f
        self._opened *= f
        for d in (self._seen, self._present, self._hist, *self._co.values()):
            for k in d:
                d[k] *= f

    def explain(self):
        """The session's most surprising templates and why each was."""
        return self._last
