"""The live service: poll -> pipeline -> sinks, then checkpoint, THEN commit.

At-least-once: an offset is committed only after the state that includes it is checkpointed and the
dead letters for the records before it are acknowledged by the broker. On a rebalance, revoked
partitions are checkpointed and committed before they are let go, and assigned partitions have their
state restored (and the consumer moved to the checkpoint's offset) before any of their records are
processed.

A checkpoint writes only the states that changed since their last one, so an idle service writes
nothing; a state whose file is gone from the directory (deleted under the running service) counts as
changed, so it is written again. A checkpoint or commit that fails (a full disk, Kafka unreachable) is
logged, counted and retried at the next interval while processing goes on; nothing is committed past
what is saved, and ``checkpoint_age_seconds`` grows until both succeed again.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from kafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from detector.checkpoint import CheckpointStore
from detector.config import PipelineSpec
from detector.errors import DetectorError, KafkaUnavailable, StateError
from detector.http_server import StatusServer
from detector.incidents import IncidentEvent
from detector.kafka_io import DeadLetterProducer, IncidentTopicProducer, KafkaSource
from detector.model_reload import ModelReloader
from detector.pipeline import Pipeline
from detector.sinks.alertmanager import AlertmanagerPusher
from detector.sinks.console import ConsoleSink
from detector.sinks.prometheus import PrometheusSink

log = logging.getLogger(__name__)

# Alert and incident state is per entity, not per partition: one named checkpoint holds it, so an
# incident that is open when the service restarts keeps its id instead of opening again.
ENTITY_STATE = "alerting"
ENTITY_KEY = (ENTITY_STATE, None)


class _PartitionCollector:
    """``partitions_assigned{topic}`` (to this replica) and ``topic_partitions{topic}`` (in all)."""

    def __init__(self, service: "Service"):
        self.service = service

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        svc = self.service
        topics = [inp.topic for inp in svc.spec.inputs]
        assigned = GaugeMetricFamily("outage_detector_partitions_assigned",
                                     "Partitions of each input topic assigned to this replica.", labels=["topic"])
        total = GaugeMetricFamily("outage_detector_topic_partitions",
                                  "Partitions of each input topic, as Kafka's metadata has them.", labels=["topic"])
        held, counts = svc.assigned_now, svc.topic_partitions  # replaced whole, never changed in place
        for topic in topics:
            assigned.add_metric([topic], sum(t == topic for t, _ in held))
            if counts.get(topic):
                total.add_metric([topic], counts[topic])
        yield assigned
        yield total


class DeadLetterLog:
    """Logs the first ``first`` dead letters of each (topic, error kind), then one summary line per
    kind at most every ``every`` seconds: 20,000 bad records must not become 20,000 log lines, as the
    counter ``records_dead_lettered_total`` and the dead-letter topic already carry each one."""

    def __init__(self, dead_letter_topic: str, first: int = 5, every: float = 60.0, clock=None):
        self.topic = dead_letter_topic
        self.first = first
        self.every = every
        self.clock = clock or time.monotonic
        self.logged: dict[tuple[str, str], int] = {}
        self.held: dict[tuple[str, str], int] = {}  # not logged since the last summary
        self.last_summary = self.clock()

    def log(self, dead_letters) -> None:
        for dl in dead_letters:
            key = (dl.raw.topic, dl.kind)
            n = self.logged.get(key, 0)
            if n < self.first:
                self.logged[key] = n + 1
                log.warning("dead letter %s[%d]@%d: %s%s", dl.raw.topic, dl.raw.partition, dl.raw.offset, dl.reason,
                            f" (the first {self.first} of kind {dl.kind} on {dl.raw.topic} are logged, then a "
                            f"count every {self.every:g}s)" if n + 1 == self.first else "")
            else:
                self.held[key] = self.held.get(key, 0) + 1
        self.summarise()

    def summarise(self) -> None:
        if not self.held or self.clock() - self.last_summary < self.every:
            return
        for (topic, kind), n in sorted(self.held.items()):
            log.warning("%d more dead letters of kind %s on topic %s in the last %.0fs, written to %s",
                        n, kind, topic, self.clock() - self.last_summary, self.topic)
        self.held.clear()
        self.last_summary = self.clock()


def _reason(exc: BaseException) -> str:
    """"Name: message", as kafka-python's errors print (but not "Name: None" when raised without one)."""
    name = type(exc).__name__
    text = str(exc).removeprefix(name).removeprefix(": ")
    return f"{name}: {text}" if text and text != "None" else name


