"""Kafka in and out: the consumer-group source and the dead-letter producer (kafka-python).

Auto-commit is off: the service commits an offset only after the state that includes it has been
checkpointed (at-least-once). A dead letter carries the original key and value unchanged, plus
headers naming the error and where the record came from, so it can be inspected and replayed; only a
value too large to be written at all is cut to its head, and a header says so.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Iterable

import orjson

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from detector.config import KafkaSettings
from detector.errors import DeliveryError
from detector.records import RawRecord

log = logging.getLogger(__name__)

# The most a dead letter's key and value hold together: the producer's max_request_size and a default
# broker's message.max.bytes (about 1 MiB each) also hold its headers and framing. A longer record (one
# dead-lettered for its size, say) could not be written at all, and the stream would stop on it.
MAX_DEAD_LETTER_BYTES = 1_000_000

Offsets = dict[tuple[str, int], int]
OnRevoked = Callable[[list[tuple[str, int]]], Offsets]  # checkpoints, returns the offsets to commit
OnAssigned = Callable[[list[tuple[str, int]]], None]


def client_config(settings: KafkaSettings) -> dict:
    """Connection and security settings shared by every client."""
    cfg = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        cfg["sasl_mechanism"] = settings.sasl_mechanism
        cfg["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            cfg["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return cfg


def _offsets(offsets: Offsets) -> dict:
    return {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}


def fetch_config(settings: KafkaSettings) -> dict:
    """How a consumer fetches: shared by the service and the benchmark's raw-consumer baseline."""
    return {
        "max_poll_records": settings.max_poll_records,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "max_partition_fetch_bytes": settings.max_partition_fetch_bytes,
    }


class _Listener(AsyncConsumerRebalanceListener):
    """Runs on the consumer's IO loop, where blocking calls are not allowed: the revoked partitions'
    offsets are committed with an awaited asynchronous commit, before they are handed over."""

    def __init__(self, consumer: KafkaConsumer, on_revoked: OnRevoked, on_assigned: OnAssigned):
        self._consumer = consumer
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked):
        offsets = self._on_revoked(sorted((tp.topic, tp.partition) for tp in revoked))
        if offsets:
            try:
                await self._consumer.commit_async(_offsets(offsets))
            except KafkaError as exc:
                # Not raised: kafka-python would end the service with it. At least once all the same,
                # as the partitions' next owner reads again from the last commit.
                log.warning("could not commit the offsets of revoked partitions %s: %s", sorted(offsets), exc)

    async def on_partitions_assigned(self, assigned):
        self._on_assigned(sorted((tp.topic, tp.partition) for tp in assigned))

    async def on_partitions_lost(self, lost):
        # The group already gave these away: committing would fail, and another member owns them.
        self._on_revoked(sorted((tp.topic, tp.partition) for tp in lost))


class KafkaSource:
    """A consumer-group member over the configured topics, yielding poll batches of RawRecords."""

    def __init__(self, settings: KafkaSettings, topics: Iterable[str], on_revoked: OnRevoked, on_assigned: OnAssigned):
        self.settings = settings
        self.consumer = KafkaConsumer(
            **client_config(settings),
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.session_timeout_ms // 3),
            **fetch_config(settings),
        )
        self.consumer.subscribe(list(topics), listener=_Listener(self.consumer, on_revoked, on_assigned))

    def poll(self) -> list[RawRecord]:
        polled = self.consumer.poll(timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.max_poll_records)
        out: list[RawRecord] = []
        for tp, records in polled.items():
            topic, partition = tp.topic, tp.partition
            out.extend(
                RawRecord(topic, partition, r.offset, r.timestamp / 1000.0 if r.timestamp >= 0 else None, r.key, r.value)
                for r in records
            )
        return out

    def commit(self, offsets: Offsets) -> None:
        if offsets:
            self.consumer.commit(_offsets(offsets))

    def highwaters(self) -> dict[tuple[str, int], int]:
        """Last known end offset per assigned partition, from fetch responses (no extra request)."""
        out = {}
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                out[(tp.topic, tp.partition)] = high
        return out

    def probe(self, timeout_ms: int) -> bool:
        """Ask the brokers for the end offsets of the assigned partitions: one cheap request that tells
        whether Kafka answers while nothing else is asked of it (an idle consumer's fetches fail
        quietly). False with nothing assigned (nothing asked); raises KafkaError (a timeout among them)
        if no answer. The offsets themselves are not used (see ``Service.probe_kafka``)."""
        tps = list(self.consumer.assignment())
        if not tps:
            return False
        self.consumer.end_offsets(tps, timeout_ms=timeout_ms)
        return True

    def partition_counts(self, topics) -> dict[str, int]:
        """Partitions of each topic as the client's cluster metadata last had them (no request)."""
        return {t: len(self.consumer.partitions_for_topic(t) or ()) for t in topics}

    def close(self) -> None:
        self.consumer.close(autocommit=False)


