"""``LogModel``: everything the streaming pipeline does with log records of one partition.

``process(rec)`` mines the line's template, counts it in its entity's window and session, and
returns immediate signals (a new template); ``advance(watermark)`` closes the windows and idle
sessions that ended before the watermark and returns their scores. Only record timestamps are used.

Signals (the whole vocabulary; template text never becomes a signal name or label):

- ``log_new_template``: a template the miner had never seen, after the grace period;
- ``log_template_rate``: per entity and window, the most surprising template count;
- ``log_error_ratio``: per entity and window, the surprise of the error-line share;
- ``log_session``: per closed session, how rare its template-count vector is;
- ``log_new_alarm_template``: per entity and window while a new warning- or error-level template is
  watched, how often it has recurred since it first appeared (its lines per window).
"""

from __future__ import annotations

import logging
import math

from detector.calibration import build_calibrator
from detector.detectors import build as build_detector
from detector.logs.levels import is_error_level, template_is_alarm, template_is_error
from detector.logs.miner import TemplateMiner
from detector.logs.params import MinerParams, SessionParams, SignalParams
from detector.logs.sessions import Session, SessionTracker
from detector.logs.signals import NOVEL_RANK_SECONDS, EntitySignals
from detector.records import LogRecord, Score

log = logging.getLogger(__name__)

SIGNALS = ("log_new_template", "log_template_rate", "log_error_ratio", "log_session", "log_new_alarm_template")
WARN_LEVELS = frozenset({"warn", "warning"})
# An error-ratio run joins the calibrator's history one window in this many: at one window a minute,
# an hour-long flood of errors adds 8 windows to a 256-window history and keeps its confidence.
ERROR_RUN_THINNING = 8


