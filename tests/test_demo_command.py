"""``demo`` cleans up after itself: the broker it started and its state folder do not outlive it,
however it ends."""

from __future__ import annotations

from detector.broker import EmbeddedBroker
from detector.cli import main


def test_a_demo_that_fails_early_stops_its_broker_and_removes_its_state(tmp_path, monkeypatch, capsys):
    started = []
    start = EmbeddedBroker.start

    def record(self):
        broker = start(self)
        started.append(broker.process)
        return broker

    monkeypatch.setattr(EmbeddedBroker, "start", record)
    state = tmp_path / "state"
    monkeypatch.setattr("tempfile.mkdtemp", lambda prefix="": (state.mkdir(), str(state))[1])
    monkeypatch.setenv("OUTAGE_DETECTOR_SINKS__PROMETHEUS__PORT", "not-a-port")  # fails after the broker is up
    assert main(["demo", "--port", "0"]) == 2
    assert "sinks.prometheus.port" in capsys.readouterr().err
    assert len(started) == 1 and started[0].poll() is not None  # the broker process has ended
    assert not state.exists()


def test_hours_too_short_for_the_scenario_are_refused_before_anything_starts(monkeypatch, capsys):
    started = []
    monkeypatch.setattr(EmbeddedBroker, "start", lambda self: started.append(self))
    assert main(["demo", "--scenario", "memory_leak_oom", "--hours", "2"]) == 2
    assert "needs at least" in capsys.readouterr().err
    assert not started


def test_hours_too_many_to_simulate_in_memory_are_refused_before_anything_starts(monkeypatch, capsys):
    started = []
    monkeypatch.setattr(EmbeddedBroker, "start", lambda self: started.append(self))
    assert main(["demo", "--hours", "5000"]) == 2
    assert "600,000 scrapes; at most 250,000 can be simulated" in capsys.readouterr().err
    assert not started


def test_the_environment_cannot_move_the_demo_off_its_topics_or_switch_off_its_metrics(monkeypatch, capsys):
    import detector.service
    from detector.errors import DetectorError

    built = []

    class Stop:  # in place of the service: records the spec the demo would run, then ends the demo
        def __init__(self, spec, **kwargs):
            built.append(spec)
            raise DetectorError("stopped after the spec was built")

    monkeypatch.setattr(detector.service, "Service", Stop)
    monkeypatch.setenv("OUTAGE_DETECTOR_INPUTS", '[{"topic": "logs", "kind": "log", "format": "ecs"}]')
    monkeypatch.setenv("OUTAGE_DETECTOR_SINKS__PROMETHEUS__ENABLED", "false")
    assert main(["demo", "--port", "0"]) == 2
    assert "stopped after the spec was built" in capsys.readouterr().err
    spec, = built
    assert [i.topic for i in spec.inputs] == ["demo-logs", "demo-metrics"] and spec.sinks.prometheus.enabled


def test_a_port_in_use_is_refused_naming_it_before_anything_starts(monkeypatch, capsys):
    import socket

    started = []
    monkeypatch.setattr(EmbeddedBroker, "start", lambda self: started.append(self))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--port", str(port)]) == 2
    assert f"cannot serve /metrics on 127.0.0.1:{port}: Address already in use; choose a free port with --port" \
        in capsys.readouterr().err
    assert not started


def test_a_port_out_of_range_is_an_argument_error(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--port", "70000"])
    assert exit_.value.code == 2 and "argument --port: must be a port from 0 to 65535, got 70000" in capsys.readouterr().err
