"""LogModel as the streaming pipeline uses it: process records, advance event time, checkpoint."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from detector.errors import ConfigError
from detector.logs.model import SIGNALS, LogModel
from detector.records import LogRecord
from detector.specs import LogModelSpec, load_model_spec

MODELS = Path(__file__).resolve().parents[1] / "models"


def _steady(model, start, minutes, entity="api", per_minute=20):
    out = []
    for m in range(minutes):
        for i in range(per_minute):
            ts = start + m * 60 + i * (60 / per_minute)
            out += model.process(LogRecord(ts, entity, f"GET /users/{i} 200 in {i * 3} ms", "info"))
            out += model.process(LogRecord(ts, entity, f"cache hit ratio {i / 100}", "info"))
        out += model.advance(start + (m + 1) * 60)
    return out


def test_shipped_default_spec_builds_a_log_model():
    spec = load_model_spec(MODELS / "log-default.yaml")
    assert isinstance(spec, LogModelSpec)
    model = LogModel.from_spec(spec)
    assert model.process(LogRecord(0.0, "a", "hello world", None)) == []


def test_a_flood_of_errors_scores_higher_than_steady_windows():
    model = LogModel(signals={"new_template_grace_seconds": 0, "min_windows": 3})
    steady = _steady(model, 0.0, 40)
    t = 40 * 60
    out = []
    for i in range(20):
        out += model.process(LogRecord(t + i, "api", f"GET /users/{i} 200 in 3 ms", "info"))
        out += model.process(LogRecord(t + i + 0.5, "api", f"ERROR connection to db-{i} refused", "error"))
    out += model.advance(t + 60)
    signals = {s.signal for s in steady + out}
    assert signals <= set(SIGNALS)
    err = [s for s in out if s.signal == "log_error_ratio"][-1]
    before = [s.score for s in steady if s.signal == "log_error_ratio"]
    assert err.score > max(before) + 3
    assert err.confidence == 1.0
    rate = [s for s in out if s.signal == "log_template_rate"][-1]
    assert "refused" in rate.evidence["templates"][0]["template"]
    assert "refused" in rate.evidence["templates"][0]["example"]


def test_new_template_is_reported_after_the_grace_period_only():
    model = LogModel(signals={"new_template_grace_seconds": 600})
    early = model.process(LogRecord(10.0, "api", "worker started", "info"))
    assert early == []
    _steady(model, 60.0, 12)
    late = model.process(LogRecord(900.0, "api", "disk quota exceeded on volume 3", "warn"))
    assert [s.signal for s in late] == ["log_new_template"]
    s = late[0]
    assert 0.0 <= s.confidence <= 1.0 and s.confidence > 0.9
    assert s.evidence["template"] == "disk quota exceeded on volume <*>"
    assert s.entity == "api"
    assert "similar_template" not in s.evidence
    near = model.process(LogRecord(901.0, "api", "disk quota restored on volume 3", "info"))
    assert near[0].evidence["similar_template"] == "disk quota exceeded on volume <*>"


def test_windows_close_on_event_time_not_on_arrival():
    model = LogModel()
    model.process(LogRecord(100.0, "api", "request served", "info"))
    assert model.advance(119.0) == []  # the 60-120 s window is still open
    closed = model.advance(120.0)
    assert {s.signal for s in closed} == {"log_template_rate", "log_error_ratio"}
    assert all(s.timestamp == 120.0 for s in closed)


def test_state_survives_pickle_and_gives_the_same_scores():
    a = LogModel(sessions={"key": r"req-\d+", "idle_seconds": 30})
    _steady(a, 0.0, 10)
    b = pickle.loads(pickle.dumps(a))
    tail_a, tail_b = [], []
    for m, out in ((a, tail_a), (b, tail_b)):
        for i in range(50):
            out += m.process(LogRecord(600.0 + i, "api", f"req-{i % 5} step {i % 3} done", "info"))
        out += m.advance(2000.0)
    assert tail_a == tail_b
    assert a.templates() == b.templates()


def test_entities_are_capped_and_evictions_counted():
    model = LogModel(signals={"max_entities": 5})
    for i in range(12):
        model.process(LogRecord(float(i), f"host-{i}", "heartbeat ok", "info"))
    assert len(model.signals.entities) == 5
    assert model.evictions == 7
    assert model.series_held() == 5
    assert model.templates_held() == 1


def test_sessions_are_scored_when_idle():
    model = LogModel(sessions={"key": r"req-\d+", "idle_seconds": 30})
    out = []
    for i in range(200):
        ts = float(i)
        out += model.process(LogRecord(ts, "api", f"req-{i} accepted", "info"))
        out += model.process(LogRecord(ts + 0.5, "api", f"req-{i} done in {i} ms", "info"))
        out += model.advance(ts)
    sessions = [s for s in out if s.signal == "log_session"]
    assert len(sessions) == 200 - 31  # still open: the last 31 requests
    assert sessions[-1].evidence["session"] == "req-168"
    assert model.series_held() == 1 + 31


def test_bad_parameters_name_the_key_path():
    with pytest.raises(ConfigError, match=r"window_seconds"):
        LogModel(signals={"window_seconds": -1})
    with pytest.raises(ConfigError, match=r"key"):
        LogModel(sessions={"key": "blk_(("})
    with pytest.raises(ConfigError, match=r"max_differing"):
        LogModel(miner={"max_differing": "lots"})


def test_an_entity_falling_silent_shows_as_its_steady_templates_dropping():
    model = LogModel(signals={"min_windows": 3})
    steady = _steady(model, 0.0, 40)
    silent = model.advance(45 * 60)
    rate = [s for s in silent if s.signal == "log_template_rate"]
    assert len(rate) == 3  # only the first few empty windows are scored, then the entity is dormant
    assert rate[0].score > max(s.score for s in steady if s.signal == "log_template_rate") + 3
    top = rate[0].evidence["templates"][0]
    assert top["count"] == 0 and top["expected"] > 10


def test_a_line_for_a_closed_window_is_counted_as_late():
    model = LogModel()
    model.process(LogRecord(100.0, "api", "request served", "info"))
    model.advance(200.0)
    model.process(LogRecord(110.0, "api", "request served", "info"))
    assert model.stats()["late_lines"] == 1


def test_end_of_replay_does_not_read_as_everyone_falling_silent():
    model = LogModel(signals={"min_windows": 3})
    _steady(model, 0.0, 20)
    final = model.advance(float("inf"))
    assert all(s.evidence.get("lines", 1) > 0 for s in final if s.signal == "log_template_rate")
    assert model.evictions == 0


def test_open_sessions_are_bounded_by_the_idle_timeout_and_the_cap():
    model = LogModel(sessions={"key": r"req-\d+", "idle_seconds": 60})
    scored = 0
    for i in range(3000):
        scored += len(model.process(LogRecord(float(i), "api", f"req-{i} start", "info")))
        scored += sum(s.signal == "log_session" for s in model.advance(float(i)))
    assert len(model.sessions.open) <= 61
    assert scored >= 3000 - 61
    capped = LogModel(sessions={"key": r"req-\d+", "idle_seconds": 1e9, "max_sessions": 100})
    closed = []
    for i in range(1000):
        closed += capped.process(LogRecord(float(i), "api", f"req-{i} start", "info"))
    assert len(capped.sessions.open) == 100
    assert capped.evictions == 900
    assert len([s for s in closed if s.signal == "log_session"]) == 900  # evicted sessions are still scored


def _flood(model, start, lines, entity="batch"):
    """One minute of one-off debug lines: five random-looking words each, so each is a new template."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    for i in range(lines):
        words = " ".join(letters[(i * 7 + k * 3) % 26] + letters[(i // 26 + k) % 26] + "xq" + letters[k]
                         for k in range(5))
        model.process(LogRecord(start + i * 60 / lines, entity, f"debug {words}", "debug"))


def test_a_flood_of_one_off_lines_from_one_entity_does_not_blind_another_to_new_errors(caplog):
    # Scaled down (the cap is 50,000 by default): three hours of "api", then "batch" on the same
    # partition dumps more one-off lines in a minute than the cap holds.
    model = LogModel(miner={"max_templates": 300})
    _steady(model, 0.0, 180)
    _flood(model, 180 * 60.0, 600)
    assert "cap" in caplog.text and "'batch'" in caplog.text
    _steady(model, 181 * 60.0, 20)
    out = []
    t = 201 * 60.0
    for m in range(10):
        for k in range(3):
            out += model.process(LogRecord(t + 60 * m + 10 + 15 * k, "api",
                                           f"ERROR payment gateway timeout for order {m * 10 + k}", "error"))
        out += _steady(model, t + 60 * m, 1)
    new = [s for s in out if s.signal == "log_new_template"]
    assert [s.evidence["template"] for s in new] == ["ERROR payment gateway timeout for order <*>"]
    assert new[0].confidence >= 0.99
    alarm = [s for s in out if s.signal == "log_new_alarm_template"]
    assert alarm and all(s.confidence >= 0.99 for s in alarm)
    assert model.stats()["evicted_templates"] >= 300
    assert model.templates_held() == 300


def test_an_hour_long_flood_of_a_known_error_keeps_one_incident_open_until_it_stops():
    from detector.config import AlertingSettings, IncidentSettings
    from detector.incidents import IncidentTracker

    model = LogModel.from_spec(load_model_spec(MODELS / "log-default.yaml"))
    tracker = IncidentTracker(AlertingSettings(), IncidentSettings())
    flood_start, flood_end = 600 * 60.0, 660 * 60.0
    events = []
    for m in range(700):
        t0 = m * 60.0
        out = []
        for i in range(20):
            out += model.process(LogRecord(t0 + 3 * i, "api", f"GET /users/{i} 200 in {i * 3} ms", "info"))
        if m % 97 == 5:  # the error is known: it turns up now and then
            out += model.process(LogRecord(t0 + 1, "api", "ERROR connection to db refused after 3000 ms", "error"))
        if flood_start <= t0 < flood_end:
            for i in range(60):
                out += model.process(LogRecord(t0 + i + 0.5, "api", f"ERROR connection to db refused after {i} ms",
                                               "error"))
        out += model.advance(t0 + 60.0)
        events += tracker.observe(out)
    assert [e.kind for e in events if e.kind != "updated"] == ["opened", "resolved"]
    opened, resolved = events[0], events[-1]
    assert opened.timestamp - flood_start <= 600
    # Not resolved while the errors go on, and soon after they stop.
    assert flood_end < resolved.timestamp <= flood_end + 1200


def _one_off_lines(model, start, lines):
    """Level-less lines of five words no other line shares: each one a new template."""
    def word(n):
        return "".join("abcdefghijklmnopqrstuvwxyz"[n // 26 ** p % 26] for p in range(4)) + "q"

    for i in range(start, start + lines):
        words = " ".join(word(i * 5 + k + 7000) for k in range(5))
        model.process(LogRecord(1e9 + i, "api", f"req-{i} noted {words}", None))
        if i % 10 == 0:
            model.advance(1e9 + i - 60)


def test_one_off_lines_without_a_level_keep_the_per_template_caches_and_the_checkpoint_bounded():
    # Whether a template reads as an error was cached for every template ever created, and never
    # dropped when the miner evicted one at its cap: 538,630 entries after 5 minutes of such lines,
    # 3.1 MB of a 4.9 MB checkpoint.
    model = LogModel(miner={"max_templates": 50})
    for part in range(3):
        _one_off_lines(model, 1000 * part, 1000)
        assert model.stats()["evicted_templates"] >= 1000 * part + 950
        assert len(model._tpl_error) <= 2 * 50
    checkpoint = pickle.dumps(model)
    without = pickle.loads(checkpoint)
    without._tpl_error, without._tpl_alarm = {}, {}
    # What the caches add to the checkpoint is a few bytes per template held (3,000 entries: 13 KB).
    assert len(checkpoint) - len(pickle.dumps(without)) < 1000


def test_with_sessions_one_off_lines_keep_the_caches_and_the_session_detector_bounded():
    # The session features' flags were cached like the error flags, and the session detector kept
    # what it learnt of every template ever created: both grew with every one-off line.
    model = LogModel(miner={"max_templates": 50}, sessions={"key": r"req-\d+", "idle_seconds": 30})
    det = model.session_detector
    learnt = []
    for part in range(12):
        _one_off_lines(model, 333 * part, 333)
        assert 0 < len(model._tpl_alarm) <= 2 * 50 and 0 < len(model._tpl_error) <= 2 * 50
        assert max(len(det._present), len(det._seen), len(det._co), len(det._hist)) <= 2 * 50
        learnt.append(len(det._present))
    assert model.sessions_scored > 3500 and max(learnt) > 0  # sessions were learnt all along


def test_a_checkpoint_holding_flags_of_templates_long_gone_loads_without_them():
    model = LogModel(miner={"max_templates": 50})
    _one_off_lines(model, 0, 100)
    held = set(model.miner.templates)
    # As saved before the caches were bounded: an entry for every template ever created.
    model._tpl_error.update({tid: False for tid in range(1, 100_000) if tid not in held})
    model._tpl_alarm.update({tid: True for tid in range(1, 100_000) if tid not in held})
    restored = pickle.loads(pickle.dumps(model))
    assert set(restored._tpl_error) <= held and set(restored._tpl_alarm) <= held
    assert len(restored._tpl_error) == len(held)
    _one_off_lines(restored, 100, 500)  # and it goes on as before
    assert len(restored._tpl_error) <= 2 * 50
