"""Hot reload: a changed spec is applied to the running pipeline, a broken one is refused with its key
and the model in use stays, SIGHUP reloads, and log templates survive a change of signal parameters."""

from __future__ import annotations

import logging
import os
import pickle
import random
import signal
import threading

import orjson
import pytest
import yaml
from prometheus_client import CollectorRegistry

from detector.config import load_pipeline
from detector.model_reload import ModelReloader, install_sighup
from detector.pipeline import Pipeline
from detector.records import RawRecord
from detector.specs import MODELS_DIR

T0 = 1_700_000_000.0


@pytest.fixture()
def setup(tmp_path):
    metric = yaml.safe_load((MODELS_DIR / "metric-default.yaml").read_text())
    logs = yaml.safe_load((MODELS_DIR / "log-default.yaml").read_text())
    paths = {"metric": tmp_path / "metric.yaml", "log": tmp_path / "log.yaml"}
    write(paths["metric"], metric, 1)
    write(paths["log"], logs, 1)
    spec = load_pipeline(None, inputs=[{"topic": "m", "kind": "metric", "format": "metric_json"},
                                       {"topic": "l", "kind": "log", "format": "json"}],
                         models={"metric": str(paths["metric"]), "log": str(paths["log"])})
    return spec, paths, metric, logs


def write(path, doc, version: int) -> None:
    path.write_text(yaml.safe_dump(doc))
    # Distinct modification times whatever the filesystem's resolution.
    os.utime(path, ns=(version * 10**9, version * 10**9))


def metric_batch(start: int, n: int, partition: int = 0) -> list[RawRecord]:
    rng = random.Random(start)
    out = []
    for i in range(start, start + n):
        value = rng.gauss(100.0, 5.0)
        payload = orjson.dumps({"name": "latency", "labels": {"service": f"s{i % 3}"}, "value": value, "timestamp": T0 + 10 * i})
        out.append(RawRecord("m", partition, i, None, None, payload))
    return out


def log_batch(start: int, n: int) -> list[RawRecord]:
    out = []
    for i in range(start, start + n):
        payload = orjson.dumps({"message": f"user {i % 17} logged in from 10.0.0.{i % 9}", "timestamp": T0 + 5 * i,
                                "service": "auth"})
        out.append(RawRecord("l", 0, i, None, None, payload))
    return out


def scores(result) -> list[tuple]:
    return [(s.timestamp, s.series, s.score, s.confidence) for s in result.scores]


def test_a_changed_metric_spec_is_applied_without_restart(setup):
    spec, paths, metric, _ = setup
    pipeline = Pipeline.from_spec(spec)
    reloader = ModelReloader(pipeline, threading.Lock(), interval=0)
    pipeline.process(metric_batch(0, 600))
    assert not reloader.check()  # nothing changed

    metric["detector"]["params"] = {"warmup": 20, "refractory": 10}
    write(paths["metric"], metric, 2)
    assert reloader.check()
    assert pipeline.metric_spec.detector.params == {"warmup": 20, "refractory": 10}
    held = pipeline.partitions[("m", 0)].model.series
    assert len(held) == 3 and all(e.model.detector.warmup == 20 for e in held.values())

    # Held series now score exactly as series that started under the new spec, and so do new partitions.
    fresh = Pipeline.from_spec(spec)
    fresh.metric_spec = pipeline.metric_spec
    after = metric_batch(600, 300)
    assert scores(pipeline.process(after)) == scores(fresh.process(after))
    assert pipeline.state("m", 5).model.spec.detector.params["warmup"] == 20


