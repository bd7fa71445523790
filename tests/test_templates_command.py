"""``outage-detector templates`` lists what the miners learnt, from checkpoints."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import orjson
import pytest

from detector.checkpoint import CheckpointStore
from detector.cli import main
from detector.config import load_pipeline
from detector.pipeline import Pipeline
from detector.records import RawRecord


def test_templates_are_listed_from_the_checkpoint_directory_most_frequent_first(tmp_path, capsys):
    spec = load_pipeline(None, inputs=[{"topic": "logs", "kind": "log", "format": "ecs"}])
    pipeline = Pipeline.from_spec(spec)
    lines = [f"user {i} logged in from 10.0.0.{i % 9}" for i in range(30)] + ["disk /dev/sda1 is full"] * 3
    pipeline.process([
        RawRecord("logs", 0, i, None, b"api", orjson.dumps(
            {"@timestamp": 1e9 + i, "message": m, "log": {"level": "info"}, "service": {"name": "api"}}))
        for i, m in enumerate(lines)
    ])
    CheckpointStore(tmp_path).save_many(dict(pipeline.partitions))
    (tmp_path / "notes.ckpt").write_text("not a partition's checkpoint")  # passed over, not a crash

    assert main(["templates", "--checkpoint-dir", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["count"] for r in rows] == [30, 3]
    assert "logged in" in rows[0]["template"] and "10.0.0.1" not in rows[0]["template"]
    assert rows[0]["first_seen"] == 1e9

    assert main(["templates", "--checkpoint-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "disk" in table and "logs[0]" in table


def test_an_unreachable_service_is_a_clear_error(capsys):
    from detector.broker import free_port

    assert main(["templates", "--url", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "cannot read templates" in capsys.readouterr().err


@pytest.fixture()
def serve():
    """A tiny HTTP server on a free loopback port answering every GET with the body it is given."""
    servers = []

    def start(body: bytes) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                pass

        server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("body, expected", [
    (b"<html>not the service</html>", "did not answer with JSON"),
    (b'{"status": "ok"}', "not a list of templates"),
    (b'[{"id": 1, "template": "x"}]', "not a list of templates (each with id, template, count, first_seen)"),
])
def test_a_url_that_does_not_answer_with_templates_is_a_clear_error(serve, capsys, body, expected):
    url = serve(body)
    assert main(["templates", "--url", url]) == 2
    err = capsys.readouterr().err
    assert expected in err and url in err and "Traceback" not in err


def test_a_service_with_no_templates_says_why_the_table_is_empty(serve, capsys):
    url = serve(b"[]")
    assert main(["templates", "--url", url, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == []  # stdout stays JSON
    assert f"the service at {url} has mined no templates: it has no log input" in err


def test_top_must_not_be_negative(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["templates", "--checkpoint-dir", str(tmp_path), "--top", "-2"])
    assert exit_.value.code == 2 and "argument --top: must be 0 or more" in capsys.readouterr().err


def test_a_directory_without_checkpoints_is_an_error_naming_it(tmp_path, capsys):
    (tmp_path / "notes.ckpt").write_text("not a partition's checkpoint")
    assert main(["templates", "--checkpoint-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} holds no partition checkpoints" in err and "relative to the directory" in err


def test_checkpoints_without_a_log_model_say_so_rather_than_print_an_empty_table(tmp_path, capsys):
    spec = load_pipeline(None, inputs=[{"topic": "metrics", "kind": "metric", "format": "metric_json"}])
    pipeline = Pipeline.from_spec(spec)
    pipeline.process([
        RawRecord("metrics", 0, i, None, b"api", orjson.dumps(
            {"name": "latency_ms", "labels": {"service": "api"}, "value": 50.0 + i % 3, "timestamp": 1e9 + 30 * i}))
        for i in range(20)
    ])
    CheckpointStore(tmp_path).save_many(dict(pipeline.partitions))

    assert main(["templates", "--checkpoint-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"{tmp_path} holds no log model, so there are no templates to list" in err
    assert "metric partitions only (topics: metrics)" in err

    assert main(["templates", "--checkpoint-dir", str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and "holds no log model" in err  # stdout stays JSON
