"""Hot reload: a changed spec is applied to the running pipeline, a broken one is refused with its key
and the model in use stays, SIGHUP reloads, log templates survive a change of signal parameters, and
the pipeline file's alerting settings apply while running (other sections are logged as needing a
restart)."""

from __future__ import annotations

import logging
import os
import pickle
import random
import signal
import threading
import types

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


def test_a_changed_metric_spec_is_applied_without_restart(setup, caplog):
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
    # They start afresh, blind through their warm-up: the operator is told.
    assert ("3 series start new models, which score nothing through their first 20 points; their alerts "
            "resolve meanwhile") in caplog.text

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
    # A parameter the model cannot score with is refused too, not found out on the next point.
    for version, params in enumerate(({"buckets": 0}, {"alpha": "0.01"}), start=4):
        write(paths["metric"], {**metric, "detector": {"name": "robust_seasonal", "params": params}}, version)
        assert not reloader.check()
        assert f"{next(iter(params))} must be" in reloader.last_error
    assert not reloader.check() and reloader.rejected == 4  # not retried until the file changes again
    registry = CollectorRegistry()
    registry.register(reloader)
    assert registry.get_sample_value("outage_detector_model_reload_failures_total") == 4
    assert registry.get_sample_value("outage_detector_model_reload_last_successful") == 0

    later = metric_batch(400, 300)
    assert scores(pipeline.process(later)) == scores(untouched.process(later))

    write(paths["metric"], {**metric, "max_series": 2}, 6)
    assert reloader.check() and reloader.last_error is None
    assert registry.get_sample_value("outage_detector_model_reload_last_successful") == 1
    assert len(pipeline.partitions[("m", 0)].model.series) == 2  # evicted down to the new limit


def test_putting_back_the_spec_in_use_after_a_rejected_one_clears_the_failure(setup):
    # The usual fix of a bad edit is to restore the file: nothing changes, but the spec on disk is valid.
    spec, paths, metric, _ = setup
    reloader = ModelReloader(Pipeline.from_spec(spec), threading.Lock(), interval=0)
    registry = CollectorRegistry()
    registry.register(reloader)
    write(paths["metric"], {**metric, "max_series": -1}, 2)
    assert not reloader.check()
    assert registry.get_sample_value("outage_detector_model_reload_last_successful") == 0
    write(paths["metric"], metric, 3)
    assert not reloader.check()  # nothing to apply
    assert registry.get_sample_value("outage_detector_model_reload_last_successful") == 1
    assert reloader.last_error is None and reloader.reloads == 0


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


def test_a_sighup_while_run_starts_is_held_and_asks_for_a_reload_once_the_service_is_up(tmp_path, monkeypatch,
                                                                                       caplog):
    # A spec shipped to a replica just restarted: the signal lands while the service is being built.
    import detector.commands.run as run_command
    import detector.model_reload
    import detector.service
    from detector import cli

    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("inputs: [{topic: logs, kind: log, format: ecs}]\n")
    requests = []

    class Starting:
        def __init__(self, spec, pipeline_path=None):
            os.kill(os.getpid(), signal.SIGHUP)  # its default action would end the process here
            self.reloader = types.SimpleNamespace(request=lambda: requests.append("reload"))
            self.stop = lambda: None

        def run(self):
            requests.append("run")

    monkeypatch.setattr(detector.service, "Service", Starting)
    monkeypatch.setattr(detector.model_reload, "install_sighup", lambda reloader: None)
    monkeypatch.setattr(run_command, "install_stop_handlers", lambda stop: None)
    monkeypatch.setattr(cli, "EARLY_HANGUPS", [])
    caplog.set_level(logging.INFO, logger="detector")
    previous = signal.getsignal(signal.SIGHUP)
    try:
        assert cli.main(["run", "--pipeline", str(cfg)]) == 0
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert requests == ["reload", "run"]  # asked for once the service is built, before it runs
    assert "SIGHUP received while starting: reloading the specs" in caplog.text


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


def spike(offset: int, series: str = "s0") -> RawRecord:
    payload = orjson.dumps({"name": "latency", "labels": {"service": series}, "value": 1e6,
                            "timestamp": T0 + 10 * offset})
    return RawRecord("m", 0, offset, None, None, payload)


@pytest.fixture()
def pipeline_file(setup, tmp_path):
    """The same pipeline, written to a file the service would have been started from."""
    spec, paths, *_ = setup
    doc = {"inputs": [i.model_dump(mode="json") for i in spec.inputs],
           "models": {"metric": str(paths["metric"]), "log": str(paths["log"])},
           "alerting": {"fire_after": 3}, "incidents": {"min_duration_seconds": 300}}
    path = tmp_path / "pipeline.yaml"
    write(path, doc, 1)
    return path, doc