class LogModel:
    name = ""  # the partition it models, for log lines ("topic[0]"); set by the pipeline
    _cap_warned = False  # whether the template cap was reported (class default: older checkpoints)
    _features_pruned_at = 0  # templates gone (evicted, merged) when the session detector last forgot them

    def __init__(self, miner: dict | None = None, signals: dict | None = None, sessions: dict | None = None):
        self.miner_params = MinerParams.from_dict(miner, "miner")
        self.signal_params = SignalParams.from_dict(signals, "signals")
        self.session_params = SessionParams.from_dict(sessions, "sessions") if sessions is not None else None
        self.miner = TemplateMiner(**self.miner_params.kwargs())
        self.signals = EntitySignals(self.signal_params)
        cal = self.signal_params.calibrator
        self._cal_name, self._cal_params = cal.get("name", "tail"), dict(cal.get("params", {}))
        build_calibrator(self._cal_name, self._cal_params)  # fail at load time, not on the first window
        self.sessions: SessionTracker | None = None
        self.session_detector = None
        self.session_calibrator = None
        if self.session_params is not None:
            sp = self.session_params
            self.sessions = SessionTracker(sp)
            self.session_detector = build_detector(sp.detector.name, sp.detector.params)
            self.session_calibrator = build_calibrator("tail", {"window": 2000, "min_history": 30})
        self.start: float | None = None  # event time of the first record
        self.watermark = -math.inf
        self.lines = 0
        self.bad_timestamps = 0
        self.sessions_scored = 0
        self.sessions_anomalous = 0
        # Templates seen once, by the entity whose line created them: when one is seen again, that
        # entity's count of once-seen templates (its novelty estimate) goes down.
        self._once_of: dict[int, str] = {}
        # Whether a template reads as an error (lines without a level) or as a warning or error
        # (session features), by template id; bounded by pruning, see _cache.
        self._tpl_error: dict[int, bool] = {}
        self._tpl_alarm: dict[int, bool] = {}
        self._merges_seen = 0
        self._latest: float | None = None  # latest event time seen, for records without one

    @classmethod
    def from_spec(cls, spec) -> "LogModel":
        return cls(miner=spec.miner, signals=spec.signals, sessions=spec.sessions)

    # -- per record ---------------------------------------------------------------------------

    def process(self, rec: LogRecord) -> list[Score]:
        self.lines += 1
        ts = rec.timestamp
        if not isinstance(ts, (int, float)) or not math.isfinite(ts):
            # A record without a usable event time is mined but placed at the latest known time.
            self.bad_timestamps += 1
            ts = self._latest if self._latest is not None else 0.0
        elif self._latest is None or ts > self._latest:
            self._latest = ts
        if self.start is None:
            self.start = ts
        res = self.miner.add(rec.message, ts)
        tpl = res.template
        tid = tpl.id
        if res.is_new and self.miner.evicted_templates and not self._cap_warned:
            self._cap_warned = True
            log.warning("log model %s: %d templates held, the cap (miner.max_templates); from now on the "
                        "least recently seen templates are evicted to make room (this line came from %r)",
                        self.name or "", self.miner.max_templates, rec.entity)
        err = is_error_level(rec.level)
        if err is None:
            err = self._tpl_error.get(tid)
            if err is None:
                err = self._cache("_tpl_error")[tid] = template_is_error(tpl.text)
        entity = rec.entity or ""
        sig = self.signals
        e, _ = sig.entity(entity, ts)
        sig.add(e, entity, ts, tid, err, res.text)
        self._count_novelty(e, entity, ts, tpl, res.is_new)
        out: list[Score] = []
        if res.is_new:
            grace = self.signal_params.new_template_grace_seconds
            if ts - self.start >= grace and ts - e.first_seen >= grace:
                # Good-Turing: the chance that the entity's next line shows a new template is about
                # the share of its recent lines whose template has been seen once. Rarely-new streams
                # make novelty alarming. Per entity, so another entity's burst of one-off lines on the
                # same partition does not make this one's new errors look ordinary.
                p_new = (e.nov_once + 1) / (e.nov_lines + 2)
                evidence = {
                    "template_id": tid, "template": tpl.text, "example": res.text[:300],
                    "level": "error" if err else (rec.level or "info"),
                }
                if res.similar is not None:
                    # What it nearly matched: a new value in a known line reads differently from
                    # a line never seen before.
                    evidence["similar_template_id"] = res.similar.id
                    evidence["similar_template"] = res.similar.text
                out.append(Score(ts, entity, "log_new_template", -math.log10(p_new), 1.0 - p_new, evidence))
                # A new warning or error is followed to see whether it keeps coming back, unless it
                # nearly matched a known template: that is a known line with a value the miner has
                # not learnt to mask yet (an id in a message), not a new kind of trouble.
                if res.similar is None and (err or (rec.level is not None and rec.level.lower() in WARN_LEVELS)):
                    sig.watch(e, ts, tid, {"template": tpl.text, "example": res.text[:300],
                                           "level": evidence["level"], "p_new": p_new})
        if self.sessions is not None:
            self._forget_gone_templates()
            observe = getattr(self.session_detector, "observe", None)
            if observe is not None:
                feature = self._feature(tid)
                observe = lambda f, _o=observe, _n=feature: _o(None if f is None else _n)  # noqa: E731
            for s in self.sessions.add(entity, ts, res.text, tid, err, observe):
                out.append(self._score_session(s))
        return out

    def _count_novelty(self, e, entity: str, ts: float, tpl, is_new: bool) -> None:
        """Exponentially weighted (``novelty_halflife_seconds`` of event time) counts of the entity's
        lines and of its lines that brought a template seen once so far: a burst of novelty (a deploy,
        a debug dump) is forgotten, rather than lowering the confidence of new templates for good."""
        h = self.signal_params.novelty_halflife_seconds
        if ts > e.nov_time:
            d = 0.5 ** ((ts - e.nov_time) / h)
            e.nov_lines *= d
            e.nov_once *= d
            e.nov_time = ts
        e.nov_lines += 1.0
        if is_new:
            e.nov_once += 1.0
            once = self._once_of
            once[tpl.id] = entity
            if len(once) > 2 * self.miner.max_templates:
                # Bounded: keep only templates still held and still seen once.
                get = self.miner.get
                self._once_of = {t: x for t, x in once.items() if (k := get(t)) is not None and k.count == 1}
        elif tpl.count == 2:
            owner = self._once_of.pop(tpl.id, None)
            o = self.signals.entities.get(owner) if owner is not None else None
            if o is not None:
                # Its creation counted 1 at first_seen, decayed since then like the rest.
                o.nov_once = max(0.0, o.nov_once - 0.5 ** (max(0.0, o.nov_time - tpl.first_seen) / h))

    def _cache(self, name: str) -> dict[int, bool]:
        """The per-template cache ``name``, about to take a new entry. Templates the miner evicts at
        its cap or merges into another leave their entries behind; past twice the cap (as for
        ``_once_of``) only the templates still held are kept, so a stream of one-off lines costs
        memory and checkpoint size up to the cap, not per template it ever created."""
        cache = getattr(self, name)
        if len(cache) >= 2 * self.miner.max_templates:
            cache = self._live_only(cache)
            setattr(self, name, cache)
        return cache

    def _forget_gone_templates(self) -> None:
        """Each time as many templates as the cap holds have been evicted or merged away since the last
        time, the session detector (if it can) forgets the features of templates no longer held, so its
        memory follows the templates held, not every template ever created."""
        miner = self.miner
        gone = miner.evicted_templates + miner.merges
        if gone - self._features_pruned_at < miner.max_templates:
            return
        self._features_pruned_at = gone
        forget = getattr(self.session_detector, "forget", None)
        if forget is not None:
            live = miner.templates
            # Features are template ids, "!" first for a warning or error (see _feature).
            forget(lambda f: not (tid := f.lstrip("!")).isdecimal() or int(tid) in live)

    def _live_only(self, cache: dict[int, bool]) -> dict[int, bool]:
        live = self.miner.templates
        return {t: v for t, v in cache.items() if t in live}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "_once_of" not in state:  # saved when novelty was counted for the whole partition
            self._once_of = {}
            self.__dict__.pop("_singletons", None)
        # Saved while these caches grew without bound: what they hold of templates gone goes now.
        self._tpl_error = self._live_only(state.get("_tpl_error", {}))
        self._tpl_alarm = self._live_only(state.get("_tpl_alarm", {}))

    # -- event time moves on ------------------------------------------------------------------

    def advance(self, watermark: float) -> list[Score]:
        if watermark <= self.watermark:
            return []
        self.watermark = watermark
        if self.sessions is None and not self.signals.due(watermark) and self.miner.merges == self._merges_seen:
            # Called as each record moves the watermark: mostly nothing closes, and only idle entities go.
            self.signals.expire(watermark)
            return []
        out: list[Score] = []
        merges = self.miner.merges
        resolve = self.miner.resolve if merges != self._merges_seen else None
        self._merges_seen = merges
        for r in self.signals.close_until(watermark, resolve):
            e = self.signals.entities.get(r.entity)
            cals = e.calibrators if e is not None else {}
            out.append(Score(r.end, r.entity, "log_template_rate", r.rate_score,
                             self._calibrate(cals, "log_template_rate", r.rate_score),
                             {"lines": r.total, "templates": self._describe(r.rate_top)}))
            if r.error_score is not None:
                out.append(Score(r.end, r.entity, "log_error_ratio", r.error_score,
                                 self._calibrate(cals, "log_error_ratio", r.error_score), r.error_info))
            if r.novel is not None:
                out.append(self._novel_score(r))
        if self.sessions is not None:
            for s in self.sessions.expire(watermark):
                out.append(self._score_session(s))
        return out

    @staticmethod
    def _novel_score(r) -> Score:
        """A watched new alarm template. Its confidence is that of the template being news at all
        (Good-Turing, when it first appeared): while the model is young, or on a stream where new
        templates are common, a new warning is no surprise. Once it has had no line for
        ``NOVEL_RANK_SECONDS`` the confidence is 0: it is still watched (it may come back), but an
        alert on it resolves instead of firing on for the rest of the hour. How often it recurred is
        in the evidence, for the incident layer's persistence floor."""
        n = r.novel
        p_new = n["p_new"]
        windows = n["windows"]
        recent = bool(windows) and r.end - windows[-1][0] < NOVEL_RANK_SECONDS
        ev = {"templates": [{"template_id": n["template_id"], "template": n["template"], "example": n["example"],
                             "count": n["lines"], "expected": 0.0, "since": n["since"],
                             "most_in_window": max((c for _, c in windows), default=0)}],
              "lines": n["lines"], "windows": windows, "since": n["since"], "level": n["level"]}
        return Score(r.end, r.entity, "log_new_alarm_template", -math.log10(p_new),
                     1.0 - p_new if recent else 0.0, ev)

    def flush(self) -> list[Score]:
        """Score every open session now (end of a replay)."""
        if self.sessions is None:
            return []
        return [self._score_session(s) for s in self.sessions.flush()]

    def _calibrate(self, cals: dict, signal: str, score: float) -> float:
        cal = cals.get(signal)
        if cal is None:
            params = self._cal_params
            if signal == "log_error_ratio":
                # A flood of errors is a fault for as long as it lasts, not a new normal: its windows
                # join the history thinned (see detector.calibration), so its confidence holds.
                params = {"run_thinning": ERROR_RUN_THINNING, **params}
            cal = cals[signal] = build_calibrator(self._cal_name, params)
        return cal.update(score)

    def _describe(self, top: list[dict]) -> list[dict]:
        for t in top:
            tpl = self.miner.get(t["template_id"])
            t["template"] = tpl.text if tpl is not None else None
        return top

    def _score_session(self, s: Session) -> Score:
        sp = self.session_params
        x = {self._feature(tid): float(c) for tid, c in s.counts.items()}
        det = self.session_detector
        raw = float(det.score_one(x))
        why = det.explain()
        conf = self.session_calibrator.update(raw)
        if self.sessions_scored < sp.min_sessions:
            conf = 0.0
        anomalous = raw >= sp.threshold and self.sessions_scored >= sp.min_sessions
        det.learn_one(x)
        self.sessions_scored += 1
        self.sessions_anomalous += anomalous
        top = sorted(s.counts.items(), key=lambda kv: kv[1], reverse=True)[:5]
        return Score(s.last, s.entity, "log_session", raw, conf, {
            "session": s.key, "lines": s.lines, "errors": s.errors, "duration_seconds": s.last - s.start,
            "anomalous": anomalous, "why": why,
            "templates": [{"template_id": t, "template": _text(self.miner.get(t)), "count": c,
                           "example": s.examples.get(t)} for t, c in top],
        })

    def _feature(self, tid: int) -> str:
        """Session feature name of a template: its id, marked with "!" when the template reads as
        a warning or error, which session detectors may weigh more."""
        tpl = self.miner.get(tid)
        if tpl is None:
            return str(tid)
        bad = self._tpl_alarm.get(tpl.id)
        if bad is None:
            bad = self._cache("_tpl_alarm")[tpl.id] = template_is_alarm(tpl.text)
        return f"!{tpl.id}" if bad else str(tpl.id)

    # -- inspection ---------------------------------------------------------------------------

    def templates(self) -> list[dict]:
        return self.miner.template_list()

    def templates_held(self) -> int:
        return len(self.miner)

    def series_held(self) -> int:
        """Entities with window state plus open sessions."""
        return len(self.signals.entities) + (len(self.sessions.open) if self.sessions is not None else 0)

    @property
    def evictions(self) -> int:
        return self.signals.evictions + (self.sessions.evictions if self.sessions is not None else 0)

    def stats(self) -> dict:
        m = self.miner
        return {
            "lines": self.lines, "templates": len(m), "damaged_lines": m.damaged_lines,
            "empty_lines": m.empty_lines, "truncated_lines": m.truncated_tokens,
            "evicted_templates": m.evicted_templates,
            "bad_timestamps": self.bad_timestamps, "late_lines": self.signals.late_lines,
            "evictions": self.evictions, "entities": len(self.signals.entities),
            "open_sessions": len(self.sessions.open) if self.sessions is not None else 0,
            "sessions_scored": self.sessions_scored, "sessions_anomalous": self.sessions_anomalous,
        }


def _text(tpl) -> str | None:
    return tpl.text if tpl is not None else None  # None: evicted at the template cap