def test_a_broken_spec_is_refused_with_its_key_and_the_model_in_use_stays(setup, caplog):
    spec, paths, metric, _ = setup
    pipeline = Pipeline.from_spec(spec)
    untouched = Pipeline.from_spec(spec)
    reloader = ModelReloader(pipeline, threading.Lock(), interval=0)
    first = metric_batch(0, 400)
    pipeline.process(first)
    untouched.process(first)

    broken = {**metric, "max_series": -1}
    write(paths["metric"], broken, 2)
    with caplog.at_level(logging.ERROR, logger="detector.model_reload"):
        assert not reloader.check()
    assert "max_series" in caplog.text and reloader.rejected == 1
    unknown = {**metric, "detector": {"name": "no_such_detector", "params": {}}}
    write(paths["metric"], unknown, 3)
    assert not reloader.check()
    assert "no_such_detector" in reloader.last_error
    assert not reloader.check() and reloader.rejected == 2  # not retried until the file changes again
    registry = CollectorRegistry()
    registry.register(reloader)
    assert registry.get_sample_value("outage_detector_model_reload_failures_total") == 2
    assert registry.get_sample_value("outage_detector_model_reload_last_successful") == 0

    later = metric_batch(400, 300)
    assert scores(pipeline.process(later)) == scores(untouched.process(later))

    write(paths["metric"], {**metric, "max_series": 2}, 4)
    assert reloader.check() and reloader.last_error is None
    assert registry.get_sample_value("outage_detector_model_reload_last_successful") == 1
    assert len(pipeline.partitions[("m", 0)].model.series) == 2  # evicted down to the new limit


def test_sighup_reloads_even_when_the_file_time_did_not_change(setup):
    spec, paths, metric, _ = setup
    pipeline = Pipeline.from_spec(spec)
    reloader = ModelReloader(pipeline, threading.Lock(), interval=3600)
    write(paths["metric"], {**metric, "description": "edited in place"}, 1)  # same mtime as before
    assert not reloader.check()
    previous = signal.getsignal(signal.SIGHUP)
    try:
        install_sighup(reloader)
        os.kill(os.getpid(), signal.SIGHUP)
        assert reloader.check()
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert pipeline.metric_spec.description == "edited in place"


def test_log_templates_survive_a_change_of_signal_parameters_but_not_of_the_miner(setup):
    spec, paths, _, logs = setup
    pipeline = Pipeline.from_spec(spec)
    reloader = ModelReloader(pipeline, threading.Lock(), interval=0)
    pipeline.process(log_batch(0, 500))
    before = pipeline.partitions[("l", 0)].model.templates()
    assert before

    write(paths["log"], {**logs, "signals": {**logs["signals"], "window_seconds": 120}}, 2)
    assert reloader.check()
    model = pipeline.partitions[("l", 0)].model
    assert model.signal_params.window_seconds == 120
    assert model.templates() == before and model.lines == 500

    write(paths["log"], {**logs, "miner": {**logs["miner"], "max_differing": 0.2}}, 3)
    assert reloader.check()
    assert pipeline.partitions[("l", 0)].model.templates() == []


def test_a_partition_restored_from_an_older_checkpoint_is_brought_to_the_current_spec(setup):
    spec, paths, metric, _ = setup
    pipeline = Pipeline.from_spec(spec)
    reloader = ModelReloader(pipeline, threading.Lock(), interval=0)
    pipeline.process(metric_batch(0, 200))
    checkpoint = pickle.dumps(pipeline.partitions[("m", 0)])

    write(paths["metric"], {**metric, "detector": {"name": "robust_seasonal", "params": {"warmup": 7}}}, 2)
    assert reloader.check()
    pipeline.partitions[("m", 0)] = pickle.loads(checkpoint)  # as a rebalance would restore it
    reloader.check()
    restored = pipeline.partitions[("m", 0)].model
    assert restored.spec.detector.params == {"warmup": 7}
    assert all(e.model.detector.warmup == 7 for e in restored.series.values())

    # The rebalance callback can also conform a restored state at once, before any record reaches it.
    state = pickle.loads(checkpoint)
    reloader.conform(state)
    assert state.model.spec.detector.params == {"warmup": 7}
