"""Hot reload of model specs and alerting settings: a changed file is validated, then applied to the
running pipeline.

The service calls :meth:`ModelReloader.check` once per loop (cheap: the files are stat'ed at most every
``interval`` seconds) and :meth:`ModelReloader.request` from its SIGHUP handler (the reload itself then
happens on the next ``check``, on the processing thread, never inside the signal handler, which could
otherwise wait on the lock its own thread holds).

A spec that does not load or does not build is rejected: the error is logged with its key path and the
model in use stays. A file that is rejected is not retried until it changes again.

What a new spec does to the state the pipeline already holds:

- new partitions and new series always start from the new spec;
- metric series: when the detector or calibrator changed, every held series gets a fresh model with
  the new parameters (it warms up again; learnt state of the old parameters would not fit the new
  ones); when only ``max_series`` changed, the models stay and the least recently seen series are
  evicted down to the new limit;
- logs: the template miner (templates, their ids and counts) is kept unless the miner parameters
  changed; window signals are rebuilt when the signal parameters changed, sessions when the session
  parameters changed; whatever did not change is kept as it is.

Partitions restored from a checkpoint written before a reload are brought to the current spec on the
next ``check``.

The pipeline file, when the service was started from one, is watched too; of it only the ``alerting``
and ``incidents`` sections apply while running (firing alerts and open incidents stay; metric series
whose drift settings changed restart their drift baselines). A change anywhere else is logged, once,
as needing a restart.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from detector.config import load_pipeline
from detector.errors import ConfigError
from detector.logs.model import LogModel
from detector.logs.params import MinerParams, SessionParams, SignalParams
from detector.series_model import SeriesModel
from detector.pipeline import load_checked
from detector.specs import LogModelSpec, MetricModelSpec

log = logging.getLogger(__name__)

# What a LogModel rebuilds when its signal or session parameters change; everything else it holds
# (the miner and the counters about mined lines) is carried over.
_SIGNAL_STATE = frozenset({"signal_params", "signals", "_cal_name", "_cal_params"})
_SESSION_STATE = frozenset({"session_params", "sessions", "session_detector", "session_calibrator",
                            "sessions_scored", "sessions_anomalous"})


class ModelReloader:
    def __init__(self, pipeline, lock, paths: dict[str, Path] | None = None, interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, pipeline_path: Path | None = None):
        self.pipeline = pipeline
        self.lock = lock
        models = pipeline.spec.models
        self.paths = {k: Path(v) for k, v in (paths or {"metric": models.metric, "log": models.log}).items()}
        self.pipeline_path = Path(pipeline_path) if pipeline_path is not None else None
        self.interval = interval
        self.clock = clock
        self._seen = self._mtimes()
        self._last_check = clock()
        self._requested = threading.Event()
        self.reloads = 0  # specs applied
        self.rejected = 0  # specs refused
        self.last_error: str | None = None
        # Sections of the pipeline file changed on disk but not applied (they need a restart), as last
        # read: each change is warned about once, not again on every later reload that finds it.
        self._awaiting_restart: dict[str, object] = {}

    # -- triggers ---------------------------------------------------------------------------------

    def request(self) -> None:
        """Ask for a reload on the next ``check`` (safe to call from a signal handler)."""
        self._requested.set()

    def check(self) -> bool:
        """Reload if asked to or if a spec file changed; True when a new spec was applied."""
        if self._requested.is_set():
            self._requested.clear()
            return self.reload()
        now = self.clock()
        if now - self._last_check < self.interval:
            return False
        self._last_check = now
        if self._mtimes() != self._seen:
            return self.reload()
        with self.lock:
            self._conform_all()
        return False

    def collect(self):
        """Prometheus collector protocol: what became of reloads, so a rejected spec is visible."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield CounterMetricFamily(
            "outage_detector_model_reloads",
            "Reloads applied (model specs, and the pipeline file's alerting and incident settings).",
            value=self.reloads,
        )
        yield CounterMetricFamily(
            "outage_detector_model_reload_failures", "Reloads rejected (what was in use kept).", value=self.rejected
        )
        yield GaugeMetricFamily(
            "outage_detector_model_reload_last_successful",
            "0 while the newest spec on disk was rejected, else 1.",
            value=0 if self.last_error else 1,
        )

    # -- the reload -------------------------------------------------------------------------------

    def reload(self) -> bool:
        """Load, validate and apply the spec files; on any error keep the models and settings in use."""
        self._seen = self._mtimes()
        try:
            specs = {kind: load_checked(path, kind) for kind, path in self.paths.items()}
            settings = load_pipeline(self.pipeline_path) if self.pipeline_path is not None else None
        except ConfigError as exc:
            self.rejected += 1
            self.last_error = str(exc)
            log.error("spec rejected, the models and settings in use stay: %s", exc)
            return False
        with self.lock:
            changed = self._apply(specs.get("metric"), specs.get("log"))
            if settings is not None and self._apply_settings(settings):
                changed.append(f"{self.pipeline_path} (alerting, incidents)")
        if changed:
            self.reloads += 1
            log.info("reloaded: %s", ", ".join(changed))
        elif self.last_error:
            # A rejected spec put back as it was (the usual fix): what is on disk is what runs again.
            log.info("the spec files on disk are valid again and match what is in use; nothing to reload")
        self.last_error = None
        return bool(changed)

    def _mtimes(self) -> dict[str, float | None]:
        files = {**self.paths, **({"pipeline": self.pipeline_path} if self.pipeline_path is not None else {})}
        return {kind: _mtime(p) for kind, p in files.items()}

    def _apply(self, metric: MetricModelSpec | None, logs: LogModelSpec | None) -> list[str]:
        changed = []
        p = self.pipeline
        if metric is not None and metric != p.metric_spec:
            p.metric_spec = metric
            changed.append(str(self.paths["metric"]))
        if logs is not None and logs != p.log_spec:
            p.log_spec = logs
            changed.append(str(self.paths["log"]))
        if changed:
            self._conform_all()
        return changed

    def _apply_settings(self, new) -> bool:
        """Apply the pipeline file's alerting and incident settings; True if they changed. Anything
        else in it (Kafka, inputs, sinks, checkpoints, model paths) is only read at start: say so."""
        p = self.pipeline
        old = p.spec
        later = {name: getattr(new, name) for name in type(old).model_fields
                 if name not in ("alerting", "incidents") and getattr(old, name) != getattr(new, name)}
        unwarned = [name for name, value in later.items() if self._awaiting_restart.get(name) != value]
        if unwarned:
            log.warning("%s: %s changed; that takes effect after a restart", self.pipeline_path, ", ".join(unwarned))
        self._awaiting_restart = later
        if new.alerting == old.alerting and new.incidents == old.incidents:
            return False
        p.use_settings(new.alerting, new.incidents)
        return True

    def conform(self, state) -> None:
        """Bring one partition's state (e.g. just restored from a checkpoint) to the current specs.

        The caller holds the lock, as the service's rebalance callback does.
        """
        p = self.pipeline
        if state.kind == "metric":
            _say_restarted(conform_metric(state.model, p.metric_spec), p.metric_spec)
        else:
            state.model = conform_log(state.model, p.log_spec)
        p.conform_settings(state)

    def _conform_all(self) -> None:
        """Bring every held partition to the pipeline's current specs (cheap when they already are)."""
        p = self.pipeline
        log_params = None
        restarted = 0
        for st in p.partitions.values():
            if st.kind == "metric":
                restarted += conform_metric(st.model, p.metric_spec)
            else:
                if log_params is None:
                    log_params = _log_params(p.log_spec)
                st.model = conform_log(st.model, p.log_spec, log_params)
        _say_restarted(restarted, p.metric_spec)


