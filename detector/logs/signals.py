"""Per-entity log signals over tumbling event-time windows.

Each entity has open windows keyed by window index (``timestamp // window_seconds``). A heap of
window ends lets ``close_until(watermark)`` find the windows to close without scanning every entity.
Closing a window yields:

- ``log_template_rate``: the most surprising template count of the window against the entity's
  expected count per window (an exponentially weighted mean, so it adapts), as a Poisson tail
  (surprise = -log10 p). Rises (a template floods) and drops (a steady template stops) both count.
- ``log_error_ratio``: surprise of the window's error lines out of all lines, against the entity's
  smoothed error share (binomial tail).
- ``log_new_alarm_template``: how a template first seen (after the grace period) at warning or error
  level has recurred since: its lines in each window up to the one closing.
  A fault that starts small usually announces itself this way (a new exception on a canary, a new
  warning from a dependency), while a one-off odd line does not recur; the incident layer decides
  how much recurrence is enough. Each such template is watched for ``NOVEL_WATCH_SECONDS`` after it
  first appeared, at most ``NOVEL_MAX_PER_ENTITY`` per entity, so the state stays small.

A window with no lines still closes for up to ``max_empty_windows`` windows after activity, so an
entity falling silent shows up as steady templates dropping; after that it is dormant until its
next line. Entities idle for ``entity_idle_seconds`` or beyond ``max_entities`` (least recently
seen first) are evicted and counted.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict

from detector.logs.surprise import binomial_high, poisson_high, poisson_low

# A new alarm-level template is followed this long after it first appeared: long enough for a slow
# precursor to recur a few times, short enough that a template that became routine stops counting
# as news within the hour.
NOVEL_WATCH_SECONDS = 3600.0
NOVEL_MAX_PER_ENTITY = 32
NOVEL_RANK_SECONDS = 900.0  # the one reported is the one with the most lines this recently


class NovelTemplate:
    """Recurrence of one new alarm-level template of one entity: its lines per window."""

    __slots__ = ("first", "counts", "evidence")

    def __init__(self, ts: float, evidence: dict):
        self.first = ts
        self.counts: dict[int, int] = {}  # window index -> lines; at most the watch time's windows
        self.evidence = evidence  # the new-template event: template text, example, level

    def hit(self, window: int) -> None:
        self.counts[window] = self.counts.get(window, 0) + 1

    def __getstate__(self):
        return tuple(getattr(self, k) for k in self.__slots__)

    def __setstate__(self, s):
        for k, v in zip(self.__slots__, s):
            setattr(self, k, v)


def _clip(expected: float) -> float:
    """The most lines a window adds to an expected count of ``expected``: 5 Poisson sigmas above it,
    plus one, so a share that really grew is still learnt, more slowly."""
    return expected + 5.0 * math.sqrt(expected) + 1.0


def _merge_keys(d: dict, resolve) -> dict:
    out: dict = {}
    for k, v in d.items():
        r = resolve(k)
        out[r] = out.get(r, 0) + v
    return out


class Window:
    __slots__ = ("index", "counts", "examples", "total", "errors")

    def __init__(self, index: int):
        self.index = index
        self.counts: dict[int, int] = {}
        self.examples: dict[int, str] = {}
        self.total = 0
        self.errors = 0

    def __getstate__(self):
        return (self.index, self.counts, self.examples, self.total, self.errors)

    def __setstate__(self, s):
        self.index, self.counts, self.examples, self.total, self.errors = s


class EntityLog:
    __slots__ = (
        "first_seen", "last_seen", "windows", "expected", "expected_index",
        "err_sum", "tot_sum", "closed", "empty_run", "calibrators", "novel",
        "nov_lines", "nov_once", "nov_time",
    )

    def __init__(self, ts: float):
        self.first_seen = ts
        self.last_seen = ts
        self.windows: dict[int, Window] = {}
        self.expected: dict[int, float] = {}  # template id -> expected count per window
        self.expected_index: int | None = None  # window index the expectations are current to
        self.err_sum = 0.0  # decayed sums of error and all lines, for the expected error share
        self.tot_sum = 0.0
        self.closed = 0
        self.empty_run = 0
        self.calibrators: dict[str, object] = {}
        self.novel: dict[int, NovelTemplate] = {}  # template id -> recurrence, for new alarm templates
        # Novelty of the entity's lines (``LogModel._count_novelty``): decayed counts of its lines and
        # of its lines that brought a template seen once so far, as of event time ``nov_time``.
        self.nov_lines = 0.0
        self.nov_once = 0.0
        self.nov_time = ts

    def __getstate__(self):
        return tuple(getattr(self, k) for k in self.__slots__)

    def __setstate__(self, s):
        self.novel = {}  # states saved before templates were watched have none
        # Saved before novelty was counted per entity: it starts from nothing.
        self.nov_lines, self.nov_once, self.nov_time = 0.0, 0.0, s[1]
        for k, v in zip(self.__slots__, s):
            setattr(self, k, v)


class WindowResult:
    """A closed window of one entity, with the surprise of each signal and what explains it."""

    __slots__ = ("entity", "end", "rate_score", "rate_top", "error_score", "error_info", "total", "novel")

    def __init__(self, entity, end, rate_score, rate_top, error_score, error_info, total, novel=None):
        self.entity = entity
        self.end = end
        self.rate_score = rate_score
        self.rate_top = rate_top
        self.error_score = error_score
        self.error_info = error_info
        self.total = total
        self.novel = novel  # the most recurrent watched new alarm template, or None


class EntitySignals:
    def __init__(self, params):
        self.p = params
        self.entities: OrderedDict[str, EntityLog] = OrderedDict()
        self._heap: list[tuple[float, str, int]] = []
        self._decay = 0.5 ** (1.0 / params.rate_halflife_windows)
        self.evictions = 0
        self.late_lines = 0
        self.closed_windows = 0

    def entity(self, name: str, ts: float) -> tuple[EntityLog, bool]:
        e = self.entities.get(name)
        if e is None:
            e = self.entities[name] = EntityLog(ts)
            if len(self.entities) > self.p.max_entities:
                self.entities.popitem(last=False)
                self.evictions += 1
            return e, True
        self.entities.move_to_end(name)
        return e, False

    def add(self, e: EntityLog, name: str, ts: float, tid: int, is_error: bool, message: str) -> None:
        ws = self.p.window_seconds
        idx = int(ts // ws)
        if e.expected_index is not None and idx <= e.expected_index:
            # The window this line belongs to is already closed: count it in the oldest open one.
            self.late_lines += 1
            idx = min(e.windows) if e.windows else e.expected_index + 1
        if ts > e.last_seen:
            e.last_seen = ts
        w = e.windows.get(idx)
        if w is None:
            w = e.windows[idx] = Window(idx)
            heapq.heappush(self._heap, ((idx + 1) * ws, name, idx))
        c = w.counts.get(tid)
        if c is None:
            w.counts[tid] = 1
            w.examples[tid] = message[: self.p.example_chars]
        else:
            w.counts[tid] = c + 1
        w.total += 1
        if is_error:
            w.errors += 1
        if e.novel:
            n = e.novel.get(tid)
            if n is not None:
                n.hit(idx)

    def watch(self, e: EntityLog, ts: float, tid: int, evidence: dict) -> None:
        """Follow a template just seen for the first time at warning or error level (its first line
        has already been counted by ``add``)."""
        if tid in e.novel:
            return
        if len(e.novel) >= NOVEL_MAX_PER_ENTITY:
            # The one seen least recently is the least likely to be a growing fault.
            del e.novel[min(e.novel, key=lambda k: max(e.novel[k].counts, default=-1))]
        n = e.novel[tid] = NovelTemplate(ts, evidence)
        n.hit(int(ts // self.p.window_seconds))

    def due(self, watermark: float) -> bool:
        """Whether a window ends at or before ``watermark``, to be closed by ``close_until``."""
        return bool(self._heap) and self._heap[0][0] <= watermark

    def close_until(self, watermark: float, resolve=None) -> list[WindowResult]:
        """Close every window that ended at or before ``watermark``. ``resolve`` maps a template
        id to the one it has merged into, when the miner merged templates since the last call."""
        if resolve is not None:
            self._remap(resolve)
        out = []
        final = watermark == float("inf")  # end of a replay: the stream stopped, nobody fell silent
        heap = self._heap
        while heap and heap[0][0] <= watermark:
            end, name, idx = heapq.heappop(heap)
            e = self.entities.get(name)
            if e is None:
                continue
            w = e.windows.pop(idx, None)
            if w is None or (final and not w.total):
                continue
            out.append(self._close(e, name, w, end))
            if not final and not e.windows and e.empty_run < self.p.max_empty_windows:
                nxt = idx + 1
                e.windows[nxt] = Window(nxt)
                heapq.heappush(heap, ((nxt + 1) * self.p.window_seconds, name, nxt))
        self.expire(watermark)
        return out

    def _remap(self, resolve) -> None:
        # Merged templates continue under the id they merged into: their expected counts and open
        # window counts move there, so a merge does not look like one template dropping and
        # another rising.
        for e in self.entities.values():
            e.expected = _merge_keys(e.expected, resolve)
            for w in e.windows.values():
                w.counts = _merge_keys(w.counts, resolve)
                w.examples = {resolve(t): x for t, x in w.examples.items()}
            if e.novel:
                # A watched template merged into another one: the merged template is not new, so it
                # is no longer watched (its lines would otherwise count as the new one recurring).
                e.novel = {t: n for t, n in e.novel.items() if resolve(t) == t}

    def _close(self, e: EntityLog, name: str, w: Window, end: float) -> WindowResult:
        p = self.p
        self.closed_windows += 1
        if e.expected_index is not None:
            decay = self._decay ** max(1, w.index - e.expected_index)
        else:
            decay = 0.0
        warm = e.closed >= p.min_windows
        scored = []
        expected = e.expected
        seen = set()
        for tid, rate in list(expected.items()):
            c = w.counts.get(tid, 0)
            seen.add(tid)
            if warm:
                if c > rate:
                    s = poisson_high(c, max(rate, p.min_rate))
                else:
                    s = poisson_low(c, rate) if rate >= p.min_drop_rate else 0.0
                if s > 0:
                    scored.append((s, tid, c, rate))
            new = rate * decay + (1 - decay) * c
            if new < p.forget_rate and c == 0:
                del expected[tid]
            else:
                expected[tid] = new
        for tid, c in w.counts.items():
            if tid in seen:
                continue
            if warm:
                scored.append((poisson_high(c, p.min_rate), tid, c, 0.0))
            expected[tid] = (1 - decay) * c if decay else float(c)
        if len(expected) > p.max_templates_per_entity:
            # Keep the templates with the highest expected counts.
            keep = sorted(expected.items(), key=lambda kv: kv[1], reverse=True)[: p.max_templates_per_entity]
            e.expected = dict(keep)
        e.expected_index = w.index
        scored.sort(reverse=True)
        rate_score = scored[0][0] if scored else 0.0
        top = [
            {"template_id": tid, "count": c, "expected": round(rate, 3), "example": w.examples.get(tid)}
            for s, tid, c, rate in scored[: p.evidence_templates]
        ]

        error_score = None
        error_info = None
        if w.total:
            share = (e.err_sum + p.error_prior) / (e.tot_sum + 2 * p.error_prior)
            error_score = binomial_high(w.errors, w.total, share) if warm else 0.0
            error_info = {"errors": w.errors, "lines": w.total, "expected_ratio": round(share, 4)}
            d = decay if e.closed else 0.0
            # Error lines far above the expected share enter it clipped, as a metric's outlier enters
            # its level: a flood of errors goes on counting as one for as long as it lasts, instead of
            # becoming the expected share within half an hour.
            e.err_sum = e.err_sum * d + min(w.errors, _clip(share * w.total))
            e.tot_sum = e.tot_sum * d + w.total
            e.empty_run = 0
        else:
            e.empty_run += 1
        e.closed += 1
        return WindowResult(name, end, rate_score, top, error_score, error_info, w.total,
                            self._novel(e, w, end) if e.novel else None)

    def _novel(self, e: EntityLog, w: Window, end: float) -> dict | None:
        """The watched new template with the most lines in the last ``NOVEL_RANK_SECONDS`` up to this
        window (only windows up to this one count, whatever arrived for later ones, so the result
        does not depend on how records are batched), with its lines per window as evidence;
        templates watched long enough are dropped."""
        best = None
        ws = self.p.window_seconds
        recent = NOVEL_RANK_SECONDS / ws
        for tid, n in list(e.novel.items()):
            if end - n.first > NOVEL_WATCH_SECONDS:
                del e.novel[tid]
                continue
            seen = [(i, c) for i, c in n.counts.items() if i <= w.index]
            if not seen:
                continue
            rank = (sum(c for i, c in seen if i > w.index - recent), len(seen))
            if best is None or rank > best[3]:
                best = (tid, n, seen, rank)
        if best is None:
            return None
        tid, n, seen, _ = best
        seen.sort()
        return {"template_id": tid, "since": n.first, "lines": sum(c for _, c in seen),
                "windows": [[(i + 1) * ws, c] for i, c in seen], **n.evidence}

    def expire(self, watermark: float) -> None:
        """Evict the entities idle for ``entity_idle_seconds`` that hold no open window."""
        if watermark == float("inf"):
            return  # end of a replay: nothing went idle, the stream just stopped
        limit = watermark - self.p.entity_idle_seconds
        ents = self.entities
        while ents:
            name, e = next(iter(ents.items()))
            if e.last_seen >= limit or e.windows:
                break
            del ents[name]
            self.evictions += 1

    def __getstate__(self):
        return self.__dict__.copy()

    def __setstate__(self, s):
        self.__dict__.update(s)
