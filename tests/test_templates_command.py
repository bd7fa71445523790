"""``outage-detector templates`` lists what the miners learnt, from checkpoints."""

from __future__ import annotations

import json

import orjson

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