def _say_restarted(restarted: int, spec: MetricModelSpec) -> None:
    """Series that start new models are blind through their warm-up: an operator shipping a spec
    during an incident must hear that its alerts will resolve."""
    if restarted:
        warmup = getattr(SeriesModel.from_spec(spec).detector, "warmup", None)
        log.warning("the metric model's detector or calibrator changed: %d series start new models, which score "
                    "nothing%s; their alerts resolve meanwhile", restarted,
                    f" through their first {warmup} points" if warmup else " until they have learnt")


def conform_metric(model, spec: MetricModelSpec) -> int:
    """Bring a partition's metric model to ``spec``; the number of series whose model starts afresh
    (every one, when the detector or calibrator changed: learnt state is that of the old settings)."""
    old = model.spec
    if old == spec:
        return 0
    model.spec = spec
    restarted = 0
    if old.detector != spec.detector or old.calibrator != spec.calibrator:
        for entry in model.series.values():
            entry.model = SeriesModel.from_spec(spec)
        restarted = len(model.series)
    while len(model.series) > spec.max_series:
        model.series.popitem(last=False)
        model.evictions += 1
    return restarted


def _log_params(spec: LogModelSpec):
    sessions = SessionParams.from_dict(spec.sessions, "sessions") if spec.sessions is not None else None
    return MinerParams.from_dict(spec.miner, "miner"), SignalParams.from_dict(spec.signals, "signals"), sessions


def conform_log(model: LogModel, spec: LogModelSpec, params=None) -> LogModel:
    miner, signals, sessions = params or _log_params(spec)
    same_miner = model.miner_params == miner
    same_signals = model.signal_params == signals
    same_sessions = model.session_params == sessions
    if same_miner and same_signals and same_sessions:
        return model
    new = LogModel.from_spec(spec)
    if not same_miner:
        return new  # templates mined with other parameters would not match what the new miner makes
    rebuilt = (set() if same_signals else _SIGNAL_STATE) | (set() if same_sessions else _SESSION_STATE)
    for name, value in vars(model).items():
        if name not in rebuilt:
            setattr(new, name, value)
    return new


def install_sighup(reloader: ModelReloader) -> None:
    """SIGHUP asks ``reloader`` for a reload (main thread only, as every Python signal handler)."""
    signal.signal(signal.SIGHUP, lambda signum, frame: reloader.request())


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None  # a file being replaced may be briefly absent; it counts as a change when back