class _AckedProducer:
    """Records to one topic, made durable by ``flush`` before the offsets they follow from are committed."""

    def __init__(self, settings: KafkaSettings, topic: str):
        self.topic = topic
        self.producer = KafkaProducer(**client_config(settings), acks="all", linger_ms=20)
        self._pending = []  # (what, future) since the last flush; checked there so no failure goes unseen

    def _send(self, what: str, **record) -> None:
        try:
            self._pending.append((what, self.producer.send(self.topic, **record)))
        except KafkaError as exc:  # refused before sending: too large, or no metadata for the topic
            raise self._refused(what, exc) from None

    def flush(self) -> None:
        """Block until every record sent so far is acknowledged; raises if the broker refused one."""
        self.producer.flush()
        pending, self._pending = self._pending, []
        for what, fut in pending:
            if fut.failed():
                raise self._refused(what, fut.exception)

    def _refused(self, what: str, exc: Exception) -> DeliveryError:
        return DeliveryError(f"could not write the {what} to topic {self.topic!r}: {exc}; stopped without "
                             "committing the offsets from there on, so a restart reads those records again")

    def close(self) -> None:
        self.producer.close()


class DeadLetterProducer(_AckedProducer):
    def __init__(self, settings: KafkaSettings):
        super().__init__(settings, settings.dead_letter_topic)

    def send(self, raw: RawRecord, reason: str, kind: str) -> None:
        headers = [
            ("error", reason.encode("utf-8", "replace")[:4096]),
            ("error_kind", kind.encode()),
            ("source_topic", raw.topic.encode()),
            ("source_partition", str(raw.partition).encode()),
            ("source_offset", str(raw.offset).encode()),
        ]
        value = raw.value
        room = max(0, MAX_DEAD_LETTER_BYTES - len(raw.key or b""))
        if value is not None and len(value) > room:
            headers.append(("truncated_from", str(len(value)).encode()))  # its size in bytes before the cut
            value = value[:room]  # the head tells what the record was
        self._send(f"dead letter of {raw.topic}[{raw.partition}]@{raw.offset}", key=raw.key, value=value, headers=headers)


class IncidentTopicProducer(_AckedProducer):
    """Incident events (opened / updated / resolved) as JSON records on ``sinks.alerts_topic``, keyed
    by entity, for consumers other than Alertmanager (a ticketing bridge, an archive)."""

    def send(self, events) -> None:
        for ev in events:
            inc = ev.incident
            doc = {"kind": ev.kind, "timestamp": ev.timestamp, "incident": dataclasses.asdict(inc)}
            self._send(f"incident event ({ev.kind}) of {inc.entity}", key=inc.entity.encode(), value=orjson.dumps(doc))


def ensure_topics(settings: KafkaSettings, topics: Iterable[str], partitions: int = 3) -> None:
    """Create missing topics (for the demo and tests; production topics are managed by their owners)."""
    admin = KafkaAdminClient(**client_config(settings))
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    except KafkaError as exc:
        log.warning("could not create topics %s: %s", list(topics), exc)
        raise
    finally:
        admin.close()
