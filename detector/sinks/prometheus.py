"""Prometheus exposition: self-metrics and model metrics, read by a custom collector at scrape time.

Model values (scores, confidence, expected bands, alert state) are not pushed with a ``set()`` per
record: the collector reads them from the pipeline when Prometheus scrapes, under the same lock the
processing loop holds per batch. A poll batch is bounded in records and bytes, not in time: catching
up on large multi-point records, one takes many seconds, longer than Prometheus' scrape timeout. So a
scrape waits for the lock at most ``wait`` seconds; past that it serves the pipeline state as it last
read it (see ``PipelineCollector``), with its age in ``metrics_snapshot_age_seconds``.

Label values are bounded: entity and signal come from bounded vocabularies, their length (and the
series') is bounded where records are decoded (records.py; a longer one is dead-lettered), and the
number of model series exported is capped by ``series_budget`` (the series with the newest points,
whichever partition holds them); what is over budget is reported, never silently cut.
A metric series whose newest point is ``stale_after`` seconds of event time older than its partition's
newest event time has stopped reporting (its pod is gone, say): it is neither exported nor over budget,
but its model is kept (bounded by ``max_series``), so a series that comes back carries on.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from itertools import chain
from typing import TYPE_CHECKING, Callable

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from detector import __version__
from detector.logs.model import SIGNALS as LOG_SIGNALS
from detector.records import Score

if TYPE_CHECKING:
    from detector.metric_model import SeriesEntry
    from detector.pipeline import BatchResult, Pipeline

P = "outage_detector_"

# How long a scrape waits for the batch in progress before it serves the snapshot: well within
# Prometheus' 10 s default scrape timeout, with room for reading the state once it has the lock.
SCRAPE_WAIT_SECONDS = 1.0


def _last_point(item: tuple[str, "SeriesEntry"]) -> float:
    return item[1].timestamp  # event time of the series' newest point


class LogSignalTable:
    """Latest value per (entity, log signal, input topic), least recently updated first, at most the series budget:
    a new entity's signal makes way by dropping the stalest one (counted), and entities the log models
    no longer hold are dropped at scrape time (``keep_only``), so nothing stale stays exported."""

    def __init__(self, budget: int):
        self.budget = budget
        self.latest: OrderedDict[tuple[str, str, str], Score] = OrderedDict()
        self.dropped = 0

    def update(self, scores: list[Score]) -> None:
        latest = self.latest
        for s in scores:
            if s.signal not in LOG_SIGNALS:
                continue  # metric series are read from the metric models directly (even one called log_*)
            key = (s.entity, s.signal, s.series)  # series: the log input topic
            if latest.pop(key, None) is None and len(latest) >= self.budget:
                latest.popitem(last=False)
                self.dropped += 1
            latest[key] = s

    def keep_only(self, entities: set[str]) -> None:
        for key in [k for k in self.latest if k[0] not in entities]:
            del self.latest[key]


class PipelineCollector(Collector):
    """Reads the pipeline state at scrape time when the lock is free within ``wait``; otherwise serves
    the snapshot of the last read: consistent, as it was read between two batches, and as at the end of
    the previous batch while a long one runs (``batch_done`` reads it again then).

    Why this and not another way:
    - Waiting with a timeout alone, serving whatever the last scrape read, would serve a state many
      batches old through a catch-up: a scrape seldom falls in the short gap between two batches.
    - Reading the state at the end of every batch costs a full read (every exported series) per poll
      batch, and the live service polls many small batches: a steady cost, for scrapes that mostly
      find the lock free. So it is read at a batch end only when it is needed (``batch_done``).
    - Processing a batch in chunks, releasing the lock between them, would bound nothing: one record
      of line protocol or OTLP (up to 1 MiB, tens of thousands of points) takes seconds by itself.
    The state is read only under the lock; counters the service keeps itself are separate collectors
    and never wait on it."""

    def __init__(
        self,
        pipeline: "Pipeline",
        lock: threading.Lock,
        budget: int,
        table: LogSignalTable,
        lag: Callable[[], dict[tuple[str, int], int]] | None = None,
        checkpoint_time: Callable[[], float | None] | None = None,
        stale_after: float = 7200.0,
        wait: float = SCRAPE_WAIT_SECONDS,
    ):
        self.pipeline = pipeline
        self.lock = lock
        self.budget = budget
        self.stale_after = stale_after
        self.table = table
        self.lag = lag
        self.checkpoint_time = checkpoint_time
        self.wait = wait
        # What the pipeline state read as when last read under the lock: (monotonic time, families).
        self.snapshot: tuple[float, list] | None = None
        self.build_seconds = 0.0  # how long that read took
        self.scraped = False  # nothing is read at batch ends for a registry nobody scrapes
        self.wanted = False  # a scrape served the snapshot since it was read: read it again at the batch end

    def collect(self):
        info = InfoMetricFamily(P + "build", "Build information.")
        info.add_metric([], {"version": __version__})
        yield info
        # Kept by the service, not in the pipeline: read now, never waiting.
        if self.checkpoint_time is not None:
            last = self.checkpoint_time()
            if last is not None:
                yield GaugeMetricFamily(
                    P + "checkpoint_age_seconds", "Seconds since the last checkpoint and commit.", value=time.time() - last
                )
        self.scraped = True
        # Until a first snapshot exists there is nothing else to serve: wait as long as it takes.
        if self.lock.acquire(timeout=self.wait) if self.snapshot is not None else self.lock.acquire():
            try:
                self.refresh()
            finally:
                self.lock.release()
        else:
            self.wanted = True
        built, families = self.snapshot
        yield GaugeMetricFamily(
            P + "metrics_snapshot_age_seconds",
            "Seconds since the pipeline's metrics served were read: 0 when read for this scrape, more when "
            "a poll batch held the pipeline and the state as at the end of the previous one was served.",
            value=max(0.0, time.monotonic() - built))
        yield from families

    def refresh(self) -> None:
        """Read the pipeline state's families into the snapshot. The caller holds the lock, so what is
        read is the state between two batches, never one half applied."""
        started = time.perf_counter()
        families = [*self._self_metrics(), *self._model_metrics(), *self._incident_metrics()]
        self.snapshot = (time.monotonic(), families)
        self.build_seconds = time.perf_counter() - started
        self.wanted = False

    def batch_done(self, seconds: float) -> None:
        """At the end of each batch, under the lock: read the state again when a scrape served an older
        snapshot meanwhile, or when this batch took longer than a scrape waits (the next one is then
        likely to as well, and a scrape during it is served this batch's state, not an older one's).
        Long batches pay for it only while it costs at most a twentieth of them."""
        if self.scraped and (self.wanted or seconds >= max(self.wait, 20 * self.build_seconds)):
            self.refresh()

    def _self_metrics(self):
        pipe = self.pipeline
        consumed = CounterMetricFamily(P + "records_consumed", "Records read from the input topics.", labels=["topic"])
        decoded = CounterMetricFamily(P + "records_decoded", "Records decoded into log lines or metric points.", labels=["topic"])
        dead = CounterMetricFamily(
            P + "records_dead_lettered", "Records sent to the dead-letter topic.", labels=["topic", "error_kind"]
        )
        for topic, n in pipe.consumed.items():
            consumed.add_metric([topic], n)
        for topic, n in pipe.decoded.items():
            decoded.add_metric([topic], n)
        for (topic, kind), n in pipe.dead_lettered.items():
            dead.add_metric([topic, kind], n)
        out_of_order = CounterMetricFamily(
            P + "metric_points_out_of_order",
            "Metric points not scored: at or before their series' newest point (repeats of it included).",
            labels=["topic"])
        for topic, n in pipe.out_of_order.items():
            out_of_order.add_metric([topic], n)
        yield from (consumed, decoded, dead, out_of_order)
        yield GaugeMetricFamily(P + "series_held", "Metric series with a model in memory.", value=pipe.series_held())
        yield GaugeMetricFamily(P + "log_entities_held", "Log entities and open sessions with state in memory.",
                                value=pipe.series_held("log"))
        yield GaugeMetricFamily(P + "templates_held", "Log templates known to the miners.", value=pipe.templates_held())
        yield CounterMetricFamily(
            P + "log_templates_evicted",
            "Log templates evicted at the template cap (miner.max_templates) to make room for new ones.",
            value=pipe.templates_evicted(),
        )
        yield CounterMetricFamily(
            P + "evictions", "Series, entities, sessions or alert keys evicted to bound memory.", value=pipe.evictions()
        )
        if self.lag is not None:
            lag = GaugeMetricFamily(P + "consumer_lag_records", "Records behind the partition's end.", labels=["topic", "partition"])
            for (topic, partition), n in self.lag().items():
                lag.add_metric([topic, str(partition)], n)
            yield lag

    def _model_metrics(self):
        labels = ["entity", "signal", "series"]
        score = GaugeMetricFamily(P + "anomaly_score", "Latest raw anomaly score (higher is more anomalous).", labels=labels)
        conf = GaugeMetricFamily(P + "anomaly_confidence_ratio", "Calibrated confidence that the latest value is anomalous.", labels=labels)
        observed = GaugeMetricFamily(P + "observed_value", "Last value of the metric series.", labels=labels)
        expected = GaugeMetricFamily(P + "expected_value", "Value the metric model expected.", labels=labels)
        lower = GaugeMetricFamily(P + "expected_lower", "Lower edge of the expected band.", labels=labels)
        upper = GaugeMetricFamily(P + "expected_upper", "Upper edge of the expected band.", labels=labels)
        exported = 0
        held = set()
        for st in self.pipeline.partitions.values():
            if st.kind == "log":
                held.update(st.model.signals.entities)
        self.table.keep_only(held)
        for (entity, signal, series), s in self.table.latest.items():
            score.add_metric([entity, signal, series], s.score)
            conf.add_metric([entity, signal, series], s.confidence)
            exported += 1
        # What is left of the budget goes to the series with the newest points across all partitions,
        # not partition by partition: a high-cardinality topic seen first must not hide the live series
        # of the others. Each partition is walked most recently seen first, so that order breaks ties;
        # when everything fits, nothing needs ordering. Stale series are left out first: their frozen last
        # values would be exported for good and count over budget. Staleness is judged in event time
        # against the series' own partition, so a replay or a lagging partition is not stale by the wall
        # clock, and one partition running ahead does not make another's series stale.
        live = []
        for st in self.pipeline.partitions.values():
            if st.kind == "metric":
                since = st.max_event_time - self.stale_after
                live.append([item for item in reversed(st.model.series.items()) if item[1].timestamp >= since])
        room, live_series = self.budget - exported, sum(map(len, live))
        chosen = chain.from_iterable(live)
        if live_series > room:
            chosen = heapq.nlargest(room, chosen, key=_last_point)
        over = max(0, live_series - room)
        for key, entry in chosen:
            lv = [entry.entity, entry.name, key]
            score.add_metric(lv, entry.score)
            conf.add_metric(lv, entry.confidence)
            observed.add_metric(lv, entry.value)
            band = entry.model.explain()
            if band:
                for fam, field in ((expected, "expected"), (lower, "lower"), (upper, "upper")):
                    if band.get(field) is not None:
                        fam.add_metric(lv, band[field])
        yield from (score, conf, observed, expected, lower, upper)
        firing = GaugeMetricFamily(P + "alert_firing", "1 while an alert fires for the entity and signal.", labels=labels)
        for (entity, signal, series), *_ in self.pipeline.alerting.firing():
            firing.add_metric([entity, signal, series], 1)
        yield firing
        yield GaugeMetricFamily(
            P + "model_series_over_budget", "Model series not exported because of the series budget.", value=over
        )
        yield CounterMetricFamily(
            P + "log_signal_updates_dropped",
            "Log signal values dropped from /metrics to make way for newer ones (series budget).", value=self.table.dropped
        )


    def _incident_metrics(self):
        tracker = self.pipeline.incidents
        # One series per open incident's entity: ids and evidence stay out of labels (unbounded).
        open_ = GaugeMetricFamily(P + "incident_open", "1 while an incident is open for the entity, by severity.",
                                  labels=["entity", "severity"])
        conf = GaugeMetricFamily(P + "incident_confidence_ratio", "Confidence of the entity's open incident.",
                                 labels=["entity"])
        signals = GaugeMetricFamily(P + "incident_signals", "Distinct anomalous signals in the entity's open incident.",
                                    labels=["entity"])
        for inc in tracker.open_incidents():
            open_.add_metric([inc.entity, inc.severity], 1)
            conf.add_metric([inc.entity], inc.confidence)
            signals.add_metric([inc.entity], len(inc.signals))
        yield from (open_, conf, signals)
        opened = CounterMetricFamily(P + "incidents_opened", "Incidents opened, by severity at opening.", labels=["severity"])
        for severity in ("warning", "critical"):
            opened.add_metric([severity], tracker.opened.get(severity, 0))
        yield opened
        yield CounterMetricFamily(P + "incidents_resolved", "Incidents resolved after their signals went quiet.",
                                  value=tracker.resolved)
        yield CounterMetricFamily(
            P + "incident_scores_below_floor",
            "Confident scores that did not open or join an incident because the change was too small.",
            value=tracker.below_floor,
        )


class PrometheusSink:
    """Keeps what the collector needs and times each batch."""

    def __init__(self, pipeline: "Pipeline", lock: threading.Lock, budget: int, registry: CollectorRegistry | None = None,
                 lag=None, checkpoint_time=None, stale_after: float = 7200.0, wait: float = SCRAPE_WAIT_SECONDS):
        self.registry = registry or CollectorRegistry()
        self.table = LogSignalTable(budget)
        self.collector = PipelineCollector(pipeline, lock, budget, self.table, lag, checkpoint_time, stale_after, wait)
        self.registry.register(self.collector)
        self.batch_seconds = Histogram(
            P + "batch_processing_seconds",
            "Time to decode, score and alert on one poll batch.",
            # Up to minutes: a batch of large multi-point records (a catch-up) takes tens of seconds.
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )

    def emit(self, result: "BatchResult", seconds: float) -> None:
        """After each batch, under the lock the batch was processed under."""
        self.table.update(result.scores)
        self.batch_seconds.observe(seconds)
        self.collector.batch_done(seconds)

    def refresh(self) -> None:
        """Read the pipeline state for scrapes now; the caller holds the lock."""
        self.collector.refresh()
