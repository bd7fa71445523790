"""The checkpoint store writes atomically and refuses files it did not write."""

from __future__ import annotations

import pytest

from detector.checkpoint import CheckpointStore
from detector.errors import StateError


def test_round_trip_and_overwrite(tmp_path):
    store = CheckpointStore(tmp_path / "state")
    assert store.load("logs", 0) is None
    store.save("logs", 0, {"offset": 10, "templates": ["a <*>"]})
    store.save("logs", 0, {"offset": 20, "templates": ["a <*>", "b"]})
    assert store.load("logs", 0) == {"offset": 20, "templates": ["a <*>", "b"]}
    assert store.last_write is not None
    assert not list((tmp_path / "state").glob("*.tmp"))


def test_topic_names_cannot_escape_the_directory(tmp_path):
    store = CheckpointStore(tmp_path / "state")
    store.save("../../etc/passwd", 1, "x")
    assert store.path("../../etc/passwd", 1).parent == tmp_path / "state"
    assert store.load("../../etc/passwd", 1) == "x"


def test_a_foreign_file_is_refused_not_unpickled(tmp_path):
    import pickle

    store = CheckpointStore(tmp_path)
    store.path("logs", 0).write_bytes(pickle.dumps({"evil": True}))
    with pytest.raises(StateError, match="not an outage-detector checkpoint"):
        store.load("logs", 0)


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save("logs", 0, list(range(1000)))
    path = store.path("logs", 0)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(StateError, match="cannot read checkpoint"):
        store.load("logs", 0)


def test_named_states_live_beside_partitions(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save_many({("logs", 0): "partition", ("alerting", None): {"open": ["inc-1"]}})
    assert store.load("alerting") == {"open": ["inc-1"]}
    assert store.load("logs", 0) == "partition"
    assert store.path("alerting") != store.path("alerting", 0)
