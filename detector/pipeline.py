"""The one processing path, shared by the live service, offline replay and the evaluations.

Raw records in, one after the other: decode -> log or metric model of the record's (topic, partition)
-> scores -> alerting and incidents. Undecodable records come back as dead letters with their reason;
nothing else is dropped. All model state is kept per (topic, partition), so a partition's state can be
checkpointed, handed over on a rebalance and restored on its own. Event time comes from the records:
the watermark of a partition is the newest event time seen there minus the allowed lateness, and log
windows close as a record moves it past them. Nothing depends on where a poll batch (or a replay's
chunk) begins or ends, only on the records and their order. The wall clock is read for one check only,
that no record is dated in the future; history is in the past, so a replay gives the scores the live
service gave.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import Collection, Iterable, Mapping, NamedTuple

from detector.alerting import Alerting, AlertTransition
from detector.config import AlertingSettings, IncidentSettings, PipelineSpec
from detector.decoders import build_decoder
from detector.detectors.drift_monitor import START_TIME, DriftMonitor
from detector.errors import ConfigError, DecodeError
from detector.incidents import IncidentEvent, IncidentTracker
from detector.logs.model import LogModel
from detector.metric_model import MetricModel
from detector.records import LogRecord, RawRecord, Score
from detector.series_model import SeriesModel
from detector.specs import LogModelSpec, MetricModelSpec, load_model_spec

log = logging.getLogger(__name__)

# How far a record's event time may run ahead of its Kafka timestamp (the producer's or the broker's
# clock): more is a wrong clock or unit, not a record that could ever be on time.
MAX_AHEAD_SECONDS = 3600.0
# How far it may run ahead of this process's clock: a producer whose clock is wrong stamps the Kafka
# timestamp with the same wrong clock, so only the wall clock catches it. Synchronised hosts are within a
# second; the bound stays well under twice the incident window (30 min by default), as the incidents of an
# entity that fell silent resolve once the newest event time anywhere is that far past them.
MAX_CLOCK_SKEW_SECONDS = 300.0
# How far from a whole or half hour a FutureTimestamp's gap may be and still read as a UTC offset: the
# Kafka timestamp trails the event by the shipper's delay, and clocks are a little off.
ZONE_HINT_SLACK_SECONDS = 180.0


class DeadLetter(NamedTuple):
    raw: RawRecord
    reason: str  # one line, for the dead-letter header and the logs
    kind: str  # bounded: the error class name, for the dead-letter counter's label


@dataclass
class BatchResult:
    scores: list[Score] = field(default_factory=list)
    transitions: list[AlertTransition] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    incidents: list[IncidentEvent] = field(default_factory=list)  # opened / updated / resolved
    # Slow-drift scores, kept apart so that ``scores`` still holds one score per metric point; the
    # alerting and the incidents see both.
    drift: list[Score] = field(default_factory=list)
    # Records with an event time behind their partition's watermark (the newest event time seen there
    # minus the allowed lateness): scored where they arrived, not where they belong in event time.
    late: int = 0


class PartitionState:
    """Everything learnt from one (topic, partition): the unit of checkpoint and hand-over."""

    drift: "DriftMonitor | None" = None  # class default: checkpoints written before drift existed load

    def __init__(self, kind: str, model: LogModel | MetricModel, drift: DriftMonitor | None = None):
        self.kind = kind
        self.model = model
        self.drift = drift  # slow-drift scores beside the metric model's (metric partitions)
        self.next_offset: int | None = None  # first offset not yet reflected in this state
        self.max_event_time = float("-inf")
        self.records = 0  # records processed into this state, across restarts


def _on_topic(scores: list[Score], topic: str) -> list[Score]:
    """Log scores carry their input topic as their series: one entity on two log inputs (its app log
    and its access log) has two streams of each log signal, which alerting, incidents and /metrics
    must keep apart rather than let the quiet one's scores cancel the hot one's."""
    return [s._replace(series=topic) for s in scores] if scores else scores


def _warming_up(s: Score, drift: DriftMonitor) -> bool:
    """A series that came back after a gap in its scrapes belongs to a restarted process, which
    starts empty (heap, caches, pools) and fills up over many minutes: reading below its level from
    before the restart while it settles is not an anomaly. Reading above it (more errors, latency,
    memory than before the restart) still is, as that is what a bad deploy looks like."""
    observed = s.evidence.get("observed")
    if observed is None:
        return False
    before = drift.level_before_restart(s.series, s.timestamp)
    return before is not None and observed <= before


def _future(newest: float, kafka_time: float | None, wall: float, zone: str = "UTC") -> str | None:
    """Why a record whose newest event time is ``newest`` is dated in the future, or None. ``zone`` is
    the input's timezone, named when the gap looks like a UTC offset."""
    if kafka_time is not None and newest - kafka_time > MAX_AHEAD_SECONDS:
        gap = newest - kafka_time
        return (f"event time {_span(gap)} after the record's Kafka timestamp "
                f"(a wrong clock or timestamp unit{_zone_hint(gap, zone)})")
    if newest - wall > MAX_CLOCK_SKEW_SECONDS:
        gap = newest - wall
        return (f"event time {_span(gap)} ahead of the detector's clock "
                f"(a wrong clock on the producer, or a wrong timestamp unit{_zone_hint(gap, zone)})")
    return None


