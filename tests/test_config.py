"""Pipeline spec validation, environment overrides and the check-config command."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from detector.cli import main
from detector.config import load_pipeline
from detector.errors import ConfigError

REPO_PIPELINES = __import__("pathlib").Path(__file__).resolve().parents[1] / "pipelines"


def write(tmp_path, text: str):
    p = tmp_path / "pipeline.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_every_shipped_pipeline_loads_with_its_models():
    from detector.pipeline import load_models

    files = sorted(REPO_PIPELINES.glob("*.yaml"))
    assert files, "no pipeline specs shipped"
    for f in files:
        spec = load_pipeline(f)
        metric, log = load_models(spec)
        assert metric.kind == "metric" and log.kind == "log"


def test_environment_overrides_win_over_the_file(tmp_path, monkeypatch):
    p = write(tmp_path, """
        kafka: {bootstrap_servers: "127.0.0.1:1111", group_id: from-file}
        inputs: [{topic: logs, kind: log, format: ecs}]
    """)
    monkeypatch.setenv("OUTAGE_DETECTOR_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:2222")
    spec = load_pipeline(p)
    assert spec.kafka.bootstrap_servers == "127.0.0.1:2222"
    assert spec.kafka.group_id == "from-file"  # untouched keys keep the file's value


def test_check_config_says_which_keys_the_environment_set_over_the_file(tmp_path, monkeypatch, capsys):
    # A key the environment sets is dead in the file: one line names it and its variable, not its value.
    p = write(tmp_path, """
        inputs: [{topic: logs, kind: log, format: ecs}]
        checkpoint: {directory: /srv/state}
    """)
    monkeypatch.setenv("OUTAGE_DETECTOR_CHECKPOINT__DIRECTORY", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("OUTAGE_DETECTOR_KAFKA__SASL_PASSWORD", "hunter2")
    assert main(["check-config", str(p)]) == 0
    out, err = capsys.readouterr()
    assert f"directory: {tmp_path / 'elsewhere'}" in out
    assert err.strip() == (f"check-config: set from the environment, over {p}: checkpoint.directory "
                           "($OUTAGE_DETECTOR_CHECKPOINT__DIRECTORY), kafka.sasl_password ($OUTAGE_DETECTOR_KAFKA__SASL_PASSWORD)")
    monkeypatch.delenv("OUTAGE_DETECTOR_CHECKPOINT__DIRECTORY")
    monkeypatch.delenv("OUTAGE_DETECTOR_KAFKA__SASL_PASSWORD")
    assert main(["check-config", str(p)]) == 0
    assert capsys.readouterr().err == ""


def test_every_error_is_reported_with_its_key_path(tmp_path):
    p = write(tmp_path, """
        alerting: {fire_after: 0}
        inputs: [{topic: logs, kind: log, format: influx}]
        sinks: {prometheus: {port: 99999}}
    """)
    with pytest.raises(ConfigError) as err:
        load_pipeline(p)
    msg = str(err.value)
    assert "alerting.fire_after" in msg
    assert "inputs.0" in msg and "not a log format" in msg
    assert "sinks.prometheus.port" in msg


def test_a_threshold_lowered_below_the_sustain_bar_takes_the_bar_down_with_it(tmp_path):
    # As the shipped pipeline sets both: lowering the threshold alone must not make the file an error.
    both = load_pipeline(write(tmp_path, "alerting: {confidence_threshold: 0.9, sustain_confidence: 0.95}\n"))
    assert both.alerting.sustain == 0.9
    assert load_pipeline(write(tmp_path, "alerting: {confidence_threshold: 0.9}\n")).alerting.sustain == 0.9
    assert load_pipeline(write(tmp_path, "alerting: {sustain_confidence: 0.97}\n")).alerting.sustain == 0.97


def test_unknown_keys_are_rejected_not_ignored(tmp_path):
    p = write(tmp_path, "kafka: {bootstrap_server: typo}\n")
    with pytest.raises(ConfigError, match="kafka.bootstrap_server"):
        load_pipeline(p)


def test_check_config_masks_secrets(tmp_path, capsys):
    p = write(tmp_path, """
        kafka: {security_protocol: SASL_SSL, sasl_mechanism: PLAIN, sasl_username: svc, sasl_password: hunter2}
        inputs: [{topic: logs, kind: log, format: ecs}]
        sinks: {alertmanager: {url: "https://am:9093", username: pager, password: pager-s3cret}}
    """)
    assert main(["check-config", str(p)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "pager-s3cret" not in out
    assert "sasl_username: svc" in out and "username: pager" in out


@pytest.mark.parametrize("alertmanager, expected", [
    ("{url: 'alertmanager:9093'}", "sinks.alertmanager.url: Value error, 'alertmanager:9093' is not an http:// or "
                                   "https:// URL"),
    ("{url: 'http://am:9093', username: pager}", "sinks.alertmanager: Value error, basic auth needs both username "
                                                 "and password"),
    ("{url: 'https://am:9093', ca_file: /no/such/ca.pem}", "sinks.alertmanager.ca_file: Value error, "
                                                           "'/no/such/ca.pem' is not a file"),
    # user:password@ would be taken for the host name, and the secret shown wherever the URL is.
    ("{url: 'http://pager:s3cret@am:9093'}", "sinks.alertmanager.url: Value error, credentials in the URL are not "
                                             "used: give them as username and password"),
])
def test_check_config_refuses_an_alertmanager_push_that_could_never_succeed(tmp_path, capsys, alertmanager, expected):
    p = write(tmp_path, f"""
        inputs: [{{topic: logs, kind: log, format: ecs}}]
        sinks: {{alertmanager: {alertmanager}}}
    """)
    assert main(["check-config", str(p)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "s3cret" not in err


@pytest.mark.parametrize("setting, expected", [
    ("checkpoint: {interval_seconds: .inf}", "checkpoint.interval_seconds: Input should be a finite number"),
    ("lateness_seconds: .nan", "lateness_seconds: Input should be a finite number"),
    ("kafka: {bootstrap_servers: ''}", "kafka.bootstrap_servers: Value error, '' is not a comma-separated list of "
                                      "host:port"),
    ("kafka: {bootstrap_servers: 'kafka-1:9092,kafka-2'}", "is not a comma-separated list of host:port"),
    ("kafka: {security_protocol: SASL_SSL, sasl_mechanism: BOGUS}", "kafka.sasl_mechanism: Input should be 'PLAIN', "
                                                                    "'SCRAM-SHA-256' or 'SCRAM-SHA-512'"),
    ("kafka: {security_protocol: SASL_PLAINTEXT, sasl_mechanism: PLAIN}", "kafka: Value error, security_protocol "
     "SASL_PLAINTEXT needs sasl_mechanism, sasl_username and sasl_password"),
    ("kafka: {sasl_mechanism: PLAIN, sasl_username: u, sasl_password: p}", "sasl_mechanism PLAIN needs "
                                                                          "security_protocol SASL_PLAINTEXT or SASL_SSL"),
])
def test_check_config_refuses_settings_that_would_switch_the_service_off_in_silence(tmp_path, capsys, setting,
                                                                                    expected):
    p = write(tmp_path, f"""
        inputs: [{{topic: logs, kind: log, format: ecs}}]
        {setting}
    """)
    assert main(["check-config", str(p)]) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("directory, reason", [
    ("notadir", "'{dir}' is not a directory"),
    ("notadir/state", "'{dir}' cannot be a directory: '{file}' is a file"),
])
def test_check_config_refuses_a_checkpoint_directory_that_is_a_file(tmp_path, capsys, directory, reason):
    (tmp_path / "notadir").write_text("a file\n")
    path = tmp_path / directory
    p = write(tmp_path, f"""
        inputs: [{{topic: logs, kind: log, format: ecs}}]
        checkpoint: {{directory: '{path}'}}
    """)
    assert main(["check-config", str(p)]) == 2
    expected = reason.format(dir=path, file=tmp_path / "notadir")
    assert f"checkpoint.directory: Value error, {expected}" in capsys.readouterr().err
    # A directory that is not there yet is fine: the service makes it.
    p = write(tmp_path, f"""
        inputs: [{{topic: logs, kind: log, format: ecs}}]
        checkpoint: {{directory: '{tmp_path / "state" / "sub"}'}}
    """)
    assert main(["check-config", str(p)]) == 0


def test_check_config_on_a_bad_file_exits_2_without_traceback(tmp_path, capsys):
    p = write(tmp_path, "inputs: [{topic: logs, kind: nonsense, format: ecs}]\n")
    assert main(["check-config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "inputs.0.kind" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("inputs", ["", "inputs: []\n"])
def test_check_config_refuses_a_pipeline_the_service_would_refuse_for_having_no_inputs(tmp_path, capsys, inputs):
    p = write(tmp_path, "name: empty\n" + inputs)
    assert main(["check-config", str(p)]) == 2
    assert "pipeline 'empty' has no inputs" in capsys.readouterr().err


@pytest.mark.parametrize("detector, message", [
    ({"name": "robust_seasonal", "params": {"buckets": 0}}, "buckets must be a whole number >= 1, got 0"),
    ({"name": "robust_seasonal", "params": {"alhpa": 0.01}}, "unexpected keyword argument 'alhpa'"),
    ({"name": "nope", "params": {}}, "unknown detector 'nope'"),
    # Out of range, these never fired, refitted on every point or failed hundreds of points into traffic.
    ({"name": "half_space_trees", "params": {"n_trees": -3}}, "n_trees must be a whole number >= 1, got -3"),
    ({"name": "half_space_trees", "params": {"height": 0}}, "height must be a whole number in [1, 16], got 0"),
    ({"name": "half_space_trees", "params": {"window_size": 0}}, "window_size must be a whole number >= 1, got 0"),
    ({"name": "half_space_trees", "params": {"seed": 1.5}}, "seed must be a whole number, got 1.5"),
    ({"name": "half_space_trees", "params": {"features": "value"}}, "features must be a non-empty list of keys"),
    ({"name": "isolation_forest", "params": {"refit_every": 0}}, "refit_every must be a whole number >= 1, got 0"),
    ({"name": "isolation_forest", "params": {"buffer_size": 2}}, "buffer_size must be a whole number >= 3, got 2"),
    ({"name": "isolation_forest", "params": {"n_estimators": 0}}, "n_estimators must be a whole number >= 1, got 0"),
    ({"name": "isolation_forest", "params": {"seed": -1}}, "seed must be a whole number in [0, 4294967295], got -1"),
    ({"name": "isolation_forest", "params": {"features": []}}, "features must be a non-empty list of keys, got []"),
])
def test_check_config_builds_the_models_and_names_what_they_cannot_run_with(tmp_path, capsys, detector, message):
    import yaml

    from detector.specs import MODELS_DIR

    metric = yaml.safe_load((MODELS_DIR / "metric-default.yaml").read_text())
    (tmp_path / "metric.yaml").write_text(yaml.safe_dump({**metric, "detector": detector}))
    p = write(tmp_path, f"""
        inputs: [{{topic: m, kind: metric, format: metric_json}}]
        models: {{metric: metric.yaml, log: {MODELS_DIR / "log-default.yaml"}}}
    """)
    assert main(["check-config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "metric.yaml" in err and message in err and "Traceback" not in err


@pytest.mark.parametrize("topic", ["", " ", "app logs", "..", pytest.param("x" * 250, id="250 characters")])
def test_check_config_refuses_a_topic_kafka_would_refuse_naming_its_key(tmp_path, capsys, topic):
    p = write(tmp_path, f"""
        inputs: [{{topic: logs, kind: log, format: ecs}}, {{topic: "{topic}", kind: metric, format: influx}}]
    """)
    assert main(["check-config", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"inputs.1.topic: Value error, {topic!r} is not a Kafka topic name" in err and "Traceback" not in err


def test_check_config_refuses_an_empty_dead_letter_topic_and_takes_an_empty_alerts_topic_as_off(tmp_path, capsys):
    p = write(tmp_path, """
        kafka: {dead_letter_topic: ""}
        inputs: [{topic: logs, kind: log, format: ecs}]
    """)
    assert main(["check-config", str(p)]) == 2
    assert "kafka.dead_letter_topic: Value error, '' is not a Kafka topic name" in capsys.readouterr().err
    p = write(tmp_path, """
        inputs: [{topic: logs, kind: log, format: ecs}]
        sinks: {alerts_topic: ""}
    """)
    assert load_pipeline(p).sinks.alerts_topic is None


@pytest.mark.parametrize("key, section", [("dead_letter_topic", "kafka"), ("alerts_topic", "sinks")])
def test_check_config_refuses_a_topic_the_service_writes_to_as_an_input(tmp_path, capsys, key, section):
    # Read back, a dead letter fails again and is dead-lettered again, without end.
    p = write(tmp_path, f"""
        inputs: [{{topic: logs, kind: log, format: ecs}}, {{topic: metrics, kind: metric, format: metric_json}}]
        {section}: {{{key}: metrics}}
    """)
    assert main(["check-config", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{section}.{key}: 'metrics' is also the topic of inputs.1" in err and "Traceback" not in err


def test_check_config_refuses_incident_events_on_the_dead_letter_topic(tmp_path, capsys):
    p = write(tmp_path, """
        inputs: [{topic: logs, kind: log, format: ecs}]
        kafka: {dead_letter_topic: od-out}
        sinks: {alerts_topic: od-out}
    """)
    assert main(["check-config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "sinks.alerts_topic: 'od-out' is also kafka.dead_letter_topic" in err and "Traceback" not in err


def test_an_output_topic_set_by_the_environment_to_an_input_names_the_variable(monkeypatch):
    monkeypatch.setenv("OUTAGE_DETECTOR_KAFKA__DEAD_LETTER_TOPIC", "logs")
    with pytest.raises(ConfigError, match=r"kafka\.dead_letter_topic: 'logs' is also the topic of inputs\.0: .*"
                                          r"\(set by \$OUTAGE_DETECTOR_KAFKA__DEAD_LETTER_TOPIC\)"):
        load_pipeline(REPO_PIPELINES / "default.yaml")


def test_check_config_on_invalid_yaml_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [unclosed\n")
    assert main(["check-config", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["check-config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_config_shows_the_models_with_every_default_they_run_with(tmp_path, capsys):
    p = write(tmp_path, """
        inputs: [{topic: logs, kind: log, format: ecs}]
    """)
    assert main(["check-config", str(p)]) == 0
    models = yaml.safe_load(capsys.readouterr().out)["resolved_models"]
    # The shipped specs list no parameter: what runs is each constructor's default.
    assert models["metric"]["detector"]["params"]["warmup"] == 50
    assert models["metric"]["calibrator"]["params"]["halflife"] == 2000.0
    assert models["log"]["miner"]["cache_size"] == 100_000
    assert models["log"]["signals"]["min_drop_rate"] == 3.0


@pytest.mark.parametrize("kind", ["metric", "log"])
def test_check_config_checks_a_model_spec_on_its_own_and_says_so(capsys, kind):
    spec = REPO_PIPELINES.parent / "models" / f"{kind}-default.yaml"
    assert main(["check-config", str(spec)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"kind: {kind}\n")  # the spec as the service reads it
    assert out.err == (f"check-config: {spec} is a {kind} model spec and is valid; a pipeline spec runs it when its "
                       f"models.{kind} names this file\n")


def test_check_config_on_a_model_spec_the_service_could_not_run_names_the_problem_once(tmp_path, capsys):
    spec = tmp_path / "metric-tuned.yaml"
    spec.write_text("kind: metric\ndetector: {name: robust_seasonal, params: {buckets: 0}}\n")
    assert main(["check-config", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err == (f"outage-detector: error: {spec}: detector 'robust_seasonal': buckets must be a whole number >= 1, "
                   "got 0\n")


@pytest.mark.parametrize("text, expected", [
    ("kind: metrics\ndetector: {name: robust_seasonal}\n", "a model spec needs kind: metric or kind: log (not kind: "
                                                           "'metrics')"),
    ("detector: {name: robust_seasonal}\n", "a model spec needs kind: metric or kind: log (it has no kind)"),
    ("", "the file is empty: nothing to check"),  # a spec truncated by a failed copy
])
def test_check_config_on_a_model_spec_without_a_known_kind_says_what_is_wrong(tmp_path, capsys, text, expected):
    spec = tmp_path / "metric-tuned.yaml"
    spec.write_text(text)
    assert main(["check-config", str(spec)]) == 2
    assert capsys.readouterr().err == f"outage-detector: error: {spec}: {expected}\n"


def test_an_unreachable_broker_is_a_clear_error_not_a_traceback(tmp_path, capsys, monkeypatch):
    from kafka.errors import KafkaTimeoutError

    import detector.service

    def unreachable(*args, **kwargs):
        raise KafkaTimeoutError("Unable to bootstrap from ['127.0.0.1:1']")

    monkeypatch.setattr(detector.service, "DeadLetterProducer", unreachable)
    monkeypatch.setattr("signal.signal", lambda *args: None)  # keep pytest's own handlers
    p = write(tmp_path, f"""
        kafka: {{bootstrap_servers: "127.0.0.1:1"}}
        inputs: [{{topic: logs, kind: log, format: ecs}}]
        sinks: {{prometheus: {{port: 0}}}}
        checkpoint: {{directory: "{tmp_path / 'state'}"}}
    """)
    assert main(["run", "--pipeline", str(p)]) == 2
    err = capsys.readouterr().err
    assert "cannot reach Kafka at 127.0.0.1:1" in err and "kafka.bootstrap_servers" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", ["OUTAGE_DETECTOR_SINK__PROMETHEUS__PORT", "OUTAGE_DETECTOR_KAFKA_BOOTSTRAP_SERVERS"])
def test_a_mistyped_environment_override_is_an_error_not_ignored(monkeypatch, name):
    monkeypatch.setenv(name, "9200")
    with pytest.raises(ConfigError, match=rf"\${name}: .* is not a section of the pipeline spec"):
        load_pipeline(REPO_PIPELINES / "default.yaml")


def test_a_bad_environment_value_is_reported_against_its_variable(monkeypatch):
    monkeypatch.setenv("OUTAGE_DETECTOR_CHECKPOINT__INTERVAL_SECONDS", "ten")
    with pytest.raises(ConfigError) as err:
        load_pipeline(REPO_PIPELINES / "default.yaml")
    assert "checkpoint.interval_seconds" in str(err.value)
    assert "set by $OUTAGE_DETECTOR_CHECKPOINT__INTERVAL_SECONDS" in str(err.value)


def test_a_list_is_set_from_the_environment_whole_and_an_item_set_by_index_is_named(monkeypatch):
    monkeypatch.setenv("OUTAGE_DETECTOR_INPUTS", '[{"topic": "app-logs", "kind": "log", "format": "ecs"}]')
    assert [i.topic for i in load_pipeline(REPO_PIPELINES / "default.yaml").inputs] == ["app-logs"]
    monkeypatch.delenv("OUTAGE_DETECTOR_INPUTS")
    monkeypatch.setenv("OUTAGE_DETECTOR_INPUTS__0__FORMAT", "plain")
    with pytest.raises(ConfigError, match=r"inputs: .*\(set by \$OUTAGE_DETECTOR_INPUTS__0__FORMAT\)"):
        load_pipeline(REPO_PIPELINES / "default.yaml")


@pytest.mark.parametrize("name, value, key", [
    ("OUTAGE_DETECTOR_INPUTS", '[{"topic": "logs"', "inputs"),
    ("OUTAGE_DETECTOR_KAFKA", "notjson", "kafka"),
    ("OUTAGE_DETECTOR_INCIDENTS__DRIFT_PARAMS", "{short_seconds: 60}", "incidents.drift_params"),
])
@pytest.mark.parametrize("command", ["check-config", "run", "replay"])
def test_a_value_that_is_not_json_where_json_is_expected_names_its_key_and_variable(
        monkeypatch, tmp_path, capsys, name, value, key, command):
    monkeypatch.setenv(name, value)
    pipeline = str(REPO_PIPELINES / "default.yaml")
    argv = {"check-config": ["check-config", pipeline],
            "run": ["run", "--pipeline", pipeline],
            "replay": ["replay", "--pipeline", pipeline, "--input", str(tmp_path / "in.csv"),
                       "--output", str(tmp_path / "out.parquet")]}[command]
    (tmp_path / "in.csv").write_text("timestamp,name,value\n1700000000,x,1\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"  {key}: not valid JSON: " in err and f"(set by ${name})" in err and "Traceback" not in err


def test_a_bad_file_value_names_no_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("OUTAGE_DETECTOR_KAFKA__CLIENT_ID", "from-env")
    p = write(tmp_path, "checkpoint: {interval_seconds: ten}")
    with pytest.raises(ConfigError) as err:
        load_pipeline(p)
    assert "checkpoint.interval_seconds" in str(err.value) and "set by" not in str(err.value)


def test_the_variables_that_are_not_overrides_are_left_alone(monkeypatch):
    monkeypatch.setenv("OUTAGE_DETECTOR_PIPELINE", str(REPO_PIPELINES / "default.yaml"))
    monkeypatch.setenv("OUTAGE_DETECTOR_BROKER_BIN", "/nonexistent/tansu")
    monkeypatch.setenv("OUTAGE_DETECTOR_KAFKA__CLIENT_ID", "from-env")
    assert load_pipeline(REPO_PIPELINES / "default.yaml").kafka.client_id == "from-env"


def test_keys_a_command_pins_win_over_the_environment_and_the_rest_of_it_stays(monkeypatch, tmp_path):
    monkeypatch.setenv("OUTAGE_DETECTOR_SINKS__PROMETHEUS__PORT", "9200")
    monkeypatch.setenv("OUTAGE_DETECTOR_CHECKPOINT__DIRECTORY", "/var/lib/outage-detector")
    monkeypatch.setenv("OUTAGE_DETECTOR_KAFKA__CLIENT_ID", "from-env")
    spec = load_pipeline(None).pinned(sinks={"prometheus": {"port": 0}}, checkpoint={"directory": str(tmp_path)},
                                      kafka={"bootstrap_servers": "127.0.0.1:19092"})
    assert spec.sinks.prometheus.port == 0 and spec.checkpoint.directory == tmp_path
    assert spec.kafka.bootstrap_servers == "127.0.0.1:19092" and spec.kafka.client_id == "from-env"
    with pytest.raises(ConfigError, match=r"sinks.*\n  prometheus\.port"):
        spec.pinned(sinks={"prometheus": {"port": "not-a-port"}})


def test_inputs_a_command_pins_replace_those_of_the_environment(monkeypatch):
    monkeypatch.setenv("OUTAGE_DETECTOR_INPUTS", '[{"topic": "logs", "kind": "log", "format": "ecs"}]')
    spec = load_pipeline(None).pinned(inputs=[{"topic": "demo-logs", "kind": "log", "format": "ecs"}])
    assert [i.topic for i in spec.inputs] == ["demo-logs"]
    with pytest.raises(ConfigError, match=r"command line, inputs.*\n  0\.kind"):
        spec.pinned(inputs=[{"topic": "x", "kind": "trace", "format": "ecs"}])


def test_a_model_path_from_the_environment_is_relative_to_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OUTAGE_DETECTOR_MODELS__METRIC", "mine/metric.yaml")
    spec = load_pipeline(REPO_PIPELINES / "default.yaml")
    assert spec.models.metric == tmp_path / "mine" / "metric.yaml"
    assert spec.models.log.is_relative_to(REPO_PIPELINES.parent)  # still the file's own


def test_an_input_timezone_must_be_an_iana_zone_name(tmp_path, capsys):
    ok = write(tmp_path, "inputs: [{topic: logs, kind: log, format: plain, timezone: Europe/Berlin}]\n")
    assert load_pipeline(ok).inputs[0].timezone == "Europe/Berlin"
    bad = write(tmp_path, "inputs: [{topic: logs, kind: log, format: plain, timezone: CEST}]\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "inputs.0.timezone" in err and "'CEST' is not an IANA time zone name" in err and "Traceback" not in err
