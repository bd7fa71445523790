"""Drift scores for every metric series, beside the metric model's point scores.

One drift detector (``trend_drift`` by default) per series, held in LRU order with a bound, fed
every point of a metric partition. It yields a ``metric_drift`` score only while a series is near
or past drifting (and once more when it stops), so the alerting layers see the runs begin and end
without a second score for every point. It also knows which series are settling after a restart.

A restart is a gap in a series' scrapes, or, for a restart quicker than a scrape interval, a change of
the process's ``process_start_time_seconds`` (read for this only: it gets no drift detector) or a
reset of one of its counters (a ``*_total`` series falling to under a tenth of its last value): every
series of that process (same entity and ``instance`` or ``pod`` label) then restarts too, as its
memory, caches and pools start empty again.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from detector.detectors.registry import build, get
from detector.errors import ConfigError
from detector.records import MetricPoint, Score

SIGNAL = "metric_drift"
EMIT_Z = 3.0  # below this (confidence 0.95) a series is plainly not drifting, and nothing is emitted
PROCESS_LABELS = ("instance", "pod")  # the label that names one process (a scrape target, a pod)
START_TIME = "process_start_time_seconds"  # read as a restart cue only: a timestamp, not a behaviour
COUNTER_SUFFIX = "_total"  # a cumulative counter, by the Prometheus / OpenMetrics naming convention
# A counter that falls below this share of its last value was reset. A counter starts again from 0;
# demanding a deep fall keeps a gauge misnamed ``*_total`` that merely dips from passing for one.
RESET = 0.1


class DriftMonitor:
    def __init__(self, detector: str = "trend_drift", params: dict | None = None, max_series: int = 100_000):
        self.detector = detector
        self.params = dict(params or {})
        self.max_series = max_series
        # key -> [detector, emitting, its one-step score-and-learn ``update(t, v) -> z`` if it has one,
        #         its process (or None), its last value if it is a counter (else None)]
        self.series: OrderedDict[str, list] = OrderedDict()
        self.processes: dict[tuple[str, str], set[str]] = {}  # process -> the keys of its series
        self.start_times: dict[tuple[str, str], float] = {}  # process -> its last start time
        self.evictions = 0
        # Fail at load time, not on the first point, naming the pipeline keys these come from.
        try:
            get(detector)
        except ConfigError as exc:
            raise ConfigError(f"incidents.drift_detector: {exc}") from None
        try:
            build(detector, self.params)
        except ConfigError as exc:
            raise ConfigError(f"incidents.drift_params: {exc}") from None

    def __setstate__(self, state: dict) -> None:
        # A monitor saved before restarts were told across series: its series join their process
        # on their next point.
        self.__dict__.update(state)
        self.__dict__.setdefault("processes", {})
        self.__dict__.setdefault("start_times", {})

    def process(self, point: MetricPoint, key: str | None = None) -> Score | None:
        """The drift score to pass on, or None. ``key`` is the point's series when the caller has it.
        A ``process_start_time_seconds`` point only tells whether its process restarted."""
        if point.name == START_TIME:
            self._start_time(point)
            return None
        if key is None:
            key = point.series
        entry = self.series.get(key)
        if entry is None or len(entry) < 5:
            if entry is None:
                if len(self.series) >= self.max_series:
                    self._forget(*self.series.popitem(last=False))
                    self.evictions += 1
                det = build(self.detector, self.params)
                entry = self.series[key] = [det, False, getattr(det, "update", None)]
            entry[3:] = [_process(point), None]
            if entry[3] is not None:
                self.processes.setdefault(entry[3], set()).add(key)
        else:
            self.series.move_to_end(key)
        det = entry[0]
        t = point.timestamp
        if entry[3] is not None and point.name.endswith(COUNTER_SUFFIX):
            last, entry[4] = entry[4], point.value
            if last is not None and point.value < RESET * last:
                self._restarted(entry[3], t)
        update = entry[2]
        if update is not None:
            z = update(t, point.value)
        else:  # any detector of the common protocol: its score in [0, 1) read as a tail probability
            x = {"value": point.value, "timestamp": t}
            z = -math.log(max(1.0 - det.score_one(x), 1e-300))
            det.learn_one(x)
        near = abs(z) >= EMIT_Z
        if not near and not entry[1]:
            return None
        entry[1] = near
        confidence = 1.0 - math.exp(-abs(z))
        evidence = {"series": key, **(det.explain() or {})}
        return Score(t, point.entity, SIGNAL, abs(z), confidence, evidence, key)

    def _start_time(self, point: MetricPoint) -> None:
        process = _process(point)
        if process not in self.processes:
            return  # no series of this process held: nothing to restart
        last = self.start_times.get(process)
        self.start_times[process] = point.value
        if last is not None and point.value != last:
            self._restarted(process, point.timestamp)

    def _restarted(self, process: tuple[str, str], t: float) -> None:
        for key in self.processes.get(process, ()):
            restarted_at = getattr(self.series[key][0], "restarted_at", None)
            if restarted_at is not None:
                restarted_at(t)

    def _forget(self, key: str, entry: list) -> None:
        keys = self.processes.get(entry[3]) if len(entry) > 3 else None
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.processes[entry[3]]
                self.start_times.pop(entry[3], None)

    def level_before_restart(self, key: str, t: float) -> float | None:
        """While the series ``key`` settles after a restart (a gap in its scrapes, or a restart its
        process told of), the baseline it had before; None when it is not settling (or its detector
        knows nothing of restarts)."""
        entry = self.series.get(key)
        if entry is None or not hasattr(entry[0], "settling") or not entry[0].settling(t):
            return None
        return (entry[0].explain() or {}).get("baseline")

    def __len__(self) -> int:
        return len(self.series)


def _process(point: MetricPoint) -> tuple[str, str] | None:
    """The process a series belongs to: its entity and the label naming the process, if it has one."""
    labels = dict(point.labels)
    for name in PROCESS_LABELS:
        value = labels.get(name)
        if value:
            return point.entity, value
    return None