def _zone_hint(gap: float, zone: str) -> str:
    """A gap of whole (or half, as in India) hours up to 14 is most likely local time read as another
    zone: log4j's %d, Python's asctime and syslog write no offset. Say where that is set."""
    half_hours = round(gap / 1800)
    if not 2 <= half_hours <= 28 or abs(gap - half_hours * 1800) > ZONE_HINT_SLACK_SECONDS:
        return ""
    # Only a hint: the record's timestamp may carry an offset (then the clock is wrong after all).
    return (f"; or, if its timestamps carry no offset, local time: a timestamp without an offset is read "
            f"in the input's timezone, {zone}; set 'timezone' on the input to the producer's zone")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _span(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def load_models(spec: PipelineSpec) -> tuple[MetricModelSpec, LogModelSpec]:
    return load_checked(spec.models.metric, "metric"), load_checked(spec.models.log, "log")


def load_checked(path, kind: str):
    """The model spec of ``kind`` in the file at ``path``, built once to prove it can run: what the
    schema cannot catch (an unknown detector, a parameter out of range) fails here, naming the file."""
    spec = load_model_spec(path)
    if spec.kind != kind:
        raise ConfigError(f"{path}: kind: {spec.kind} where a {kind} model spec is expected")
    try:
        if kind == "metric":
            SeriesModel.check(spec)
        else:
            LogModel.from_spec(spec)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return spec


class Pipeline:
    def __init__(self, spec: PipelineSpec, metric_spec: MetricModelSpec, log_spec: LogModelSpec):
        self.spec = spec
        self.metric_spec = metric_spec
        self.log_spec = log_spec
        self.decoders = {inp.topic: (inp.kind, build_decoder(inp)) for inp in spec.inputs}
        self.timezones = {inp.topic: inp.timezone for inp in spec.inputs}
        self.partitions: dict[tuple[str, int], PartitionState] = {}
        self.new_drift()  # a bad drift detector or parameter fails here, not on the first point
        self.alerting = Alerting(spec.alerting)
        self.incidents = IncidentTracker(spec.alerting, spec.incidents)
        self.consumed: Counter[str] = Counter()
        self.decoded: Counter[str] = Counter()
        self.dead_lettered: Counter[tuple[str, str]] = Counter()
        self.out_of_order: Counter[str] = Counter()  # metric points not scored, per topic (see process)
        # (topic, exception type) whose traceback was logged: a model failing on every record of a
        # stream logs one traceback, its dead letters (and their rate-limited log lines) the rest.
        self._failures_logged: set[tuple[str, str]] = set()
        self.last_batch_seconds = 0.0

    @classmethod
    def from_spec(cls, spec: PipelineSpec) -> "Pipeline":
        return cls(spec, *load_models(spec))

    # -- state ---------------------------------------------------------------------------------

    def new_state(self, topic: str) -> PartitionState:
        kind = self.decoders[topic][0]
        if kind == "log":
            return PartitionState(kind, LogModel.from_spec(self.log_spec))
        return PartitionState(kind, MetricModel(self.metric_spec, self.spec.alerting.sustain),
                              self.new_drift())

    def new_drift(self) -> DriftMonitor | None:
        inc = self.spec.incidents
        if inc.drift_detector is None:
            return None
        return DriftMonitor(inc.drift_detector, inc.drift_params, inc.drift_max_series)

    def use_settings(self, alerting: AlertingSettings, incidents: IncidentSettings) -> None:
        """Apply alerting and incident settings (at start, or changed while running) to everything
        held. Alert and incident state is kept: a firing alert or an open incident stays open."""
        self.spec = self.spec.model_copy(update={"alerting": alerting, "incidents": incidents})
        self.alerting.settings = alerting
        self.incidents.alerting, self.incidents.settings = alerting, incidents
        for st in self.partitions.values():
            self.conform_settings(st)

    def conform_settings(self, st: PartitionState) -> None:
        """Bring one partition (held, or just restored from a checkpoint) to the current settings."""
        if st.kind != "metric":
            return
        st.model.evidence_threshold = self.spec.alerting.sustain
        inc = self.spec.incidents
        wanted = None if inc.drift_detector is None else (inc.drift_detector, inc.drift_params, inc.drift_max_series)
        held = None if st.drift is None else (st.drift.detector, st.drift.params, st.drift.max_series)
        if held != wanted:
            st.drift = self.new_drift()  # other drift settings: the series' drift baselines start again

    def state(self, topic: str, partition: int) -> PartitionState:
        st = self.partitions.get((topic, partition))
        if st is None:
            st = self.partitions[(topic, partition)] = self.new_state(topic)
        if st.kind == "log" and not st.model.name:
            st.model.name = f"{topic}[{partition}]"  # for its log lines (also once restored)
        return st

    # -- processing ----------------------------------------------------------------------------

    def process(self, raws: Iterable[RawRecord], ends: Mapping[tuple[str, int], int | None] | None = None,
                stalled: Collection[tuple[str, int]] = ()) -> BatchResult:
        """One poll batch. ``ends`` and ``stalled`` tell which partitions may still deliver older
        records (see ``stream_time``); only the live service knows them."""
        started = time.perf_counter()
        result = BatchResult()
        scores = result.scores
        drifts = result.drift
        lateness = self.spec.lateness_seconds
        wall = time.time()
        # The scores to judge, drift included: each record's, followed by the stream time after it.
        judged: list[Score | float] = []
        # The stream time, followed record by record: only the partition that holds it back moving on (or
        # read up to its end), or a partition new to a replay, changes it.
        lowest_tp, lowest = self._lowest_watermark(ends, stalled)
        for raw in raws:
            self.consumed[raw.topic] += 1
            entry = self.decoders.get(raw.topic)
            if entry is None:
                self._dead(result, raw, f"no input is configured for topic {raw.topic!r}", "UnknownTopic")
                continue
            tp = (raw.topic, raw.partition)
            st = self.state(*tp)
            if ends is None and st.max_event_time < lowest:  # a partition new to this replay
                lowest_tp, lowest = tp, st.max_event_time
            try:
                records = entry[1].decode(raw)
            except DecodeError as exc:
                self._dead(result, raw, str(exc), type(exc).__name__)
                st.next_offset = raw.offset + 1
                continue
            future = records and _future(max(rec.timestamp for rec in records), raw.timestamp, wall,
                                         self.timezones[raw.topic])
            if future:
                # One record dated far ahead would carry event time with it: its partition's (every later
                # record late, no log window closing again) and the incidents' (all resolved at once).
                self._dead(result, raw, future, "FutureTimestamp")
                st.next_offset = raw.offset + 1
                continue
            self.decoded[raw.topic] += 1
            model = st.model
            drift = st.drift
            late = False
            out_of_order = []  # (point, its series' newest time): points of this record not scored
            before = len(judged)
            try:
                for rec in records:
                    if rec.timestamp > st.max_event_time:
                        st.max_event_time = rec.timestamp
                        if isinstance(rec, LogRecord):
                            # The windows this record's time closes close before it is counted, whatever
                            # the batch it came in: a partition's log scores depend on its records alone.
                            out = model.advance(rec.timestamp - lateness)
                            if out:  # mostly nothing closes
                                out = _on_topic(out, raw.topic)
                                scores.extend(out)
                                judged.extend(out)
                    elif rec.timestamp < st.max_event_time - lateness:
                        late = True
                    if isinstance(rec, LogRecord):
                        out = model.process(rec)
                        if out:
                            out = _on_topic(out, raw.topic)
                            scores.extend(out)
                            judged.extend(out)
                        continue
                    if rec.name == START_TIME:
                        # The process's start time tells of its restarts; as a value it says nothing.
                        if drift is not None:
                            drift.process(rec)
                        continue
                    s = model.process(rec)
                    if s is None:
                        # At or before the series' newest point (a buffer flushed after an outage, a
                        # producer re-sending): not the series' current value. Not scored; counted, and
                        # the record dead-lettered below so that nothing is lost -- unless the point is
                        # an exact repeat of the newest one, which holds nothing the model has not seen.
                        self.out_of_order[raw.topic] += 1
                        last = model.last(rec.series)
                        if rec.timestamp != last.timestamp or rec.value != last.value:
                            out_of_order.append((rec, last.timestamp))
                        continue
                    d = None
                    if drift is not None:
                        d = drift.process(rec, s.series)
                        if s.evidence is not None and _warming_up(s, drift):
                            s = s._replace(confidence=0.0)
                    scores.append(s)
                    judged.append(s)
                    if d is not None:
                        drifts.append(d)
                        judged.append(d)
            except Exception as exc:  # a model failing on one record must cost that record, not the stream
                failure = (raw.topic, type(exc).__name__)
                if failure not in self._failures_logged:
                    self._failures_logged.add(failure)
                    log.exception("scoring %s[%d]@%d failed (the traceback of a %s on %s is logged once)",
                                  raw.topic, raw.partition, raw.offset, failure[1], raw.topic)
                self._dead(result, raw, f"scoring failed: {type(exc).__name__}: {exc}", "ScoringError")
                # Its state may be what failed: the series starts again. Only a metric model keeps
                # state per series; a log model handed a metric record (a state of the wrong kind) has none.
                if not isinstance(rec, LogRecord) and hasattr(model, "forget"):
                    model.forget(rec.series)
            else:
                if out_of_order:
                    rec, newest = out_of_order[0]
                    self._dead(result, raw, (
                        f"{len(out_of_order)} of {len(records)} metric points at or before their series' newest "
                        f"point, not scored (first: {rec.series} at {_iso(rec.timestamp)}, newest {_iso(newest)})"
                        + ("" if len(out_of_order) == len(records) else "; the rest of the record was scored")),
                        "OutOfOrder")
            result.late += late
            st.records += 1
            st.next_offset = raw.offset + 1
            if tp == lowest_tp and (st.max_event_time > lowest or (
                    ends is not None and (end := ends.get(tp)) is not None and st.next_offset >= end)):
                lowest_tp, lowest = self._lowest_watermark(ends, stalled)
            if len(judged) > before:
                judged.append(lowest - lateness)
        # Judged record by record, each record's scores with the stream time after it: alerts and
        # incidents then depend on the records and their order, not on where poll batches or replay
        # chunks cut them.
        result.transitions = self.alerting.observe(judged)
        result.incidents = self.incidents.observe(judged)
        self.last_batch_seconds = time.perf_counter() - started
        return result

    def stream_time(self, ends: Mapping[tuple[str, int], int | None] | None = None,
                    stalled: Collection[tuple[str, int]] = ()) -> float:
        """The lowest watermark of the partitions that may still deliver older records: event time up
        to which every stream has been read. While the service catches up, poll batches hand out
        large chunks of one partition at a time, so one topic runs hours ahead of another; an
        incident must not end on the time of the one ahead while the other may still add to it.

        ``ends`` (live): the partitions held, with their end offsets as last fetched (None before the
        first fetch). One read up to its end does not count, as what it delivers next is new; one not
        read from yet holds everything back. ``stalled``: partitions the service no longer waits for.
        Without ``ends`` (a replay reads a backlog), every partition read so far counts, until
        ``flush``."""
        return self._lowest_watermark(ends, stalled)[1] - self.spec.lateness_seconds

    def _lowest_watermark(self, ends: Mapping[tuple[str, int], int | None] | None = None,
                          stalled: Collection[tuple[str, int]] = ()) -> tuple[tuple[str, int] | None, float]:
        """The partition that holds ``stream_time`` back, and its newest event time."""
        lowest_tp, lowest = None, float("inf")
        for tp in (self.partitions if ends is None else ends):
            st = self.partitions.get(tp)
            if ends is not None:
                end = ends[tp]
                offset = st.next_offset if st is not None and st.next_offset is not None else 0
                if end is not None and offset >= end:
                    continue
            if tp in stalled:
                continue
            newest = st.max_event_time if st is not None else float("-inf")
            if newest < lowest:
                lowest_tp, lowest = tp, newest
        return lowest_tp, lowest

    def flush(self) -> BatchResult:
        """Close every open window, as at the end of a replay: event time is over for all partitions."""
        result = BatchResult()
        for (topic, _), st in self.partitions.items():
            if st.kind == "log":
                result.scores.extend(_on_topic(st.model.advance(float("inf")), topic))
        # No stream holds anything back any more: the clocks are the newest event time anywhere.
        result.transitions = self.alerting.observe(result.scores)
        result.incidents = self.incidents.observe(result.scores)
        return result

    def _dead(self, result: BatchResult, raw: RawRecord, reason: str, kind: str) -> None:
        self.dead_lettered[(raw.topic, kind)] += 1
        result.dead_letters.append(DeadLetter(raw, reason, kind))

    # -- introspection for the exporters ---------------------------------------------------------

    def series_held(self, kind: str = "metric") -> int:
        """Metric series with a model, or for ``kind="log"`` log entities and open sessions."""
        return sum(st.model.series_held() for st in self.partitions.values() if st.kind == kind)

    def templates_held(self) -> int:
        return sum(st.model.templates_held() for st in self.partitions.values() if st.kind == "log")

    def templates_evicted(self) -> int:
        return sum(st.model.miner.evicted_templates for st in self.partitions.values() if st.kind == "log")

    def evictions(self) -> int:
        return (self.alerting.evictions + self.incidents.evictions
                + sum(st.model.evictions for st in self.partitions.values())
                + sum(st.drift.evictions for st in self.partitions.values() if st.drift is not None))
