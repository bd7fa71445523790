"""``replay`` from files: deterministic output, every file type alike, batches bounded, bad rows
dead-lettered, templates and alerts written."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest

from detector.cli import main
from detector.config import load_pipeline
from detector.pipeline import Pipeline
from detector.replay import replay_file, sibling

T0 = 1_700_000_000.0


@pytest.fixture()
def spec():
    return load_pipeline(None, inputs=[
        {"topic": "logs", "kind": "log", "format": "ecs"},
        {"topic": "metrics", "kind": "metric", "format": "metric_json"},
    ])


def metric_rows(n: int = 1200) -> pl.DataFrame:
    rng = random.Random(3)
    rows = []
    for i in range(n):
        svc = ("api", "db")[i % 2]
        value = rng.gauss(50.0, 3.0) + (400.0 if svc == "db" and i in (901, 903, 905) else 0.0)
        rows.append((T0 + 30 * (i // 2), "latency_ms", svc, value))
    return pl.DataFrame(rows, schema=["timestamp", "name", "service", "value"], orient="row")


def log_rows(n: int = 1500) -> pl.DataFrame:
    rng = random.Random(5)
    rows = []
    for i in range(n):
        svc = ("api", "db")[i % 2]
        msg = f"request {rng.randint(1, 999)} served in {rng.randint(1, 80)} ms"
        if 1000 <= i < 1100 and svc == "db":
            msg, level = f"connection refused by replica {rng.randint(1, 3)}", "error"
        else:
            level = "info"
        rows.append((T0 + 2 * i, svc, msg, level))
    return pl.DataFrame(rows, schema=["timestamp", "service", "message", "level"], orient="row")


def test_replaying_the_same_file_twice_gives_identical_output(spec, tmp_path):
    src = tmp_path / "history.parquet"
    pl.concat([metric_rows().with_columns(topic=pl.lit("metrics")),
               log_rows().with_columns(topic=pl.lit("logs"))], how="diagonal").sort("timestamp").write_parquet(src)
    a = replay_file(spec, src, tmp_path / "a.parquet", progress=False)
    b = replay_file(spec, src, tmp_path / "b.parquet", progress=False)
    assert a["scores"] == b["scores"] > 0 and a["alerts"] == b["alerts"]
    for name in ("a", "b"):
        assert sibling(tmp_path / f"{name}.parquet", "templates").is_file()
    assert a["incidents"] == b["incidents"] > 0
    incidents = pl.read_parquet(tmp_path / "a.incidents.parquet")
    assert set(incidents["kind"]) >= {"opened"} and "db" in incidents["entity"].to_list()
    for suffix in ("", ".alerts", ".templates", ".incidents"):
        assert (tmp_path / f"a{suffix}.parquet").read_bytes() == (tmp_path / f"b{suffix}.parquet").read_bytes()


def test_parquet_csv_and_json_lines_of_the_same_rows_give_the_same_scores(spec, tmp_path):
    rows = metric_rows()
    rows.write_parquet(tmp_path / "m.parquet")
    rows.write_csv(tmp_path / "m.csv")
    rows.write_ndjson(tmp_path / "m.jsonl")
    outs = []
    for name in ("m.parquet", "m.csv", "m.jsonl"):
        replay_file(spec, tmp_path / name, tmp_path / f"out-{name}.parquet", progress=False)
        outs.append(pl.read_parquet(tmp_path / f"out-{name}.parquet"))
    assert outs[0].height == rows.height
    assert outs[0]["value"].to_list() == rows["value"].to_list()
    for other in outs[1:]:
        assert other.equals(outs[0])


def test_the_file_is_processed_in_bounded_batches_with_the_scores_of_one_big_batch(spec, tmp_path):
    src = tmp_path / "m.parquet"
    metric_rows().write_parquet(src)
    pipeline = Pipeline.from_spec(spec)
    sizes = []
    process = pipeline.process
    pipeline.process = lambda batch: (sizes.append(len(batch)), process(batch))[1]
    replay_file(spec, src, tmp_path / "small.parquet", batch_rows=100, pipeline=pipeline, progress=False)
    replay_file(spec, src, tmp_path / "big.parquet", batch_rows=100_000, progress=False)
    assert max(sizes) <= 100 and sum(sizes) == 1200
    assert pl.read_parquet(tmp_path / "small.parquet").equals(pl.read_parquet(tmp_path / "big.parquet"))


def outage_rows(steps: int = 2400) -> pl.DataFrame:
    """Logs and metrics of three services over three hours, sorted by time: an error burst with a
    latency spike on checkout, new warnings recurring on payments, and search silent for 20 minutes."""
    rng = random.Random(17)
    logs, metrics = [], []
    for i in range(steps):
        ts = T0 + 4.5 * i
        svc = ("checkout", "payments", "search")[i % 3]
        if svc == "search" and 1000 <= i < 1270:
            continue
        burst = svc == "checkout" and 1500 <= i < 1700
        if burst:
            logs.append((ts, svc, f"payment gateway timeout after {rng.randint(900, 1200)} ms", "error"))
        elif svc == "payments" and i > 1800 and i % 30 == 1:
            logs.append((ts, svc, f"ledger lag {rng.randint(1, 9)} s on shard {rng.randint(1, 4)}", "warn"))
        else:
            logs.append((ts, svc, f"GET /api/items/{rng.randint(1, 500)} 200 in {rng.randint(5, 40)} ms", "info"))
        metrics.append((ts + 1.5, "latency_ms", svc, rng.gauss(120.0, 8.0) + (900.0 if burst else 0.0)))
    return pl.concat([
        pl.DataFrame(logs, schema=["timestamp", "service", "message", "level"], orient="row").with_columns(topic=pl.lit("logs")),
        pl.DataFrame(metrics, schema=["timestamp", "name", "service", "value"], orient="row").with_columns(
            topic=pl.lit("metrics")),
    ], how="diagonal").sort("timestamp", maintain_order=True)


def test_the_batch_size_changes_no_score_alert_or_incident(spec, tmp_path):
    # Windows close, and alerts and incidents are judged, as each record comes, not at a batch's end.
    src = tmp_path / "history.parquet"
    outage_rows().write_parquet(src)
    outputs = {}
    for rows in (7, 25, 5000):
        out = tmp_path / f"b{rows}" / "out.parquet"
        summary = replay_file(spec, src, out, partitions=2, batch_rows=rows, progress=False)
        assert summary["late_rows"] == 0
        outputs[rows] = {suffix: (out.parent / f"out{suffix}.parquet").read_bytes()
                         for suffix in ("", ".alerts", ".incidents", ".templates")}
    scores = pl.read_parquet(tmp_path / "b7" / "out.parquet")
    assert {"log_template_rate", "log_error_ratio", "log_new_alarm_template"} <= set(scores["signal"])
    incidents = pl.read_parquet(tmp_path / "b7" / "out.incidents.parquet")
    assert {"opened", "resolved"} <= set(incidents["kind"]) and "checkout" in incidents["entity"].to_list()
    assert pl.read_parquet(tmp_path / "b7" / "out.alerts.parquet").height > 0
    assert outputs[7] == outputs[25] == outputs[5000]


def test_partitions_are_merged_by_record_timestamp_and_none_is_handed_out_ahead_of_a_partition_being_read():
    from kafka import TopicPartition

    from detector.records import RawRecord
    from detector.replay import PartitionMerge

    a, b = TopicPartition("logs", 0), TopicPartition("metrics", 0)
    merge = PartitionMerge(limit=3)
    for offset, ts in enumerate((10.0, 20.0, None, 40.0)):  # no timestamp: that of the record before it
        merge.add(a, RawRecord(a.topic, 0, offset, ts, None, b""))
    assert merge.full(a) and list(merge.ready({a, b})) == []  # b may still deliver something earlier
    merge.add(b, RawRecord(b.topic, 0, 0, 20.0, None, b""))
    got = [(r.topic, r.offset) for r in merge.ready({a, b})]
    assert got == [("logs", 0), ("logs", 1), ("logs", 2), ("metrics", 0)]  # ties: topic order; b is empty again
    assert [(r.topic, r.offset) for r in merge.ready({a})] == [("logs", 3)]  # b has ended


def test_a_metric_spike_raises_confidence_and_an_alert(spec, tmp_path):
    src = tmp_path / "m.csv"
    metric_rows().write_csv(src)
    spec = spec.model_copy(update={"alerting": spec.alerting.model_copy(update={"fire_after": 1})})
    replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    scores = pl.read_parquet(tmp_path / "out.parquet")
    spike = scores.filter(pl.col("value") > 300)
    assert spike.height == 3 and spike["entity"].unique().to_list() == ["db"]
    assert spike["confidence"].max() >= 0.99
    alerts = pl.read_parquet(tmp_path / "out.alerts.parquet")
    assert "db" in alerts.filter(pl.col("state") == "firing")["entity"].to_list()


def test_log_rows_are_mined_and_their_templates_counted(spec, tmp_path):
    src = tmp_path / "logs.jsonl"
    logs = log_rows()
    logs.write_ndjson(src)
    summary = replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    assert summary["rows"] == logs.height and summary["dead_letters"] == 0
    templates = pl.read_parquet(tmp_path / "out.templates.parquet")
    assert templates["count"].sum() == logs.height
    assert any("connection refused" in t for t in templates["template"].to_list())
    signals = set(pl.read_parquet(tmp_path / "out.parquet")["signal"].to_list())
    assert {"log_template_rate", "log_error_ratio"} <= signals


def test_log_rows_replayed_as_logfmt_give_what_they_give_as_json(spec, tmp_path):
    src = tmp_path / "logs.jsonl"
    log_rows().write_ndjson(src)
    logfmt = load_pipeline(None, inputs=[{"topic": "logs", "kind": "log", "format": "logfmt"}])
    replay_file(spec, src, tmp_path / "json.parquet", progress=False)
    summary = replay_file(logfmt, src, tmp_path / "logfmt.parquet", progress=False)
    assert summary["dead_letters"] == 0
    assert pl.read_parquet(tmp_path / "logfmt.parquet").equals(pl.read_parquet(tmp_path / "json.parquet"))
    assert pl.read_parquet(tmp_path / "logfmt.templates.parquet").equals(pl.read_parquet(tmp_path / "json.templates.parquet"))


def test_undecodable_payloads_are_dead_lettered_and_the_rest_scored(spec, tmp_path):
    good = [json.dumps({"name": "q", "value": float(i % 5), "timestamp": T0 + i}) for i in range(200)]
    payloads = good[:100] + ["{not json", ""] + good[100:]
    src = tmp_path / "raw.parquet"
    pl.DataFrame({"topic": ["metrics"] * len(payloads), "payload": payloads}).write_parquet(src)
    summary = replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    assert summary["dead_letters"] == 2 and summary["scores"] == 200
    dead = pl.read_parquet(sibling(tmp_path / "out.parquet", "dead_letters"))
    assert dead["offset"].to_list() == [100, 101] and dead["value"].to_list() == [b"{not json", b""]
    assert all(dead["error"].str.len_chars() > 0) and dead["error_kind"].to_list() == ["MalformedRecord", "EmptyRecord"]


def test_nab_layout_csv_replays_with_the_file_name_as_the_metric(spec, data_dir, tmp_path):
    src = data_dir / "nab" / "data" / "artificialWithAnomaly" / "art_daily_jumpsup.csv"
    out = tmp_path / "out.parquet"
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    assert main(["replay", "--pipeline", str(pipeline), "--input", str(src), "--output", str(out), "--no-progress"]) == 0
    scores = pl.read_parquet(out)
    assert scores["signal"].unique().to_list() == ["art_daily_jumpsup"]
    assert scores.height == pl.read_csv(src).height


def test_a_csv_column_that_changes_type_late_is_read_whole(spec, tmp_path):
    # Integers for 12,000 rows, then a fraction and a word: read as text, nothing is guessed from the
    # first rows, so the fraction is scored and the word dead-lettered with its text.
    src = tmp_path / "m.csv"
    lines = ["timestamp,name,value"] + [f"{T0 + 10 * i},q,{i % 7}" for i in range(12_000)]
    lines += [f"{T0 + 120_000},q,1.5", f"{T0 + 120_010},q,many"]
    src.write_text("\n".join(lines) + "\n")
    summary = replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    assert summary["scores"] == 12_001 and summary["dead_letters"] == 1
    assert pl.read_parquet(tmp_path / "out.parquet")["value"][-1] == 1.5


def test_json_lines_keep_label_keys_and_timestamp_forms_that_appear_late(spec, tmp_path):
    src = tmp_path / "m.jsonl"
    rows = [{"timestamp": T0 + 10 * i, "name": "q", "value": float(i % 7), "labels": {"host": "a"}} for i in range(300)]
    # A label only the last row has, and timestamps in two ISO forms after epoch numbers.
    rows.append({"timestamp": "2024-01-15T10:00:00", "name": "q", "value": 1.0, "labels": {"host": "a"}})
    rows.append({"timestamp": "2024-01-15T10:00:10Z", "name": "q", "value": 1.0, "labels": {"host": "a", "zone": "z1"}})
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert out.height == 302
    assert out["timestamp"][-2:].to_list() == [1705312800.0, 1705312810.0]
    assert "zone" in out["series"][-1]


def test_rows_that_fit_no_single_input_are_refused_with_a_hint(tmp_path, capsys):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("inputs:\n  - {topic: a, kind: metric, format: metric_json}\n"
                   "  - {topic: b, kind: metric, format: metric_json}\n")
    src = tmp_path / "m.csv"
    metric_rows(10).write_csv(src)
    assert main(["replay", "--pipeline", str(cfg), "--input", str(src), "--output", str(tmp_path / "o.parquet")]) == 2
    assert "--topic" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["m.csv", "raw.jsonl"])
def test_a_row_whose_topic_names_no_input_is_dead_lettered_and_the_rest_replayed(tmp_path, capsys, name):
    rows = [{"topic": "metrics", "timestamp": T0 + 60 * i, "name": "q", "value": float(i % 5)} for i in range(20)]
    rows[5]["topic"], rows[9]["topic"] = "metrcs", None  # a typo, and a cell left empty
    src = tmp_path / name
    if name.endswith(".csv"):
        pl.DataFrame(rows).write_csv(src)
        as_sent = [b'{"topic":"metrcs","timestamp":"1700000300.0","name":"q","value":"0.0"}',
                   b'{"topic":null,"timestamp":"1700000540.0","name":"q","value":"4.0"}']
    else:  # raw records, as the topic carried them
        payloads = [json.dumps({k: r[k] for k in ("timestamp", "name", "value")}) for r in rows]
        pl.DataFrame({"topic": [r["topic"] or "" for r in rows], "payload": payloads}).write_ndjson(src)
        as_sent = [payloads[5].encode(), payloads[9].encode()]
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    out = tmp_path / "out.parquet"
    assert main(["replay", "--pipeline", str(pipeline), "--input", str(src), "--output", str(out), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 20 and summary["dead_letters"] == 2 and summary["scores"] == 18
    dead = pl.read_parquet(sibling(out, "dead_letters"))
    assert dead["error_kind"].to_list() == ["UnknownTopic"] * 2 and dead["value"].to_list() == as_sent
    assert dead["error"].to_list() == [
        "no input is configured for topic 'metrcs' (the pipeline's inputs: logs, metrics)",
        "column 'topic' is empty, so the row names no input (the pipeline's inputs: logs, metrics)"]


def test_rows_out_of_time_order_are_counted_and_warned_of(tmp_path, capsys):
    # Three rows moved to the end (minutes behind), and one 20 s behind: within the 30 s the pipeline
    # allows a record to be late, so not counted.
    rows = [(T0 + 60 * i, "q", float(i % 5)) for i in range(100)]
    moved = [rows.pop(30), rows.pop(20), rows.pop(10)]
    shuffled = rows + [(T0 + 60 * 99 - 20, "q", 1.0)] + moved
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    for name, lines in (("shuffled.csv", shuffled), ("sorted.csv", sorted(shuffled))):
        pl.DataFrame(lines, schema=["timestamp", "name", "value"], orient="row").write_csv(tmp_path / name)
        assert main(["replay", "--pipeline", str(pipeline), "--input", str(tmp_path / name),
                     "--output", str(tmp_path / f"{name}.parquet"), "--no-progress"]) == 0
        out, err = capsys.readouterr()
        if name == "shuffled.csv":
            assert json.loads(out)["late_rows"] == 3
            assert err == ("replay: warning: 3 of 101 rows are out of time order (more than 30 s older than a row "
                           "before them), which changes their scores, alerts and incidents; sort the file by "
                           "timestamp for the scores the live service would give\n")
        else:
            assert json.loads(out)["late_rows"] == 0 and err == ""


@pytest.mark.parametrize("name, content, message", [
    ("broken.jsonl", '{broken\n[1, 2]\n', "cannot read it: no line holds a JSON object"),
    ("empty.csv", "", "cannot read it: empty CSV"),
])
def test_a_file_polars_cannot_read_is_a_clear_error(tmp_path, capsys, name, content, message):
    src = tmp_path / name
    src.write_text(content)
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    assert main(["replay", "--pipeline", str(pipeline), "--input", str(src), "--output", str(tmp_path / "o.parquet"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{name}: {message}" in err and "Traceback" not in err


def test_bad_numbers_and_unwritable_outputs_are_clear_errors(tmp_path, capsys):
    src = tmp_path / "m.csv"
    metric_rows(10).write_csv(src)
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    args = ["replay", "--pipeline", str(pipeline), "--input", str(src), "--no-progress"]
    with pytest.raises(SystemExit) as exited:
        main(args + ["--output", str(tmp_path / "o.parquet"), "--batch-rows", "0"])
    assert exited.value.code == 2 and "--batch-rows: must be at least 1" in capsys.readouterr().err
    (tmp_path / "taken.parquet").mkdir()
    assert main(args + ["--output", str(tmp_path / "taken.parquet")]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("bad_input", ["missing.csv", "history.txt", "bad_time.csv", "no_value.csv"])
def test_a_failed_replay_leaves_the_previous_results_as_they_were(tmp_path, capsys, bad_input):
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    good = tmp_path / "m.csv"
    metric_rows(200).write_csv(good)
    (tmp_path / "history.txt").write_text("timestamp,value\n1,2\n")
    (tmp_path / "bad_time.csv").write_text("timestamp,value\n" + f"{T0},1\n" * 10 + "yesterday,1\n")
    (tmp_path / "no_value.csv").write_text("timestamp,other\n1,2\n")
    out = tmp_path / "out" / "scores.parquet"
    args = ["replay", "--pipeline", str(pipeline), "--output", str(out), "--no-progress", "--batch-rows", "4"]
    assert main(args + ["--input", str(good)]) == 0
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    assert pl.read_parquet(out).height == 200 and len(before) == 4
    assert main(args + ["--input", str(tmp_path / bad_input)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before  # no partial files left either


@pytest.mark.parametrize("source, output, message", [
    ("history.csv", "history.csv", "--output {dir}/history.csv: the outputs are Parquet files; give a name ending "
                                   "in .parquet"),
    ("history.csv", "scores.csv", "--output {dir}/scores.csv: the outputs are Parquet files; give a name ending "
                                  "in .parquet"),
    ("history.parquet", "history.parquet", "--output {dir}/history.parquet is the input file; the replay would "
                                           "replace it, so choose another output"),
    ("out.dead_letters.parquet", "out.parquet", "--output {dir}/out.parquet would write out.dead_letters.parquet, "
                                                "which is the input file; the replay would replace it"),
    ("out.templates.parquet", "out.parquet", "--output {dir}/out.parquet would write out.templates.parquet, "
                                             "which is the input file"),
], ids=["csv-over-its-input", "csv", "parquet-over-its-input", "dead-letters-over-the-input", "templates-over-the-input"])
def test_an_output_that_would_replace_the_input_or_is_not_parquet_is_refused_before_anything_is_written(
        tmp_path, capsys, source, output, message):
    rows = metric_rows(50)
    rows.write_csv(tmp_path / source) if source.endswith(".csv") else rows.write_parquet(tmp_path / source)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    assert main(["replay", "--pipeline", str(pipeline), "--input", str(tmp_path / source),
                 "--output", str(tmp_path / output), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("outage-detector: error: " + message.format(dir=tmp_path)) and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_replay_stopped_by_sigterm_removes_its_partial_files_and_keeps_the_previous_results(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "out" / "scores.parquet"
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    metric_rows(200).write_csv(small)
    with open(big, "w") as f:  # long enough to be stopped half-way: the scores go past a row group first
        f.write("timestamp,name,value\n")
        f.writelines(f"{T0 + i},m{i % 3},{(i * 7919) % 1000 / 10}\n" for i in range(1_000_000))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "detector", "replay", "--pipeline", str(repo / "pipelines" / "default.yaml"),
           "--output", str(out), "--no-progress", "--input"]
    subprocess.run(cmd + [str(small)], env=env, check=True, capture_output=True)
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}

    proc = subprocess.Popen(cmd + [str(big)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list(out.parent.glob(".*.partial")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the replay ended before it could be stopped"
        assert list(out.parent.glob(".*.partial")), "the replay wrote no partial file in time"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM and stdout == b"" and b"Traceback" not in stderr
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before  # no partial file left either


@pytest.mark.parametrize("name", ["m.csv", "m.jsonl"])
def test_a_byte_order_mark_and_crlf_line_ends_cost_no_row(spec, tmp_path, name):
    # As Excel exports CSV: the mark would otherwise stick to the first column's name (no 'timestamp'
    # column) or spoil the first JSON line.
    rows = metric_rows(100)
    plain, marked = tmp_path / name, tmp_path / f"bom-{name}"
    rows.write_csv(plain) if name.endswith(".csv") else rows.write_ndjson(plain)
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes().replace(b"\n", b"\r\n"))
    summary = replay_file(spec, marked, tmp_path / "bom.parquet", progress=False)
    assert summary["rows"] == summary["scores"] == 100 and summary["dead_letters"] == 0
    replay_file(spec, plain, tmp_path / "plain.parquet", progress=False)
    assert pl.read_parquet(tmp_path / "bom.parquet").equals(pl.read_parquet(tmp_path / "plain.parquet"))


@pytest.mark.parametrize("name, content, columns", [
    ("m.csv", "time,value\n2024-01-15T10:00:00Z,1\n", "['time', 'value']"),
    ("ecs.jsonl", '{"@timestamp": "2024-01-15T10:00:00Z", "message": "hello", "service": "web"}\n',
     "['@timestamp', 'message', 'service']"),
])
def test_rows_without_a_timestamp_column_are_refused_up_front(tmp_path, capsys, name, content, columns):
    src = tmp_path / name
    src.write_text(content)
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    out = tmp_path / "o.parquet"
    assert main(["replay", "--pipeline", str(pipeline), "--input", str(src), "--output", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"outage-detector: error: no 'timestamp' column among the columns {columns}: ")
    assert err.count("\n") == 1 and "'payload'" in err
    assert not out.exists()


@pytest.mark.parametrize("stamp", ["03/01/2024 00:00:00", "2024-01-15T10:00:60Z"])
def test_a_timestamp_the_decoders_refuse_stops_the_replay_with_the_value_named(tmp_path, capsys, stamp):
    # A US export (1 March) that polars would read day first as 3 January, and a leap second that it would
    # read as the next minute: the live decoders dead-letter both, so the replay must not score them.
    src = tmp_path / "us.csv"
    src.write_text(f"timestamp,value\n{stamp},1\n2024-03-01T01:00:00Z,2\n")
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    out = tmp_path / "o.parquet"
    assert main(["replay", "--pipeline", str(pipeline), "--input", str(src), "--output", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == f"outage-detector: error: column 'timestamp': not a timestamp: {stamp!r}\n"
    assert not out.exists()


@pytest.mark.parametrize("topic", [[], ["--topic", "metrics"]])
def test_replay_without_a_pipeline_says_to_pass_one(tmp_path, capsys, monkeypatch, topic):
    monkeypatch.delenv("OUTAGE_DETECTOR_PIPELINE", raising=False)
    src = tmp_path / "m.csv"
    metric_rows(10).write_csv(src)
    assert main(["replay", "--input", str(src), "--output", str(tmp_path / "o.parquet"), "--no-progress", *topic]) == 2
    err = capsys.readouterr().err
    assert "has no inputs" in err and "--pipeline" in err and "pipelines/default.yaml" in err


@pytest.mark.parametrize("name, bad_line, bad_text", [
    ("m.jsonl", "{oops", b"{oops"),
    ("m.jsonl", "[1, 2]", b"[1, 2]"),
    ("m.csv", f"{T0},q,1,extra", b"1700000000.0,q,1,extra"),
])
def test_a_line_that_holds_no_row_is_dead_lettered_with_its_number_and_the_rest_replayed(
        spec, tmp_path, name, bad_line, bad_text):
    good = [{"timestamp": T0 + 10 * i, "name": "q", "value": float(i % 7)} for i in range(20_000)]
    if name.endswith(".csv"):
        lines = ["timestamp,name,value"] + [f"{r['timestamp']},{r['name']},{r['value']}" for r in good]
        bad_at = 12_002  # the header is line 1
    else:
        lines = [json.dumps(r) for r in good]
        bad_at = 12_001
    lines.insert(bad_at - 1, bad_line)
    src = tmp_path / name
    src.write_text("\n".join(lines) + "\n")
    summary = replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    assert summary["scores"] == 20_000 and summary["dead_letters"] == 1 and summary["rows"] == 20_001
    assert pl.read_parquet(tmp_path / "out.parquet")["value"].to_list() == [r["value"] for r in good]
    dead = pl.read_parquet(tmp_path / "out.dead_letters.parquet")
    assert dead["value"].to_list() == [bad_text] and dead["topic"].to_list() == ["metrics"]
    assert dead["error"][0].startswith(f"line {bad_at}: ") and dead["error_kind"][0] == "UnreadableRow"


def test_a_json_line_that_holds_no_row_is_dead_lettered_with_a_plain_reason(spec, tmp_path):
    rows = [json.dumps({"timestamp": T0 + 10 * i, "name": "q", "value": 1.0}) for i in range(5)]
    src = tmp_path / "m.jsonl"
    src.write_text("\n".join([rows[0], "[1, 2, 3]", rows[1], "null", rows[2], '{"name": oops}', rows[3], "nope",
                              rows[4]]) + "\n")
    summary = replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    assert summary["scores"] == 5 and summary["dead_letters"] == 4
    dead = pl.read_parquet(tmp_path / "out.dead_letters.parquet")
    assert dead["error"].to_list() == [
        "line 2: expected a JSON object, got an array",
        "line 4: expected a JSON object, got null",
        "line 6: invalid JSON at byte 9: unexpected character, expected a JSON value",
        "line 8: invalid JSON at byte 0: invalid literal, expected 'null'",
    ]


def _log_csv(path: Path, message_lines: list[str]) -> str:
    """A log CSV of three short lines and, second, one whose message has ``message_lines``; returns that row."""
    message = "\n".join(message_lines).replace('"', '""')
    row = f'{T0 + 1},"{message}",error,api'
    path.write_text("\n".join(["timestamp,message,level,service", f"{T0},request ok,info,api", row,
                               f"{T0 + 2},request ok,info,api", f"{T0 + 3},request ok,info,api"]) + "\n")
    return row


def test_a_csv_field_longer_than_128_kib_is_read(spec, tmp_path):
    # A long stack trace: Python's csv reader refuses fields over 128 KiB unless told otherwise.
    src = tmp_path / "logs.csv"
    _log_csv(src, ["java.lang.IllegalStateException: boom" + "".join(f" at Svc.m{i}(Svc.java:{i})" for i in range(8000))])
    summary = replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    assert summary["rows"] == 4 and summary["dead_letters"] == 0
    templates = pl.read_parquet(tmp_path / "out.templates.parquet")
    assert templates["count"].sum() == 4
    assert any(t.startswith("java.lang.IllegalStateException: boom") for t in templates["template"])


def test_a_csv_row_too_long_to_read_is_dead_lettered_whole_and_the_rows_after_it_read(spec, tmp_path):
    # Over the 1 MiB a live record may hold, across lines, with quotes: the dead letter keeps every line of
    # it, and the lines left of it after the csv reader gives up are not taken for rows.
    src = tmp_path / "logs.csv"
    row = _log_csv(src, ['java.lang.IllegalStateException: "boom"'] + [f"\tat Svc.m{i}(Svc.java:{i}),x" for i in range(40_000)])
    assert len(row) > 1024 * 1024
    summary = replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    assert summary["rows"] == 4 and summary["dead_letters"] == 1
    dead = pl.read_parquet(tmp_path / "out.dead_letters.parquet")
    assert dead["error_kind"].to_list() == ["UnreadableRow"]
    assert dead["error"][0] == "line 3: field larger than field limit (1048576)"
    assert dead["value"][0] == row.encode()
    assert pl.read_parquet(tmp_path / "out.templates.parquet")["count"].to_list() == [3]


def test_inputs_that_cannot_be_replayed_are_one_paragraph_errors(tmp_path, capsys, monkeypatch):
    import kafka
    from kafka.errors import KafkaTimeoutError

    def unreachable(*args, **kwargs):
        raise KafkaTimeoutError("Unable to bootstrap from ['127.0.0.1:1']")

    monkeypatch.setattr(kafka, "KafkaConsumer", unreachable)
    (tmp_path / "bad.parquet").write_text("not parquet\n")
    (tmp_path / "twice.csv").write_text("timestamp,value,value\n1700000000,1,2\n")
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    args = ["replay", "--pipeline", str(pipeline), "--output", str(tmp_path / "o.parquet"), "--no-progress"]
    for source, message in ((str(tmp_path / "bad.parquet"), "bad.parquet: cannot read it"),
                            (str(tmp_path / "twice.csv"), "the header names 'value' more than once"),
                            ("kafka:", "kafka: names no topic"),
                            ("kafka:logs", "cannot reach Kafka at 127.0.0.1:1")):
        assert main(args + ["--input", source, "--bootstrap-servers", "127.0.0.1:1"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


class FakeConsumer:
    """In place of kafka.KafkaConsumer: one partition of ``logs`` whose records come in polls of ten,
    then ``fail`` from the next poll (``"poll"``) or, once the topic is quiet, from the broker's answer
    for its end offsets (``"end_offsets"``: a broker gone away, which kafka-python's poll does not raise).
    With ``stall_at``, polls from that offset on come back empty ``stall_polls`` times first (a broker
    restarting); ``unread`` records are reported by the end offsets but never delivered."""

    records: list = []
    fail: tuple[str, Exception] | None = None
    stall_at, stall_polls, unread = None, 0, 0

    def __init__(self, **config):
        self.next = 0
        self.stalled = 0

    def partitions_for_topic(self, topic):
        return {0}

    def assign(self, tps):
        self.tp = tps[0]

    def beginning_offsets(self, tps):
        return {tp: 0 for tp in tps}

    def seek(self, tp, offset):
        self.next = offset

    def position(self, tp):
        return self.next

    def pause(self, *tps):
        pass

    def poll(self, timeout_ms):
        if self.next == self.stall_at and self.stalled < self.stall_polls:
            self.stalled += 1
            return {}
        batch = self.records[self.next:self.next + 10]
        self.next += len(batch)
        if not batch and self.fail and self.fail[0] == "poll":
            raise self.fail[1]
        return {self.tp: batch} if batch else {}

    def end_offsets(self, tps):
        if self.fail and self.fail[0] == "end_offsets":
            raise self.fail[1]
        return {tp: len(self.records) + self.unread for tp in tps}

    def close(self):
        pass


def _fake_topic(monkeypatch, n=50):
    """``n`` log records on the fake consumer's ``logs`` topic."""
    from types import SimpleNamespace

    import kafka

    monkeypatch.setattr(FakeConsumer, "records", [
        SimpleNamespace(topic="logs", partition=0, offset=i, timestamp=int((T0 + i) * 1000), key=b"api",
                        value=json.dumps({"@timestamp": T0 + i, "message": f"user {i} logged in",
                                          "service": {"name": "api"}}).encode())
        for i in range(n)
    ])
    monkeypatch.setattr(kafka, "KafkaConsumer", FakeConsumer)


def _replayed_once(tmp_path, monkeypatch, capsys):
    """A replay of the fake topic's 50 records: its command line, its output, and the files it wrote."""
    _fake_topic(monkeypatch)
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    out = tmp_path / "out" / "scores.parquet"
    args = ["replay", "--pipeline", str(pipeline), "--input", "kafka:logs", "--output", str(out), "--no-progress",
            "--bootstrap-servers", "broker:9092"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 50
    return args, out, {p.name: p.read_bytes() for p in out.parent.iterdir()}


@pytest.mark.parametrize("where, error, text", [
    ("poll", "CorruptRecordError", "Record is corrupt"),
    ("end_offsets", "KafkaTimeoutError", "Failed to get offsets by timestamps in 30000 ms"),
])
def test_a_kafka_error_during_a_replay_is_one_line_and_leaves_the_previous_results(
        tmp_path, capsys, monkeypatch, where, error, text):
    import kafka.errors

    args, out, before = _replayed_once(tmp_path, monkeypatch, capsys)
    monkeypatch.setattr(FakeConsumer, "fail", (where, getattr(kafka.errors, error)(text)))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("outage-detector: error: reading from Kafka at broker:9092 failed after 50 records: ")
    assert error in err and text in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before  # no partial files left either


def test_a_kafka_replay_waits_out_a_pause_of_the_broker_while_it_reports_records_still_to_read(
        tmp_path, capsys, monkeypatch):
    # Six empty polls from offset 20 on: twice what ends a replay of a topic that is quiet.
    _fake_topic(monkeypatch)
    monkeypatch.setattr(FakeConsumer, "stall_at", 20)
    monkeypatch.setattr(FakeConsumer, "stall_polls", 6)
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    assert main(["replay", "--pipeline", str(pipeline), "--input", "kafka:logs", "--no-progress",
                 "--output", str(tmp_path / "scores.parquet"), "--bootstrap-servers", "broker:9092"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 50


def test_records_the_broker_reports_but_never_delivers_end_the_replay_with_a_warning(monkeypatch, capsys):
    from types import SimpleNamespace

    from detector.replay import kafka_batches

    _fake_topic(monkeypatch)
    monkeypatch.setattr(FakeConsumer, "unread", 5)
    settings = SimpleNamespace(bootstrap_servers="broker:9092", max_poll_records=500)
    monkeypatch.setattr("detector.kafka_io.client_config", lambda settings: {})
    got = [r.offset for batch in kafka_batches(settings, ["logs"], poll_ms=1, stall_seconds=0.2) for r in batch]
    assert got == list(range(50))
    assert "replay: logs[0] ended at offset 50, though the broker reports records up to offset 54: none came " \
           "for 0.2 s" in capsys.readouterr().err


@pytest.mark.parametrize("bounds, message", [
    (["--start", "2024-05-01T03:00:00Z", "--end", "2024-05-01T02:00:00Z"],
     "--start 2024-05-01T03:00:00Z is not before --end 2024-05-01T02:00:00Z (which is excluded): nothing to replay"),
    (["--start", "offset:100", "--end", "offset:50"],
     "--start offset:100 is not before --end offset:50 (which is excluded): nothing to replay"),
    (["--start", "offset:20", "--end", "offset:20"],
     "--start offset:20 is not before --end offset:20 (which is excluded): nothing to replay"),
    (["--start", "offset:-5"], "bound 'offset:-5': an offset is 0 or more"),
    (["--start", "offset:5", "--end", "offset:-1"], "bound 'offset:-1': an offset is 0 or more"),
    # Without an end time the replay ends at records newer than its own start: a typo'd year reads nothing.
    (["--start", "2062-11-29T00:00:00Z"], "--start 2062-11-29T00:00:00Z is in the future: nothing to replay"),
    (["--start", "2062-11-29T00:00:00Z", "--end", "offset:100"],
     "--start 2062-11-29T00:00:00Z is in the future: nothing to replay"),
], ids=["times", "offsets", "equal", "negative-start", "negative-end", "future", "future-offset-end"])
def test_kafka_bounds_that_leave_nothing_or_a_negative_offset_are_refused_before_connecting(
        tmp_path, capsys, monkeypatch, bounds, message):
    import kafka

    args, out, before = _replayed_once(tmp_path, monkeypatch, capsys)

    def connect(**config):
        raise AssertionError("connected to Kafka")

    monkeypatch.setattr(kafka, "KafkaConsumer", connect)
    assert main(args + bounds) == 2
    assert capsys.readouterr().err == f"outage-detector: error: {message}\n"
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before


def test_rows_with_bad_labels_or_offsets_are_dead_lettered(spec, tmp_path):
    src = tmp_path / "m.csv"
    lines = ["timestamp,name,value,labels,offset"] + [f'{T0 + i},q,{i % 5},"{{""host"": ""a""}}",{i}' for i in range(100)]
    lines[11] = f"{T0 + 10},q,1,{{oops,10"
    lines[21] = f'{T0 + 20},q,1,"{{""host"": ""a""}}",'
    src.write_text("\n".join(lines) + "\n")
    summary = replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    assert summary["scores"] == 98 and summary["dead_letters"] == 2
    dead = pl.read_parquet(tmp_path / "out.dead_letters.parquet")
    assert "column 'labels'" in dead["error"][0] and "column 'offset'" in dead["error"][1]
    assert b"oops" in dead["value"][0]


@pytest.mark.parametrize("broken_line", [False, True])
def test_json_lines_boolean_values_are_scored_as_1_and_0_as_the_live_decoder_scores_them(spec, tmp_path, broken_line):
    rows = [{"timestamp": T0 + 60 * i, "name": "up", "value": i % 3 != 0} for i in range(60)]
    lines = [json.dumps(r) for r in rows]
    lines.insert(30, "")
    # The JSON string "true" is not a number: the decoder refuses it, and so must the replay.
    lines.append(json.dumps({"timestamp": T0 + 3600, "name": "up", "value": "true"}))
    if broken_line:  # read line by line then
        lines.insert(10, "{oops")
    src = tmp_path / "up.jsonl"
    src.write_text("\n".join(lines) + "\n")
    summary = replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    assert summary["scores"] == 60 and summary["dead_letters"] == 1 + broken_line
    assert pl.read_parquet(tmp_path / "out.parquet")["value"].to_list() == [float(r["value"]) for r in rows]
    dead = pl.read_parquet(tmp_path / "out.dead_letters.parquet")
    assert dead["error"][-1] == "field 'value' is not a number: 'true'"


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_values_that_are_not_finite_numbers_are_dead_lettered_with_the_value(spec, tmp_path, kind):
    rows = pl.DataFrame({"timestamp": [T0 + 30.0 * i for i in range(60)], "name": ["q"] * 60,
                         "value": [float(i % 7) for i in range(60)]})
    rows = rows.with_columns(pl.when(pl.int_range(60) == 20).then(float("nan"))
                             .when(pl.int_range(60) == 40).then(float("-inf")).otherwise(pl.col("value")).alias("value"))
    src = tmp_path / f"m.{kind}"
    rows.write_csv(src) if kind == "csv" else rows.write_parquet(src)
    summary = replay_file(spec, src, tmp_path / "out.parquet", progress=False)
    assert summary["scores"] == 58 and summary["dead_letters"] == 2
    errors = pl.read_parquet(tmp_path / "out.dead_letters.parquet")["error"].to_list()
    assert [e.split(": ", 1)[0] for e in errors] == ["field 'value' is not finite"] * 2
    assert errors[0].lower().endswith("'nan'") and errors[1].lower().endswith("'-inf'")


def test_help_names_every_file_type_and_output_and_start_is_refused_for_files(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for word in (".pq", ".ndjson", ".json)", "OUT.incidents.parquet", "OUT.dead_letters.parquet", "kafka: inputs only"):
        assert word in text
    src = tmp_path / "m.csv"
    metric_rows(10).write_csv(src)
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
    args = ["replay", "--pipeline", str(pipeline), "--input", str(src), "--output", str(tmp_path / "o.parquet")]
    assert main(args + ["--start", "2026-03-01T00:00:00Z"]) == 2
    assert "--start and --end apply to kafka: inputs only" in capsys.readouterr().err
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("layout", ["csv", "parquet"])
def test_a_timestamp_column_without_an_offset_is_read_in_the_inputs_timezone_as_a_payload_is(tmp_path, layout):
    # The same local time in a structured column and in a raw payload lands at the same event time.
    cfg = tmp_path / "p.yaml"
    cfg.write_text("inputs:\n  - {topic: syslog, kind: log, format: plain, timezone: Asia/Tokyo}\n"
                   "  - {topic: app, kind: log, format: json}\n")
    spec = load_pipeline(str(cfg))
    rows = pl.DataFrame({"timestamp": ["2024-05-01 10:00:00", "2024-05-01 10:00:00"],
                         "message": ["disk check ok", "request served"], "entity": ["host1", "host1"],
                         "topic": ["syslog", "app"]})
    if layout == "parquet":  # a datetime column without a zone
        rows = rows.with_columns(pl.col("timestamp").str.to_datetime())
        src = tmp_path / "s.parquet"
        rows.write_parquet(src)
    else:
        src = tmp_path / "s.csv"
        rows.write_csv(src)
    replay_file(spec, src, tmp_path / "s_out.parquet", progress=False)
    raw = tmp_path / "p.csv"
    pl.DataFrame({"topic": ["syslog"], "key": ["host1"], "payload": ["2024-05-01 10:00:00 disk check ok"]}).write_csv(raw)
    replay_file(spec, raw, tmp_path / "p_out.parquet", progress=False)
    structured = dict(pl.read_parquet(tmp_path / "s_out.templates.parquet").select("topic", "first_seen").iter_rows())
    from_payload = pl.read_parquet(tmp_path / "p_out.templates.parquet")["first_seen"][0]
    tokyo_10 = 1714525200.0  # 2024-05-01T01:00:00Z
    assert from_payload == tokyo_10
    assert structured == {"syslog": tokyo_10, "app": tokyo_10 + 9 * 3600}  # the UTC input reads it as UTC


def test_a_partition_missing_on_some_json_lines_is_reported_as_missing(spec, tmp_path):
    src = tmp_path / "m.jsonl"
    src.write_text('{"timestamp": 1714521600, "name": "x", "value": 1}\n'
                   '{"timestamp": 1714521660, "name": "x", "value": 2, "partition": 0}\n')
    summary = replay_file(spec, src, tmp_path / "out.parquet", topic="metrics", progress=False)
    assert summary["dead_letters"] == 1
    error = pl.read_parquet(tmp_path / "out.dead_letters.parquet")["error"][0]
    assert error == "column 'partition' is empty or missing on this row, not a whole number"
