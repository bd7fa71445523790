"""Hostile and broken log input: bounded work per line, counted, never a crash."""

from __future__ import annotations

import math
import pickle

from detector.logs.model import LogModel
from detector.records import LogRecord


def _model():
    return LogModel(miner={"max_chars": 2048, "max_tokens": 64}, sessions={"key": r"req-\d+"})


def _feed(model, message, ts=1.0, level=None):
    out = model.process(LogRecord(ts, "svc", message, level))
    out += model.advance(ts + 3600)
    return out


def test_a_huge_line_is_cut_and_counted():
    m = _model()
    _feed(m, "req-1 " + "x" * 5_000_000)
    _feed(m, "word " * 200_000)
    stats = m.stats()
    assert stats["damaged_lines"] == 2
    assert stats["truncated_lines"] == 1
    for t in m.templates():
        assert len(t["template"]) <= 2048 + 16
        assert len(t["template"].split()) <= 64
    assert len(pickle.dumps(m)) < 100_000  # nothing of the 5 MB line is kept beyond the caps


def test_binary_and_invalid_utf8_are_mined_as_text_without_control_characters():
    m = _model()
    _feed(m, bytes(range(256)) * 50)
    _feed(m, b"user \xff\xfe\xfa logged in from \xc3\x28 host")
    _feed(m, "nul\x00inside\x07bell")
    assert m.stats()["damaged_lines"] == 3
    for t in m.templates():
        assert t["template"].isprintable()


def test_empty_messages_share_one_template_and_are_counted():
    m = _model()
    for msg in ("", "   ", "\t\n", b""):
        _feed(m, msg)
    assert m.stats()["empty_lines"] == 4
    assert [t["template"] for t in m.templates()] == ["<empty>"]


def test_deeply_nested_json_is_treated_as_text():
    m = _model()
    _feed(m, '{"a":' * 50_000 + "1" + "}" * 50_000)
    _feed(m, "[" * 100_000)
    _feed(m, '{"msg": {"nested": {"deeper": ["x"]}}, "level": "info"}')
    assert m.stats()["lines"] == 3
    assert len(m.templates()) == 3


def test_records_without_a_usable_time_are_counted_not_fatal():
    m = _model()
    _feed(m, "request req-1 ok", ts=100.0)
    for bad in (math.nan, math.inf, -math.inf):
        m.process(LogRecord(bad, "svc", "request req-2 ok", None))
    assert m.stats()["bad_timestamps"] == 3
    assert m.advance(10_000.0) is not None


def test_a_message_of_the_wrong_type_is_counted():
    m = _model()
    m.process(LogRecord(1.0, "svc", None, None))
    m.process(LogRecord(1.0, "svc", 12345, None))
    assert m.stats()["damaged_lines"] == 2
