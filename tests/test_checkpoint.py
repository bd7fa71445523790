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
    assert not list((tmp_path / "state").glob("*.tmp"))


class DiskFull:
    """Pickles as a write that finds the disk full, after what came before it was written."""

    def __reduce__(self):
        import errno

        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save_many({("logs", 0): "before", ("logs", 1): "before"})
    with pytest.raises(StateError) as failed:
        store.save_many({("logs", 0): "after", ("logs", 1): [list(range(100_000)), DiskFull()]})
    assert str(failed.value) == f"cannot write checkpoint {store.path('logs', 1)}: [Errno 28] No space left on device"
    assert store.load("logs", 0) == "before" and store.load("logs", 1) == "before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs-0.ckpt", "logs-1.ckpt"]


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


def test_a_restored_partition_skips_what_its_state_holds_and_never_goes_back(tmp_path):
    """The restart itself is tested against a real broker (tests/test_service_kafka.py); this is the
    rule for where a restored partition picks up, whatever offset the group hands it."""
    import orjson

    from detector.config import load_pipeline
    from detector.pipeline import Pipeline
    from detector.records import RawRecord
    from detector.service import Service

    spec = load_pipeline(None, inputs=[{"topic": "m", "kind": "metric", "format": "metric_json"}],
                         checkpoint={"directory": str(tmp_path)})

    def records(first: int, last: int) -> list[RawRecord]:
        return [RawRecord("m", 0, i, None, None, orjson.dumps({"name": "q", "value": float(i % 7),
                                                              "timestamp": 1e9 + 60 * i})) for i in range(first, last)]

    class Source:  # what the service asks of its consumer while processing
        def highwaters(self):
            return {}

    saved = Pipeline.from_spec(spec)
    saved.process(records(0, 100))
    CheckpointStore(tmp_path).save("m", 0, saved.partitions[("m", 0)])

    # The group's committed offset is behind the checkpoint (stopped between the two): the records the
    # state holds come again and are skipped.
    behind = Service(spec)
    behind.source = Source()
    behind._on_assigned([("m", 0)])
    behind.process(records(90, 120))
    assert behind.pipeline.partitions[("m", 0)].records == 120
    assert behind.pipeline.consumed["m"] == 20

    # Another member processed 100-149 and committed 150: this member's older checkpoint carries on
    # from 150, and nothing is processed twice.
    ahead = Service(spec)
    ahead.source = Source()
    ahead._on_assigned([("m", 0)])
    ahead.process(records(150, 160))
    assert ahead.pipeline.consumed["m"] == 10
    assert ahead.pipeline.partitions[("m", 0)].next_offset == 160


def test_a_directory_is_held_by_one_store_at_a_time_and_let_go_when_its_process_dies(tmp_path):
    import os
    import subprocess
    import sys

    first = CheckpointStore(tmp_path / "state")
    first.lock()
    with pytest.raises(StateError) as refused:
        CheckpointStore(tmp_path / "state").lock()
    assert str(refused.value) == (f"checkpoint directory {tmp_path / 'state'} is in use by another running "
                                  f"outage-detector (pid {os.getpid()}); give each instance its own "
                                  "checkpoint.directory")
    assert (tmp_path / "state" / "outage-detector.lock").read_text() == f"{os.getpid()}\n"  # for kill -HUP
    first.unlock()
    # Let go, it names no pid: a reload sent by the file would signal a process that is not the service.
    assert (tmp_path / "state" / "outage-detector.lock").read_text() == ""
    second = CheckpointStore(tmp_path / "state")
    second.lock()  # let go: taken again
    second.unlock()

    # A holder that dies without letting go (killed) leaves nothing to clean up.
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from detector.checkpoint import CheckpointStore; "
                               "CheckpointStore(sys.argv[1]).lock(); print('locked', flush=True); input()",
                               str(tmp_path / "other")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(StateError, match=f"pid {holder.pid}"):
            CheckpointStore(tmp_path / "other").lock()
    finally:
        holder.kill()
        holder.wait()
    after = CheckpointStore(tmp_path / "other")
    after.lock()
    after.unlock()