def test_changed_alerting_settings_in_the_pipeline_file_apply_without_restart(pipeline_file):
    path, doc = pipeline_file
    pipeline = Pipeline.from_spec(load_pipeline(path))
    unchanged = Pipeline.from_spec(load_pipeline(path))
    reloader = ModelReloader(pipeline, threading.Lock(), interval=0, pipeline_path=path)
    history = metric_batch(0, 600)
    pipeline.process(history)
    unchanged.process(history)
    checkpoint = pickle.dumps(pipeline.partitions[("m", 0)])
    models_before = {k: id(e.model) for k, e in pipeline.partitions[("m", 0)].model.series.items()}
    assert not reloader.check()

    write(path, {**doc, "alerting": {"fire_after": 1, "confidence_threshold": 0.9},
                 "incidents": {"min_duration_seconds": 60}}, 2)
    assert reloader.check()
    assert pipeline.alerting.settings.fire_after == 1 and pipeline.incidents.settings.min_duration_seconds == 60
    assert pipeline.incidents.alerting.confidence_threshold == 0.9
    assert pipeline.partitions[("m", 0)].model.evidence_threshold == 0.9  # the sustain bar follows it down
    # The learnt series models are kept: alerting settings do not touch what the models learnt.
    assert {k: id(e.model) for k, e in pipeline.partitions[("m", 0)].model.series.items()} == models_before

    # One anomalous point now fires at once; under the old settings it needs three in a row.
    fired = [t for t in pipeline.process([spike(600)]).transitions if t.state == "firing"]
    assert len(fired) == 1 and "s0" in fired[0].series
    assert not [t for t in unchanged.process([spike(600)]).transitions if t.state == "firing"]

    # A partition restored from a checkpoint written before the change gets the new settings too.
    state = pickle.loads(checkpoint)
    assert state.model.evidence_threshold == 0.95
    reloader.conform(state)
    assert state.model.evidence_threshold == 0.9


def test_incidents_opened_after_a_changed_runbook_url_carry_the_new_one(pipeline_file):
    path, doc = pipeline_file
    pipeline = Pipeline.from_spec(load_pipeline(path))
    reloader = ModelReloader(pipeline, threading.Lock(), interval=0, pipeline_path=path)
    pipeline.process(metric_batch(0, 600))
    write(path, {**doc, "alerting": {"fire_after": 1},
                 "incidents": {"min_duration_seconds": 60, "runbook_url": "https://runbooks.example/latency"}}, 2)
    assert reloader.check()
    events = [e for i in range(600, 620) for e in pipeline.process([spike(i)]).incidents]
    assert [e.kind for e in events][:1] == ["opened"]
    assert {e.incident.runbook_url for e in events} == {"https://runbooks.example/latency"}


def test_a_pipeline_change_outside_alerting_is_logged_as_needing_a_restart(pipeline_file, caplog):
    path, doc = pipeline_file
    pipeline = Pipeline.from_spec(load_pipeline(path))
    reloader = ModelReloader(pipeline, threading.Lock(), interval=0, pipeline_path=path)
    write(path, {**doc, "kafka": {"bootstrap_servers": "127.0.0.1:19092"}}, 2)
    with caplog.at_level(logging.WARNING, logger="detector.model_reload"):
        assert not reloader.check()
    assert "kafka changed; that takes effect after a restart" in caplog.text
    assert pipeline.spec.kafka.bootstrap_servers != "127.0.0.1:19092" and reloader.rejected == 0


def test_a_change_needing_a_restart_is_logged_once_not_at_every_later_reload(setup, pipeline_file, caplog):
    spec, paths, metric, _ = setup
    path, doc = pipeline_file
    pipeline = Pipeline.from_spec(load_pipeline(path))
    reloader = ModelReloader(pipeline, threading.Lock(), interval=0, pipeline_path=path)

    def warnings() -> list[str]:
        found = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        caplog.clear()
        return found

    caplog.set_level(logging.WARNING, logger="detector.model_reload")
    write(path, {**doc, "kafka": {"bootstrap_servers": "127.0.0.1:19092"}}, 2)
    reloader.check()
    assert warnings() == [f"{path}: kafka changed; that takes effect after a restart"]
    # Later reloads find the same change: SIGHUP, a changed model spec, a changed alerting section.
    reloader.request()
    reloader.check()
    write(paths["metric"], {**metric, "max_series": 7}, 2)
    assert reloader.check()
    write(path, {**doc, "kafka": {"bootstrap_servers": "127.0.0.1:19092"}, "alerting": {"fire_after": 1}}, 3)
    assert reloader.check()
    assert warnings() == []
    # A new change is logged, the one already logged is not again; a change put back and made again is.
    write(path, {**doc, "kafka": {"bootstrap_servers": "127.0.0.1:19092"}, "lateness_seconds": 5}, 4)
    reloader.check()
    assert warnings() == [f"{path}: lateness_seconds changed; that takes effect after a restart"]
    write(path, doc, 5)
    reloader.check()
    write(path, {**doc, "lateness_seconds": 5}, 6)
    reloader.check()
    assert warnings() == [f"{path}: lateness_seconds changed; that takes effect after a restart"]


def test_a_broken_pipeline_file_is_refused_and_the_settings_in_use_stay(pipeline_file, caplog):
    path, doc = pipeline_file
    pipeline = Pipeline.from_spec(load_pipeline(path))
    reloader = ModelReloader(pipeline, threading.Lock(), interval=0, pipeline_path=path)
    write(path, {**doc, "alerting": {"fire_after": 0}}, 2)
    with caplog.at_level(logging.ERROR, logger="detector.model_reload"):
        assert not reloader.check()
    assert "alerting.fire_after" in reloader.last_error and reloader.rejected == 1
    assert pipeline.alerting.settings.fire_after == 3
