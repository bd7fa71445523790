"""The service's checkpoints against a real broker: only state that changed is written again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from detector.broker import free_port
from tests.kafka_helpers import RunningService, ecs_line, pipeline_spec, produce, samples, scrape, wait_committed

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0


def log_lines(first: int, n: int, key: bytes | None = None) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(first, first + n):
        svc = key.decode() if key else ("checkout", "auth")[i % 2]  # on partitions 0 and 1
        out.append((svc.encode(), ecs_line(T0 + i, svc, f"GET /api/items/{i} 200 in {10 + i % 7} ms")))
    return out


def checkpoint_files(directory: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of each checkpoint file: a rewrite (a new file renamed over it) changes both."""
    return {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in directory.iterdir()}


def metric(port: int, name: str, **labels) -> float | None:
    found = [v for lv, v in samples(scrape(f"http://127.0.0.1:{port}/metrics"), name)
             if labels.items() <= lv.items()]
    return sum(found) if found else None


def test_an_idle_service_rewrites_no_checkpoint_and_its_checkpoint_stays_current(broker, tmp_path):
    port = free_port()
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path, port=port, checkpoint_seconds=0.2)
    log_topic = spec.inputs[0].topic
    per_partition = produce(broker.bootstrap_servers, log_topic, log_lines(0, 200))
    assert len(per_partition) == 2
    state = Path(spec.checkpoint.directory)

    with RunningService(spec):
        wait_committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition)
        before = checkpoint_files(state)
        assert set(before) == {f"{t}-{p}.ckpt" for t, p in per_partition} | {"alerting.state"}
        time.sleep(2.0)  # ten checkpoint intervals with nothing new
        assert checkpoint_files(state) == before
        # Unchanged state is as current as it gets: the checkpoint does not look stale.
        assert metric(port, "outage_detector_checkpoint_age_seconds") < 1.0

        # New records on one partition: its checkpoint and the alert state are written, the other's is not.
        more = produce(broker.bootstrap_servers, log_topic, log_lines(200, 20, key=b"checkout"))
        ((topic, partition),) = more
        wait_committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition + more)
        after = checkpoint_files(state)
        assert {name for name in after if after[name] != before.get(name)} == {f"{topic}-{partition}.ckpt", "alerting.state"}
