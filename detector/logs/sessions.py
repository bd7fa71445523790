"""Group lines into sessions by a key found in the line (an HDFS block id, a request id).

A session is a template-count vector. It closes when it has been idle for ``idle_seconds`` of event
time, when it reaches ``max_lines``, or when ``max_sessions`` are open and it is the least recently
active one (counted in ``evictions``); closed sessions go to the session detector. A key seen again
after its session closed starts a new session.
"""

from __future__ import annotations

import re
from collections import OrderedDict


class Session:
    __slots__ = ("entity", "key", "start", "last", "counts", "lines", "errors", "examples")

    def __init__(self, entity: str, key: str, ts: float):
        self.entity = entity
        self.key = key
        self.start = ts
        self.last = ts
        self.counts: dict[int, int] = {}
        self.lines = 0
        self.errors = 0
        self.examples: dict[int, str] = {}

    def __getstate__(self):
        return tuple(getattr(self, k) for k in self.__slots__)

    def __setstate__(self, s):
        for k, v in zip(self.__slots__, s):
            setattr(self, k, v)


class SessionTracker:
    def __init__(self, params):
        self.p = params
        self.key_regex = params.key
        self._pattern = re.compile(params.key)
        self.open: OrderedDict[tuple[str, str], Session] = OrderedDict()
        self.evictions = 0
        self.closed = 0

    def keys(self, message: str) -> list[str]:
        found = self._pattern.findall(message)
        if not found:
            return found
        if isinstance(found[0], tuple):
            found = [f[0] for f in found]
        if len(found) > 1:
            found = list(dict.fromkeys(found))[: self.p.max_keys_per_line]
        return found

    def add(self, entity: str, ts: float, message: str, tid: int, is_error: bool, observe=None) -> list[Session]:
        """Add one line to every session it names; returns sessions closed by the caps.
        ``observe(None)`` is called when a session opens, ``observe(feature)`` when a template
        enters a session for the first time."""
        closed = []
        for key in self.keys(message):
            k = (entity, key)
            s = self.open.get(k)
            if s is None:
                s = self.open[k] = Session(entity, key, ts)
                if observe is not None:
                    observe(None)
                if len(self.open) > self.p.max_sessions:
                    _, old = self.open.popitem(last=False)
                    self.evictions += 1
                    closed.append(old)
            else:
                self.open.move_to_end(k)
            if ts > s.last:
                s.last = ts
            c = s.counts.get(tid)
            if c is None:
                s.counts[tid] = 1
                if observe is not None:
                    observe(str(tid))
                if len(s.examples) < self.p.max_examples:
                    s.examples[tid] = message[:300]
            else:
                s.counts[tid] = c + 1
            s.lines += 1
            if is_error:
                s.errors += 1
            if s.lines >= self.p.max_lines:
                del self.open[k]
                closed.append(s)
        self.closed += len(closed)
        return closed

    def expire(self, watermark: float) -> list[Session]:
        """Close the sessions idle since before ``watermark - idle_seconds``."""
        limit = watermark - self.p.idle_seconds
        out = []
        opened = self.open
        # Sessions are kept in order of last activity, so the idle ones are at the front. Lines
        # that arrive slightly out of order can leave one a little behind; it is closed a little
        # late rather than scanned for.
        while opened:
            k, s = next(iter(opened.items()))
            if s.last >= limit:
                break
            del opened[k]
            out.append(s)
        self.closed += len(out)
        return out

    def flush(self) -> list[Session]:
        out = list(self.open.values())
        self.open.clear()
        self.closed += len(out)
        return out

    def __getstate__(self):
        s = self.__dict__.copy()
        del s["_pattern"]
        return s

    def __setstate__(self, s):
        self.__dict__.update(s)
        self._pattern = re.compile(self.key_regex)
