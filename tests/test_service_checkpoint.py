"""The service's checkpoints against a real broker: only state that changed is written again, and a
checkpoint that cannot be written or read, or a broker that goes away, does not end the service in a
traceback: it goes on without committing past what is saved, or stops with one paragraph (exit 2)."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from detector.broker import EmbeddedBroker, free_port
from detector.checkpoint import LOCK_FILE, CheckpointStore
from detector.kafka_io import ensure_topics
from tests.kafka_helpers import (
    RunningService, committed, ecs_line, metric_point, pipeline_spec, produce, samples, scrape, wait_committed, wait_for,
    write_pipeline,
)

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


def status(port: int, path: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


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
        assert set(before) == ({f"{t}-{p}.ckpt" for t, p in per_partition}
                               | {"alerting.state", "outage-detector.lock"})
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


class ServiceProcess:
    """``outage-detector run`` as a child process, its stderr (the log) collected line by line."""

    def __init__(self, cfg: Path):
        # A pipe, not a file: the file-size limits these tests set on the process must not hit its log.
        self.process = subprocess.Popen([sys.executable, "-m", "detector", "run", "--pipeline", str(cfg)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True)
        self.reader.start()

    def limit_file_size(self, limit: int) -> None:
        """A full disk, as the process sees it: no file it writes grows past ``limit`` bytes."""
        hard = resource.prlimit(self.process.pid, resource.RLIMIT_FSIZE)[1]
        resource.prlimit(self.process.pid, resource.RLIMIT_FSIZE, (limit, hard))

    def stop(self, timeout: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_a_checkpoint_that_cannot_be_written_is_retried_while_the_service_goes_on(broker, tmp_path):
    port = free_port()
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path, port=port, checkpoint_seconds=0.5)
    log_topic = spec.inputs[0].topic
    group, state = spec.kafka.group_id, Path(spec.checkpoint.directory)
    write_pipeline(spec, tmp_path / "pipeline.yaml")
    service = ServiceProcess(tmp_path / "pipeline.yaml")
    try:
        first = produce(broker.bootstrap_servers, log_topic, log_lines(0, 300))
        wait_committed(broker.bootstrap_servers, group, first)
        assert all(f.stat().st_size > 1024 for f in state.glob("*.ckpt"))

        # The disk fills up: no partition's checkpoint fits any more.
        service.limit_file_size(1024)
        more = produce(broker.bootstrap_servers, log_topic, log_lines(300, 300))
        wait_for(lambda: metric(port, "outage_detector_records_consumed_total") == 600, what="consumption")
        wait_for(lambda: metric(port, "outage_detector_checkpoint_failures_total", step="write") >= 3,
                   what="failed checkpoints")
        assert service.process.poll() is None
        assert committed(broker.bootstrap_servers, group, first) == dict(first)  # nothing past the saved state
        assert metric(port, "outage_detector_checkpoint_age_seconds") > 1.0  # stale, so the alert can fire
        assert status(port, "/readyz") == 503 and status(port, "/healthz") == 200
        assert not list(state.glob("*.tmp"))
        errors = [line for line in service.lines if " ERROR detector" in line]
        assert len(errors) == 1, errors  # once, not every interval
        assert str(state) in errors[0] and "File too large" in errors[0]

        # Space again: the next checkpoint saves and commits everything.
        service.limit_file_size(resource.RLIM_INFINITY)
        wait_committed(broker.bootstrap_servers, group, first + more)
        wait_for(lambda: metric(port, "outage_detector_checkpoint_age_seconds") < 1.0, what="a fresh checkpoint")
        assert status(port, "/readyz") == 200
        assert CheckpointStore(state).load(*next(iter(more))).next_offset == (first + more)[next(iter(more))]

        # Full again when told to stop: nothing is committed, and one paragraph says why (exit 2).
        service.limit_file_size(1024)
        produce(broker.bootstrap_servers, log_topic, log_lines(600, 50))
        wait_for(lambda: metric(port, "outage_detector_records_consumed_total") == 650, what="consumption")
        assert service.stop() == 2
        log = "".join(service.lines)
        assert "Traceback" not in log
        assert service.lines[-1].startswith("outage-detector: error: stopped without a final checkpoint and commit: "
                                            f"cannot write checkpoint {state}/")
        assert "File too large" in service.lines[-1] and service.lines[-1].count("\n") == 1
        assert committed(broker.bootstrap_servers, group, first + more) == dict(first + more)
        assert not list(state.glob("*.tmp"))
    finally:
        service.kill()


def test_a_corrupt_checkpoint_at_start_up_is_a_one_paragraph_error(broker, tmp_path):
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path)
    log_topic = spec.inputs[0].topic
    per_partition = produce(broker.bootstrap_servers, log_topic, log_lines(0, 50))
    store = CheckpointStore(spec.checkpoint.directory)
    tp = next(iter(per_partition))
    store.save(*tp, list(range(1000)))
    path = store.path(*tp)
    truncated = path.read_bytes()[:100]
    path.write_bytes(truncated)
    write_pipeline(spec, tmp_path / "pipeline.yaml")

    done = subprocess.run([sys.executable, "-m", "detector", "run", "--pipeline", str(tmp_path / "pipeline.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith(f"outage-detector: error: cannot read checkpoint {path}: ")
    assert last.endswith("; move it away to start fresh")
    # Left as it was, for the operator to look at; and nothing of the partition processed or committed.
    assert path.read_bytes() == truncated
    assert committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition) == {tp: None for tp in per_partition}


def test_a_second_instance_on_the_same_checkpoint_directory_is_refused(broker, tmp_path):
    """Two instances writing one directory would overwrite each other's alert and incident state: the
    second one stops at start-up, before it reads or writes any state, with one line naming the directory
    and the holder."""
    import os

    spec = pipeline_spec(broker.bootstrap_servers, tmp_path)
    log_topic = spec.inputs[0].topic
    per_partition = produce(broker.bootstrap_servers, log_topic, log_lines(0, 50))
    state = Path(spec.checkpoint.directory)
    write_pipeline(spec, tmp_path / "pipeline.yaml")
    runner = RunningService(spec)
    with runner:
        wait_committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition)
        before = checkpoint_files(state)
        done = subprocess.run([sys.executable, "-m", "detector", "run", "--pipeline", str(tmp_path / "pipeline.yaml")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert done.stderr.splitlines()[-1] == (
            f"outage-detector: error: checkpoint directory {state} is in use by another running outage-detector "
            f"(pid {os.getpid()}); give each instance its own checkpoint.directory")
        assert checkpoint_files(state) == before
    assert not runner.thread.is_alive()

    # Stopped, the first lets the directory go: an instance started now takes it, and its state.
    with RunningService(spec) as again:
        def restored():
            with again.lock:
                return {tp: st.next_offset for tp, st in again.pipeline.partitions.items()} == dict(per_partition)
        wait_for(restored, what="the partitions restored from the checkpoints")


def test_the_service_rides_out_a_broker_outage(tmp_path):
    port = free_port()
    with EmbeddedBroker() as own:  # its own broker, to stop and start again on the same port
        spec = pipeline_spec(own.bootstrap_servers, tmp_path, port=port, checkpoint_seconds=5.0)
        log_topic, group = spec.inputs[0].topic, spec.kafka.group_id
        topics = [i.topic for i in spec.inputs] + [spec.kafka.dead_letter_topic]
        runner = RunningService(spec)
        with runner as service:
            sent = Counter()
            while True:
                sent += produce(own.bootstrap_servers, log_topic, log_lines(sum(sent.values()), 100))
                runner.wait_consumed(sum(sent.values()))
                with service.lock:  # no checkpoint gets past its start meanwhile
                    if committed(own.bootstrap_servers, group, sent) != dict(sent):
                        own.stop()  # processed, not committed: the next commit finds the broker gone
                        break
            assert metric(port, "outage_detector_kafka_up") == 1
            time.sleep(15)  # longer than the session timeout (6 s)
            assert runner.thread.is_alive()
            # Idle, the service would not notice otherwise: it asks Kafka every checkpoint interval.
            assert metric(port, "outage_detector_kafka_up") == 0
            assert status(port, "/healthz") == 200  # the service itself is fine
            own.start()
            # The embedded broker keeps nothing across a restart: its topics start again from offset 0,
            # so records are sent until past the offsets the service has processed.
            ensure_topics(spec.kafka, topics, partitions=2)
            again = produce(own.bootstrap_servers, log_topic, log_lines(1000, 3 * sum(sent.values())))
            assert all(again[tp] > sent[tp] for tp in sent)
            wait_committed(own.bootstrap_servers, group, again, timeout=90)
            with service.lock:
                assert {tp: service.pipeline.partitions[tp].next_offset for tp in again} == dict(again)
            assert runner.thread.is_alive()
            wait_for(lambda: metric(port, "outage_detector_checkpoint_age_seconds") < 6, what="a fresh checkpoint")
            wait_for(lambda: metric(port, "outage_detector_kafka_up") == 1, what="Kafka seen answering again")
            assert metric(port, "outage_detector_checkpoint_failures_total", step="commit") >= 1


def test_a_kafka_error_that_ends_the_service_is_one_paragraph_naming_its_cause(tmp_path):
    """What kafka-python gives up on ends the service. No broker fails like that on demand: a consumer
    raising what kafka-python raised when a rebalance callback's commit found the coordinator gone
    stands in for it."""
    from kafka.errors import KafkaError, NodeNotReadyError

    from detector.config import load_pipeline
    from detector.errors import KafkaUnavailable
    from detector.service import Service

    class Source:
        def poll(self):
            raise KafkaError("User rebalance callback throws an error") from NodeNotReadyError("coordinator")

        def close(self):
            pass

    spec = load_pipeline(None, kafka={"bootstrap_servers": "127.0.0.1:9"}, checkpoint={"directory": str(tmp_path)},
                         inputs=[{"topic": "m", "kind": "metric", "format": "metric_json"}])
    service = Service(spec)
    service.source = Source()
    with pytest.raises(KafkaUnavailable) as stopped:
        service.run()
    assert str(stopped.value) == ("stopped: Kafka at 127.0.0.1:9 failed: KafkaError: User rebalance callback throws an "
                                  "error (from NodeNotReadyError: coordinator)")


def warnings_with(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and text in r.getMessage()]


def test_a_checkpoint_from_another_cluster_skips_no_record_there_and_keeps_its_model(broker, tmp_path, caplog):
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path)
    log_topic, group = spec.inputs[0].topic, spec.kafka.group_id
    old = produce(broker.bootstrap_servers, log_topic, log_lines(0, 600))
    with RunningService(spec):
        wait_committed(broker.bootstrap_servers, group, old)
    store = CheckpointStore(spec.checkpoint.directory)
    learnt = {tp: store.load(*tp).records for tp in old}
    assert all(n > 200 for n in learnt.values())

    # The same pipeline and checkpoint directory against a new cluster (the topics recreated would be the
    # same): its partitions hold fewer records than the checkpoints' offsets.
    with EmbeddedBroker() as other:
        spec = spec.model_copy(update={"kafka": spec.kafka.model_copy(update={"bootstrap_servers": other.bootstrap_servers})})
        ensure_topics(spec.kafka, [i.topic for i in spec.inputs] + [spec.kafka.dead_letter_topic], partitions=2)
        new = produce(other.bootstrap_servers, log_topic, log_lines(600, 200))
        assert all(new[tp] < old[tp] for tp in old)
        with RunningService(spec) as service:
            wait_committed(other.bootstrap_servers, group, new, timeout=30)
            with service.lock:
                assert service.pipeline.consumed[log_topic] == 200  # every record of the new partitions
    for (topic, partition), n in new.items():
        (said,) = warnings_with(caplog, f"{topic}[{partition}]: the checkpoint is at offset {old[(topic, partition)]}, "
                                        f"beyond the partition's end offset {n}")
        assert "reading the partition from offset 0" in said
        # The learnt model goes on: the same services, on a new partition.
        state = store.load(topic, partition)
        assert (state.next_offset, state.records) == (n, learnt[(topic, partition)] + n)


def test_a_checkpoint_of_the_other_kind_is_discarded_when_an_input_changes_kind(broker, tmp_path, caplog):
    """Metric points on one topic, read as plain-text log lines, then as metrics, then as logs again."""
    from detector.config import InputSpec

    spec = pipeline_spec(broker.bootstrap_servers, tmp_path)
    topic, group = spec.inputs[1].topic, spec.kafka.group_id
    formats = {"log": "plain", "metric": "metric_json"}
    sent = Counter()
    for n, kind in enumerate(["log", "metric", "log"]):
        spec = spec.model_copy(update={"inputs": [spec.inputs[0], InputSpec(topic=topic, kind=kind, format=formats[kind])]})
        sent += produce(broker.bootstrap_servers, topic, [
            (svc.encode(), metric_point(T0 + 15 * i, svc, "http_request_duration_ms", 100.0 + i % 5))
            for i, svc in enumerate(["checkout", "auth"] * 50, start=100 * n)])
        with RunningService(spec) as service:
            wait_committed(broker.bootstrap_servers, group, sent, timeout=30)
            with service.lock:
                assert service.pipeline.consumed[topic] == 100  # only the new ones: nothing read twice
                assert not service.pipeline.dead_lettered  # all scored by a model of the input's kind
                assert {st.kind for st in service.pipeline.partitions.values()} == {kind}
            assert service.fatal is None and not service.failed
        if n:
            before = {"log": "metric", "metric": "log"}[kind]
            said = warnings_with(caplog, f"the checkpoint holds {before} model state but the input is now kind: {kind}")
            assert sorted(said) == sorted(f"{t}[{p}]: the checkpoint holds {before} model state but the input is now "
                                          f"kind: {kind}; discarded, the partition starts fresh" for t, p in sent)
    # Switched again with nothing new to read: the discarded files went with the warning, so a restart
    # after that neither warns again nor finds the old state.
    spec = spec.model_copy(update={"inputs": [spec.inputs[0], InputSpec(topic=topic, kind="metric", format="metric_json")]})
    caplog.clear()
    for _ in range(2):
        with RunningService(spec) as service:
            wait_for(lambda: service.assigned, timeout=30, what="partitions assigned")
    said = warnings_with(caplog, "the checkpoint holds log model state but the input is now kind: metric")
    assert len(said) == len(sent)  # once per partition, at the first of the two restarts


def test_checkpoint_files_deleted_under_the_running_service_are_written_again(broker, tmp_path, caplog):
    spec = pipeline_spec(broker.bootstrap_servers, tmp_path)
    log_topic, state = spec.inputs[0].topic, Path(spec.checkpoint.directory)
    per_partition = produce(broker.bootstrap_servers, log_topic, log_lines(0, 200))
    names = {f"{t}-{p}.ckpt" for t, p in per_partition} | {"alerting.state", LOCK_FILE}
    with RunningService(spec):
        wait_committed(broker.bootstrap_servers, spec.kafka.group_id, per_partition)
        assert {f.name for f in state.iterdir()} == names
        # Deleted whole (renamed away first, so that no checkpoint sees it half deleted): nothing new
        # comes, yet the next checkpoint writes every state again.
        state.rename(tmp_path / "gone")
        shutil.rmtree(tmp_path / "gone")
        wait_for(lambda: state.is_dir() and {f.name for f in state.iterdir()} == names, timeout=30,
                 what="checkpoint files written again")
        (said,) = warnings_with(caplog, "checkpoint files missing")
        assert said.startswith(f"checkpoint files missing from {state}, written again: ")
        assert set(said.split(": ", 1)[1].split(", ")) == names - {LOCK_FILE}
        # The lock file alone: taken again, so that another instance cannot start on the directory.
        (state / LOCK_FILE).unlink()
        wait_for(lambda: (state / LOCK_FILE).exists(), timeout=30, what="lock file written again")
        # Again, now just before the service is told to stop: its final checkpoint writes them.
        state.rename(tmp_path / "gone")
        shutil.rmtree(tmp_path / "gone")
    assert {f.name for f in state.iterdir()} == names  # the lock taken again on the new directory
    assert len(warnings_with(caplog, "checkpoint files missing")) == 2
    restored = CheckpointStore(state)
    assert {tp: restored.load(*tp).next_offset for tp in per_partition} == dict(per_partition)