class Service:
    def __init__(self, spec: PipelineSpec, pipeline: Pipeline | None = None, listeners=(),
                 pipeline_path: Path | None = None):
        self.spec = spec
        self.listeners = list(listeners)  # callables given each batch's BatchResult
        self.pipeline = pipeline or Pipeline.from_spec(spec)
        self.store = CheckpointStore(spec.checkpoint.directory)
        # Held per batch; a scrape takes it too, or serves the state as read at the end of the last batch.
        self.lock = threading.Lock()
        # Picks up changed model specs, and changed alerting settings in the pipeline file it came from.
        self.reloader = ModelReloader(self.pipeline, self.lock, pipeline_path=pipeline_path)
        self.stop_event = threading.Event()
        self.assigned: set[tuple[str, int]] = set()
        self.assigned_now: frozenset[tuple[str, int]] = frozenset()  # a copy for /metrics, read without the lock
        self.topic_partitions: dict[str, int] = {}  # per input topic, from the client's metadata (probe_kafka)
        # Whether the last rebalance has ended with this member in the group, partitions or not: a
        # member beyond the partition count gets none (kafka-python's eager protocol, the default
        # assignors', calls on_partitions_assigned with an empty list then) and is ready all the same.
        # Waiting for partitions there would keep it unready for as long as it runs, and stop a rolling
        # update of the StatefulSet at it for good.
        self.joined = False
        # Partitions restored from a checkpoint, until their first record arrives: the offset the
        # checkpoint's state has processed up to (see ``_skip_processed``).
        self.resume_at: dict[tuple[str, int], int] = {}
        self.highwaters: dict[tuple[str, int], int] = {}
        self.heard: dict[tuple[str, int], float] = {}  # monotonic time of each partition's last record
        # The mark (see ``checkpoint``) of what each checkpoint file holds, and the offset last committed
        # per partition: what has not changed since is neither written nor committed again. The alert
        # and incident state stays as restored until the pipeline takes a record.
        self.saved: dict[tuple[str, int | None], object] = {ENTITY_KEY: (0, ())}
        # The states that have a checkpoint file (restored from it, or written since): one found missing
        # (the directory emptied under the service) is written again. Those warned about as missing,
        # until written: the warning is not repeated every interval while writing fails.
        self.on_disk: set[tuple[str, int | None]] = set()
        self.missing: set[tuple[str, int | None]] = set()
        self.committed: dict[tuple[str, int], int] = {}
        self.checkpointed_at: float | None = None  # wall clock when all held state was last saved and committed
        self.failing: set[str] = set()  # steps failing since the last checkpoint and commit: logged once each
        self.last_failure: StateError | KafkaUnavailable | None = None
        # Found in a rebalance callback, which must not raise into kafka-python (it would bury the error
        # under its own); ends the loop before any record of the partition is processed.
        self.fatal: DetectorError | None = None
        self.last_loop = time.monotonic()
        self.failed = False  # set when the loop ends on an error: nothing more is checkpointed or committed
        self.source: KafkaSource | None = None
        self.dead_letters: DeadLetterProducer | None = None
        self.incident_topic: IncidentTopicProducer | None = None
        self.dead_letter_log = DeadLetterLog(spec.kafka.dead_letter_topic)
        self.console = ConsoleSink(signals=spec.sinks.console.signals) if spec.sinks.console.enabled else None
        self.prometheus = PrometheusSink(
            self.pipeline, self.lock, spec.sinks.prometheus.series_budget,
            lag=self._lag, checkpoint_time=lambda: self.checkpointed_at,
            stale_after=spec.sinks.prometheus.stale_after_seconds,
        )
        self.prometheus.registry.register(self.reloader)
        self.checkpoint_failures = Counter(
            "outage_detector_checkpoint_failures", "Checkpoints that failed, by step: write (the state to "
            "checkpoint.directory) or commit (dead letters and offsets to Kafka).", ["step"],
            registry=self.prometheus.registry)
        for step in ("write", "commit"):
            self.checkpoint_failures.labels(step)
        # Losing Kafka is otherwise invisible while the service is idle: polls just return nothing, the
        # lag stays as last seen and nothing is committed. Set by ``probe_kafka`` each checkpoint interval.
        self.kafka_up = True
        Gauge("outage_detector_kafka_up", "1 while Kafka answered the last request for the assigned partitions' "
              "end offsets (made every checkpoint interval), 0 when it did not.",
              registry=self.prometheus.registry).set_function(lambda: float(self.kafka_up))
        # A replica can drop out of its group (a broker that lost the group's state) and idle for good
        # with /healthz 200: its partitions are then read by nobody, which only a comparison across
        # replicas shows (OutageDetectorPartitionsUnconsumed).
        self.prometheus.registry.register(_PartitionCollector(self))
        self.http: StatusServer | None = None
        self.alertmanager: AlertmanagerPusher | None = None
        if spec.sinks.alertmanager.url:
            self.alertmanager = AlertmanagerPusher(spec.sinks.alertmanager, self.prometheus.registry)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        # Before any state is read: another instance writing this directory would overwrite this one's
        # checkpoints (and it theirs), and each would restore the other's incidents after a restart.
        self.store.lock()
        try:
            self._start()
        except BaseException:
            self.store.unlock()  # a service that did not start holds nothing
            raise

    def _start(self) -> None:
        self._restore_entity_state()
        self.checkpointed_at = time.time()  # nothing processed yet: the state on disk is current
        with self.lock:
            # Something for a scrape to serve from the start, should the first batch hold the lock long.
            self.prometheus.refresh()
        prom = self.spec.sinks.prometheus
        # The health endpoints are served whether or not /metrics is: liveness and readiness probes
        # (deploy/kubernetes) point at them, and would restart or never route to a service that
        # turned its metrics off.
        self.http = StatusServer(
            prom.host, prom.port, self.prometheus.registry if prom.enabled else None,
            healthy=self._healthy, ready=self._ready, templates=self._templates,
        ).start()
        if prom.enabled:
            log.info("serving /metrics, /healthz, /readyz, /templates on %s", self.http.url)
        else:
            log.info("sinks.prometheus.enabled is false: serving /healthz, /readyz, /templates on %s, "
                     "without /metrics", self.http.url)
        if self.alertmanager is not None:
            self.alertmanager.start()
            log.info("pushing incidents to %s", self.alertmanager.endpoint)
        topics = [inp.topic for inp in self.spec.inputs]
        try:
            self.dead_letters = DeadLetterProducer(self.spec.kafka)
            if self.spec.sinks.alerts_topic:
                self.incident_topic = IncidentTopicProducer(self.spec.kafka, self.spec.sinks.alerts_topic)
            self.source = KafkaSource(self.spec.kafka, topics, self._on_revoked, self._on_assigned)
        except KafkaError as exc:
            self.close()
            raise KafkaUnavailable(
                f"cannot reach Kafka at {self.spec.kafka.bootstrap_servers} (kafka.bootstrap_servers): {exc}"
            ) from None
        log.info("consuming %s as group %r from %s", ", ".join(topics), self.spec.kafka.group_id, self.spec.kafka.bootstrap_servers)

    def run(self) -> None:
        """Process until ``stop()``; then a final checkpoint and commit."""
        if self.source is None:
            self.start()
        interval = self.spec.checkpoint.interval_seconds
        last_checkpoint = time.monotonic()
        try:
            while not self.stop_event.is_set():
                batch = self.source.poll()
                if self.fatal is not None:
                    break
                self.last_loop = time.monotonic()
                if batch:
                    self.process(batch)
                self.reloader.check()
                self.dead_letter_log.summarise()  # also when no batch comes after a burst
                if time.monotonic() - last_checkpoint >= interval:
                    self.probe_kafka(interval)
                    self.try_checkpoint_and_commit()
                    last_checkpoint = time.monotonic()
            if self.fatal is None and not self.try_checkpoint_and_commit():
                self.fatal = type(self.last_failure)(  # a StateError or KafkaUnavailable, as what failed
                    f"stopped without a final checkpoint and commit: {self.last_failure}; the records since the "
                    "last one will be read again on the next start")
        except KafkaError as exc:
            # What kafka-python does not retry itself ends the service: one paragraph naming the cause
            # (also of an error it wrapped), not a traceback.
            cause = _reason(exc) + (f" (from {_reason(exc.__cause__)})" if exc.__cause__ is not None else "")
            self.failed = True
            raise KafkaUnavailable(f"stopped: Kafka at {self.spec.kafka.bootstrap_servers} failed: {cause}") from None
        except BaseException:
            # What was processed since the last checkpoint may not have reached its outputs (a dead
            # letter refused, say): checkpointing or committing it now, as handing the partitions back
            # in ``close`` would, loses it. Left as it is, a restart reads it again.
            self.failed = True
            raise
        finally:
            self.close()
        if self.fatal is not None:
            raise self.fatal

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None
        if self.dead_letters is not None:
            self.dead_letters.close()
            self.dead_letters = None
        if self.incident_topic is not None:
            self.incident_topic.close()
            self.incident_topic = None
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.alertmanager is not None:
            self.alertmanager.close()
        self.store.unlock()  # last: the final checkpoint is written by now

    # -- per batch -------------------------------------------------------------------------------

    def process(self, batch) -> None:
        with self.lock:
            self.highwaters = self.source.highwaters()
            ends = {tp: self.highwaters.get(tp) for tp in self.assigned}
            result = self.pipeline.process(self._skip_processed(batch) if self.resume_at else batch,
                                           ends, self._stalled(batch))
            self.prometheus.emit(result, self.pipeline.last_batch_seconds)
        self.dead_letter_log.log(result.dead_letters)
        for dl in result.dead_letters:
            self.dead_letters.send(dl.raw, dl.reason, dl.kind)
        if self.alertmanager is not None:
            self.alertmanager.emit(result.incidents)
        if self.incident_topic is not None:
            self.incident_topic.send(result.incidents)
        if self.console is not None:
            self.console.emit(result)
        for listener in self.listeners:
            listener(result)

    def _stalled(self, batch: list) -> set[tuple[str, int]]:
        """The partitions that delivered no record for ``incidents.stream_stall_seconds``: whatever they
        seem to have left to read (a partition that cannot be read, one whose end is a transaction
        marker that no record follows), they no longer hold incident resolution back, so that none
        keeps incidents open for good. A partition's wait starts with the first batch that finds it
        assigned."""
        now = time.monotonic()
        for raw in batch:
            self.heard[(raw.topic, raw.partition)] = now
        stall = self.pipeline.spec.incidents.stream_stall_seconds
        return {tp for tp in self.assigned if now - self.heard.setdefault(tp, now) > stall}

    def _skip_processed(self, batch: list) -> list:
        """A restored partition resumes where the group committed, which may be behind its checkpoint
        (stopped between checkpoint and commit): records the state already holds are dropped, not
        counted twice. It may also be ahead (another member processed the partition meanwhile, and
        this member's checkpoint is older): the state then carries on from the committed offset, and
        nothing is processed twice. Seeking to the checkpoint instead would re-process in that case.
        A checkpoint beyond the partition's end is not of this partition: nothing is skipped (see
        ``_forget_offset``)."""
        out = []
        for raw in batch:
            tp = (raw.topic, raw.partition)
            at = self.resume_at.get(tp)
            if at is not None and at > self.highwaters.get(tp, at):
                self._forget_offset(tp, at, raw.offset)
                at = None
            if at is not None:
                if raw.offset < at:
                    self.committed.pop(tp, None)  # the group's offset is behind the checkpoint's: commit that
                    continue
                del self.resume_at[tp]
                if raw.offset > at:
                    log.info("%s[%d]: resuming at offset %d, after the %d records since this member's "
                             "checkpoint", raw.topic, raw.partition, raw.offset, raw.offset - at)
            out.append(raw)
        return out

    def _forget_offset(self, tp: tuple[str, int], at: int, first: int) -> None:
        """A checkpoint's offset beyond its partition's end cannot be this partition's: the topic was
        deleted and created again, or the service points at another Kafka cluster with its old
        checkpoint directory. Skipping up to that offset would drop new records unseen, so none is
        skipped: the partition is read from the group's position. The end is the high watermark of the
        fetch that delivered the partition's first records: fetched anyway, and of the partition as it
        is now. The learnt model state is kept, as it describes the same services; only its offset,
        which belongs to the old partition, goes."""
        log.warning("%s[%d]: the checkpoint is at offset %d, beyond the partition's end offset %d: the topic was "
                    "recreated, or this is another Kafka cluster; reading the partition from offset %d without "
                    "skipping any record, keeping the learnt model state", tp[0], tp[1], at, self.highwaters[tp],
                    first)
        del self.resume_at[tp]
        self.pipeline.partitions[tp].next_offset = None
        self.committed.pop(tp, None)  # that offset was never this partition's: commit what is processed

    def checkpoint(self, partitions) -> dict[tuple[str, int], int]:
        """Make the dead letters durable, write the state of the partitions, and the alert and incident
        state, where it changed since its last checkpoint; returns the partitions' offsets that are now
        safe to commit. Raises StateError or KafkaError: then nothing may be committed.

        What changed is told by a mark per state: a partition's next offset (every record processed moves
        it) and the number of records the pipeline took (for the alert and incident state). A reload
        changes state without moving them, and needs no write: a restored checkpoint is brought to the
        specs in use anyway. A state whose file is gone from disk is written again whatever its mark:
        an unchanged partition would otherwise never be saved again, and a restart would start it
        empty. One existence check per state and checkpoint is all it costs."""
        # Dead letters first: once the offset is committed the source record is gone for us. Flushed
        # outside the lock, as it waits on the broker: only the processing loop sends them, and it is
        # here or, for a rebalance, waiting on the consumer.
        self.dead_letters.flush()
        if self.incident_topic is not None:
            self.incident_topic.flush()
        with self.lock:
            held = {tp: self.pipeline.partitions[tp] for tp in sorted(partitions) if tp in self.pipeline.partitions}
            marks = {tp: st.next_offset for tp, st in held.items()}
            # Incidents that ended while Alertmanager was unreachable are in no other state: they are saved
            # before the offsets of the records that produced them are committed, and again once delivered.
            owed = self.alertmanager.owed() if self.alertmanager is not None else []
            marks[ENTITY_KEY] = (sum(self.pipeline.consumed.values()), tuple((inc.id, shown) for inc, shown in owed))
            states = {**held, ENTITY_KEY: (self.pipeline.alerting, self.pipeline.incidents, owed)}
            gone = [key for key in marks if key in self.on_disk and not self.store.path(*key).exists()]
            if gone:
                self._warn_missing(gone)
            self.store.relock()  # its file deleted (alone, or with the directory): taken again
            changed = [key for key, mark in marks.items() if self.saved.get(key) != mark or key in gone]
            # Pickled under the lock, so that no batch changes the states meanwhile; made durable after
            # it, so that scrapes do not wait on the disk.
            pending = self.store.write({key: states[key] for key in changed}) if changed else []
        if pending:
            self.store.sync(pending)
        self.saved.update((key, marks[key]) for key in changed)
        self.on_disk.update(changed)
        self.missing.difference_update(changed)
        return {tp: mark for tp, mark in marks.items() if tp != ENTITY_KEY and mark is not None}

    def _warn_missing(self, gone: list[tuple[str, int | None]]) -> None:
        new = [key for key in gone if key not in self.missing]
        if new:
            self.missing.update(new)
            log.warning("checkpoint files missing from %s, written again: %s", self.store.directory,
                        ", ".join(self.store.path(*key).name for key in new))

    def _restore_entity_state(self) -> None:
        try:
            saved = self.store.load(ENTITY_STATE)
        except StateError as exc:
            # Soft state: losing it reopens incidents under new ids, nothing more.
            log.warning("starting without the saved alert and incident state: %s", exc)
            return
        if saved is not None:
            self.on_disk.add(ENTITY_KEY)
            # A checkpoint written before ended incidents were saved for Alertmanager has two items.
            self.pipeline.alerting, self.pipeline.incidents, owed = saved if len(saved) == 3 else (*saved, [])
            # Thresholds and windows come from the current config, not from the checkpoint.
            self.pipeline.use_settings(self.pipeline.spec.alerting, self.pipeline.spec.incidents)
            tracker = self.pipeline.incidents
            still_open = tracker.open_incidents()
            log.info("restored %d open incident(s)", len(still_open))
            if self.alertmanager is not None:
                if owed:
                    log.info("%d ended incident(s) still to be delivered to Alertmanager", len(owed))
                self.alertmanager.restore(owed)
                # Pushes from before the restart expire: incidents still open go on being pushed, so
                # Alertmanager sees them firing until they resolve, not a resolve and then a re-page.
                self.alertmanager.emit([IncidentEvent("updated", tracker.now, inc) for inc in still_open])

    def checkpoint_and_commit(self) -> None:
        """Checkpoint every assigned partition, then commit the offsets that moved. Raises StateError or
        KafkaError (nothing past the saved state is committed)."""
        offsets = self._uncommitted(self.checkpoint(self.assigned))
        self.source.commit(offsets)
        self.committed.update(offsets)
        self.checkpointed_at = time.time()

    def try_checkpoint_and_commit(self) -> bool:
        """``checkpoint_and_commit``; a failure is logged (once until it succeeds again) and counted, and
        the next interval tries again: the service goes on, its checkpoint getting older."""
        try:
            self.checkpoint_and_commit()
        except (StateError, KafkaError) as exc:
            self._failed(exc)
            return False
        if self.failing:
            log.info("checkpoint and commit succeed again")
            self.failing.clear()
        return True

    def probe_kafka(self, interval: float) -> None:
        """Ask Kafka for the assigned partitions' end offsets, only to set ``kafka_up``. Bounded by the
        interval (at most 5 s), as it holds up the loop while Kafka does not answer. The answer is not
        taken as the lag: the fetch responses' high watermarks are (some Kafka-protocol brokers, the
        embedded one among them, answer this request with the start of the last batch, not its end)."""
        try:
            asked = self.source.probe(int(min(5.0, interval) * 1000))
            self.topic_partitions = self.source.partition_counts([inp.topic for inp in self.spec.inputs])
        except KafkaError as exc:
            if self.kafka_up:
                log.warning("Kafka at %s does not answer: %s", self.spec.kafka.bootstrap_servers, _reason(exc))
            self.kafka_up = False
            return
        if not asked:
            return  # nothing assigned, nothing asked: the gauge keeps its last value
        if not self.kafka_up:
            log.info("Kafka at %s answers again", self.spec.kafka.bootstrap_servers)
        self.kafka_up = True

    def _failed(self, exc: StateError | KafkaError) -> None:
        step = "write" if isinstance(exc, StateError) else "commit"
        self.checkpoint_failures.labels(step).inc()
        self.last_failure = exc if step == "write" else KafkaUnavailable(
            f"commit to Kafka at {self.spec.kafka.bootstrap_servers} failed: {_reason(exc)}")
        if step not in self.failing:
            self.failing.add(step)
            log.error("checkpoint failed: %s; nothing is committed past the last checkpoint, and it is tried again "
                      "every %gs", self.last_failure, self.spec.checkpoint.interval_seconds)

    def _uncommitted(self, offsets: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        return {tp: o for tp, o in offsets.items() if self.committed.get(tp) != o}

    # -- rebalance (called on the consumer's IO loop: no blocking consumer calls here) ------------

    def _on_revoked(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        mine = [tp for tp in tps if tp in self.assigned]
        self.joined = False  # a rebalance is under way: ready again once it assigns
        offsets = {}
        try:
            offsets = self._uncommitted(self.checkpoint(mine)) if mine and not self.failed else {}
        except (StateError, KafkaError) as exc:
            self._failed(exc)  # the partitions go all the same: their next owner reads from the last commit
            log.warning("revoked %s without a checkpoint: their records since the last one will be read again", mine)
        with self.lock:
            for tp in mine:
                self.pipeline.partitions.pop(tp, None)
                self.resume_at.pop(tp, None)
                self.heard.pop(tp, None)
                self.assigned.discard(tp)
                self.saved.pop(tp, None)
                self.on_disk.discard(tp)
                self.missing.discard(tp)
                self.committed.pop(tp, None)
            self.assigned_now = frozenset(self.assigned)
        log.info("revoked %s", mine)
        return offsets

    def _on_assigned(self, tps: list[tuple[str, int]]) -> None:
        with self.lock:
            for tp in tps:
                try:
                    state = self.store.load(*tp)
                except StateError as exc:
                    self.fatal = self.fatal or exc
                    continue
                kind = self.pipeline.decoders[tp[0]][0]
                if state is not None and state.kind != kind:
                    # The input's kind changed since (log <-> metric): the other kind's model cannot score
                    # its records. Its file goes too: left, it would be found again at every restart of a
                    # partition that gets no record, and restored should the kind be switched back.
                    log.warning("%s[%d]: the checkpoint holds %s model state but the input is now kind: %s; "
                                "discarded, the partition starts fresh", tp[0], tp[1], state.kind, kind)
                    try:
                        self.store.path(*tp).unlink(missing_ok=True)
                    except OSError as exc:
                        log.warning("%s[%d]: could not remove the discarded checkpoint: %s", tp[0], tp[1], exc)
                    state = None
                if state is not None:
                    self.on_disk.add(tp)
                    self.pipeline.partitions[tp] = state
                    self.reloader.conform(state)  # a checkpoint from before a reload
                    # As saved; and not to be committed unchanged, as the group's offset may be ahead
                    # (another member processed beyond it) -- unless records before it come again.
                    self.saved[tp] = self.committed[tp] = state.next_offset
                    if state.next_offset is not None:
                        self.resume_at[tp] = state.next_offset
                self.assigned.add(tp)
            self.assigned_now = frozenset(self.assigned)
            self.joined = True
        if tps:
            log.info("assigned %s", tps)
        else:
            log.info("joined group %r with no partition: more members than partitions; idle until a rebalance "
                     "gives it some", self.spec.kafka.group_id)

    # -- status ----------------------------------------------------------------------------------

    def _lag(self) -> dict[tuple[str, int], int]:
        # Called at scrape time under the lock; reads only what the loop stored, because the
        # consumer is not safe to use from another thread.
        lag = {}
        for tp, high in self.highwaters.items():
            st = self.pipeline.partitions.get(tp)
            if st is not None and st.next_offset is not None:
                lag[tp] = max(0, high - st.next_offset)
        return lag

    def _healthy(self) -> bool:
        stall = max(60.0, 10 * self.spec.kafka.poll_timeout_ms / 1000)
        return time.monotonic() - self.last_loop < stall

    def _ready(self) -> bool:
        # Once in the group (with partitions or, beyond the partition count, without: see ``joined``);
        # not while checkpoints fail: consuming on without saving or committing is no steady state.
        return self.source is not None and self.joined and not self.failing

    def _templates(self) -> list[dict]:
        with self.lock:
            out = []
            for (topic, partition), st in self.pipeline.partitions.items():
                if st.kind == "log":
                    out.extend({"topic": topic, "partition": partition, **t} for t in st.model.templates())
        return out
