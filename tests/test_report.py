"""``report``: one self-contained HTML file with the series, alerts, templates, evaluation against
labels, batch baselines and tuning results; it renders in headless Chromium without console errors."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone
import subprocess
from pathlib import Path

import polars as pl
import pytest

from detector.cli import main
from detector.config import load_pipeline
from detector.replay import replay_file

NAB_FILE = "artificialWithAnomaly/art_daily_jumpsup.csv"


@pytest.fixture(scope="module")
def replayed(data_dir, tmp_path_factory) -> dict:
    """A NAB series and a small service log replayed together, plus a two-trial tuning journal."""
    tmp = tmp_path_factory.mktemp("report")
    nab = pl.read_csv(data_dir / "nab" / "data" / NAB_FILE).with_columns(
        topic=pl.lit("metrics"), name=pl.lit(Path(NAB_FILE).stem))
    lines = pl.DataFrame({
        "timestamp": [1_396_310_400.0 + 30 * i for i in range(2000)],
        "service": ["auth"] * 2000,
        "message": [f"user {i % 50} logged in" if i % 400 != 399 else "token store unreachable" for i in range(2000)],
        "level": ["info" if i % 400 != 399 else "error" for i in range(2000)],
        "topic": ["logs"] * 2000,
    })
    src = tmp / "history.parquet"
    pl.concat([nab.with_columns(pl.col("timestamp").str.to_datetime().dt.epoch("us") / 1e6), lines],
              how="diagonal_relaxed").sort("timestamp").write_parquet(src)
    spec = load_pipeline(None, inputs=[{"topic": "logs", "kind": "log", "format": "ecs"},
                                       {"topic": "metrics", "kind": "metric", "format": "metric_json"}],
                         alerting={"fire_after": 1})
    scores = tmp / "scores.parquet"
    replay_file(spec, src, scores, progress=False)
    journal = tmp / "trials.jsonl"
    journal.write_text("\n".join(json.dumps(e) for e in [
        {"study": "s", "trial": "a", "index": 0, "params": {}, "value": 60.0, "figures": {}, "seconds": 1.0, "error": None},
        {"study": "s", "trial": "b", "index": 1, "params": {"model.detector.params.alpha": 0.05}, "value": 65.5,
         "figures": {}, "seconds": 1.0, "error": None},
    ]) + "\n")
    report = tmp / "report.html"
    assert main(["report", "--scores", str(scores), "--labels", str(data_dir / "nab" / "labels" / "combined_windows.json"),
                 "--journal", str(journal), "--output", str(report), "--baseline-points", "3300"]) == 0  # past the file's labelled window
    return {"report": report, "tmp": tmp, "html": report.read_text(encoding="utf-8")}


def test_the_report_is_one_file_that_fetches_nothing(replayed):
    doc = replayed["html"]
    assert not re.search(r"<script[^>]+src=", doc) and not re.search(r"<link[^>]+href=", doc)
    assert "Plotly" in doc  # the library is inline


def test_the_report_shows_series_alerts_templates_labels_baselines_and_tuning(replayed):
    doc = replayed["html"]
    for heading in ("Metric series", "Log signals", "Alerts", "Incidents", "Log templates", "Alerts against labels",
                    "Batch baselines", "Tuning"):
        assert f"<h2>{heading}</h2>" in doc
    assert "art_daily_jumpsup" in doc and "token store unreachable" in doc
    assert "isolation_forest" in doc and "rolling_zscore" in doc and "NAB standard" in doc
    # The file's one labelled window is counted once, however many signals of the series alerted.
    labelled = doc[doc.index("<h2>Alerts against labels</h2>"):doc.index("<h2>Batch baselines</h2>")]
    assert "<td class='text'>all</td><td class='text'></td><td>1</td>" in labelled
    # metric series, log entity, alert timeline, templates, tuning
    assert len(re.findall(r'class="plotly-graph-div"', doc)) == 5


def test_without_labels_the_baselines_are_compared_by_agreement(replayed):
    out = replayed["tmp"] / "plain.html"
    assert main(["report", "--scores", str(replayed["tmp"] / "scores.parquet"), "--output", str(out),
                 "--baseline-points", "800"]) == 0
    doc = out.read_text(encoding="utf-8")
    assert "top-1% overlap with online" in doc and "Alerts against labels" not in doc


def _tuning_section(doc: str) -> str:
    return doc[doc.index("<h2>Tuning</h2>"):]


def test_the_tuning_section_shows_the_last_search_of_a_journal(replayed, tmp_path):
    def trial(study, name, value):
        return json.dumps({"study": study, "trial": name, "params": {"model.detector.params.alpha": value / 1000},
                           "value": value, "seconds": 1.0, "error": None})

    journal = tmp_path / "trials.jsonl"
    # An earlier search with better objectives (measured on something else), a line a crash cut short, the last search.
    journal.write_text("\n".join([trial("old", "a", 99.0), trial("old", "b", 98.0), trial("old", "c", 97.0),
                                   trial("new", "d", 61.0)[:25], trial("new", "e", 62.5), trial("new", "f", 63.5)]) + "\n")
    out = tmp_path / "report.html"
    assert main(["report", "--scores", str(replayed["tmp"] / "scores.parquet"), "--journal", str(journal),
                 "--output", str(out), "--baseline-points", "800"]) == 0
    tuning = _tuning_section(out.read_text(encoding="utf-8"))
    assert "2 trials of the last search" in tuning and "3 trials of earlier searches not shown" in tuning
    assert "63.5" in tuning and "99.0" not in tuning


def test_a_journal_with_no_trial_is_a_clear_error(replayed, tmp_path, capsys):
    journal = tmp_path / "notes.txt"
    journal.write_text("these are not trials\n")
    assert main(["report", "--scores", str(replayed["tmp"] / "scores.parquet"), "--journal", str(journal),
                 "--output", str(tmp_path / "report.html")]) == 2
    assert "not a tuning journal" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package 'chromium')")
def test_the_report_renders_in_headless_chromium_without_console_errors(replayed, tmp_path):
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", replayed["report"].as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []
    dom = proc.stdout
    # Plotly drew every figure: each plot div now holds its rendered SVG.
    assert dom.count('class="main-svg"') >= 5
    assert dom.count('class="scatterlayer') >= 4 and "barlayer" in dom


def test_a_scores_file_that_is_not_parquet_is_a_clear_error(tmp_path, capsys):
    scores = tmp_path / "scores.csv"
    scores.write_text("timestamp,score\n1,0.5\n")
    assert main(["report", "--scores", str(scores), "--output", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "not the scores Parquet file of a replay" in err and "Traceback" not in err


def _replay_nab_slice(data_dir: Path, tmp: Path, name: str, rows: int) -> Path:
    """The first ``rows`` points of a NAB file, replayed; the labels file covers the whole file."""
    src = tmp / "slice.parquet"
    (pl.read_csv(data_dir / "nab" / "data" / name).head(rows)
     .with_columns(pl.col("timestamp").str.to_datetime().dt.epoch("us") / 1e6, topic=pl.lit("metrics"),
                   name=pl.lit(Path(name).stem))
     .write_parquet(src))
    spec = load_pipeline(None, inputs=[{"topic": "metrics", "kind": "metric", "format": "metric_json"}],
                         alerting={"fire_after": 1})
    scores = tmp / "scores.parquet"
    replay_file(spec, src, scores, progress=False)
    return scores


def _section(doc: str, heading: str) -> str:
    part = doc[doc.index(f"<h2>{heading}</h2>"):]
    return part[:part.index("</section>")]


def test_label_windows_after_the_replayed_data_are_not_counted_as_missed(data_dir, tmp_path):
    # 1,500 points (about five days) of a file with four labelled windows: only the first is in them.
    scores = _replay_nab_slice(data_dir, tmp_path, "realTweets/Twitter_volume_AAPL.csv", 1500)
    out = tmp_path / "r.html"
    assert main(["report", "--scores", str(scores), "--labels", str(data_dir / "nab" / "labels" / "combined_windows.json"),
                 "--output", str(out), "--no-baselines"]) == 0
    labelled = _section(out.read_text(encoding="utf-8"), "Alerts against labels")
    rows = re.findall(r"<tr>(.*?)</tr>", labelled)[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows]
    assert [c[0] for c in cells] == ["Twitter_volume_AAPL", "all"]
    for c in cells:  # windows, found, ..., recall, median lead: the same on both rows
        assert c[2] == "1" and c[3] == "1" and c[6] == "1"
    assert cells[1][7] == cells[0][7] != "-"  # the all row has its median lead too


def test_a_replay_sibling_given_as_scores_is_a_clear_error_naming_the_columns(data_dir, tmp_path, capsys):
    scores = _replay_nab_slice(data_dir, tmp_path, "realTweets/Twitter_volume_AAPL.csv", 300)
    alerts = tmp_path / "scores.alerts.parquet"
    assert alerts.is_file()
    assert main(["report", "--scores", str(alerts), "--output", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "lacks the column(s) score, value" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("name, content, expected", [
    ("list.json", '[["2015-02-27 00:00:00", "2015-02-27 10:00:00"]]', "the file holds a JSON list"),
    ("flat.json", '{"Twitter_volume_AAPL": ["2015-02-27 00:00:00", "2015-02-27 10:00:00"]}',
     "window \"2015-02-27 00:00:00\" of 'Twitter_volume_AAPL' is not a [start, end] pair"),
    # The same reader as evaluate nab's: a window that ends before it starts is refused, not left to match nothing.
    ("backwards.json", '{"Twitter_volume_AAPL": [["2015-02-27 10:00:00", "2015-02-27 00:00:00"]]}',
     "of 'Twitter_volume_AAPL': its start is after its end"),
    ("backwards.csv", "key,start,end\nTwitter_volume_AAPL,2015-02-27 10:00:00,2015-02-27 00:00:00\n",
     "window 2015-02-27 10:00:00 .. 2015-02-27 00:00:00 of 'Twitter_volume_AAPL': its start is after its end"),
    # Without the header line the first window would silently become the column names.
    ("two_rows_no_header.csv", "Twitter_volume_AAPL,2015-02-27 00:00:00,2015-02-27 10:00:00\n"
                               "Twitter_volume_AAPL,2015-03-01 00:00:00,2015-03-01 10:00:00\n",
     "starts with the header line key,start,end"),
    ("one_row_no_header.csv", "Twitter_volume_AAPL,2015-02-27 00:00:00,2015-02-27 10:00:00\n",
     "starts with the header line key,start,end"),
])
def test_labels_of_the_wrong_shape_are_a_clear_error(data_dir, tmp_path, capsys, name, content, expected):
    scores = _replay_nab_slice(data_dir, tmp_path, "realTweets/Twitter_volume_AAPL.csv", 300)
    labels = tmp_path / name
    labels.write_text(content)
    assert main(["report", "--scores", str(scores), "--labels", str(labels), "--output", str(tmp_path / "r.html"),
                 "--no-baselines"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "cannot read label windows" in err and "Traceback" not in err


def test_a_labels_csv_with_its_header_keeps_every_window(data_dir, tmp_path):
    scores = _replay_nab_slice(data_dir, tmp_path, "realTweets/Twitter_volume_AAPL.csv", 1500)
    labels = tmp_path / "labels.csv"
    labels.write_text("key,start,end\nTwitter_volume_AAPL,2015-02-27 00:00:00,2015-02-27 10:00:00\n"
                      "Twitter_volume_AAPL,2015-03-01 00:00:00,2015-03-01 10:00:00\n")
    out = tmp_path / "r.html"
    assert main(["report", "--scores", str(scores), "--labels", str(labels), "--output", str(out),
                 "--no-baselines"]) == 0
    labelled = _section(out.read_text(encoding="utf-8"), "Alerts against labels")
    assert "<td class='text'>all</td><td class='text'></td><td>2</td>" in labelled


@pytest.mark.parametrize("threshold", ["5", "-0.1", "nan"])
def test_the_threshold_is_a_confidence_from_0_to_1(tmp_path, capsys, threshold):
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--scores", str(tmp_path / "s.parquet"), "--output", str(tmp_path / "r.html"),
              "--threshold", threshold])
    assert exit_.value.code == 2 and "argument --threshold: must be" in capsys.readouterr().err


def _plots(doc: str) -> list[list[dict]]:
    return [json.loads(s) for s in re.findall(r'Plotly\.newPlot\(\s*"[^"]*",\s*(\[.*?\]),\s*\{"template"', doc, flags=re.S)]


def _cells(section: str) -> list[list[str]]:
    return [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", section)[1:]]


def test_one_entity_on_two_log_inputs_is_shown_per_signal_and_topic(tmp_path):
    # An error burst on app-logs of entity api, steady traffic on its access-logs.
    t0, rows = 1_714_521_600, []
    for m in range(180):
        rows += [(t0 + m * 60 + k * 3, "access-logs", f"GET /api/items/{k} 200", "info", "api") for k in range(20)]
        rows += [(t0 + m * 60 + k * 12 + 1, "app-logs", f"processed batch {k} in {m} ms", "info", "api") for k in range(5)]
        if 120 <= m < 150:
            rows += [(t0 + m * 60 + j * 2 + 0.5, "app-logs", f"ERROR connection refused to db-{j % 3}", "error", "api")
                     for j in range(30)]
    src = tmp_path / "logs.parquet"
    pl.DataFrame(sorted(rows), schema=["timestamp", "topic", "message", "level", "entity"], orient="row").write_parquet(src)
    spec = load_pipeline(None, inputs=[{"topic": "app-logs", "kind": "log", "format": "json"},
                                       {"topic": "access-logs", "kind": "log", "format": "json"}])
    scores = tmp_path / "out.parquet"
    replay_file(spec, src, scores, progress=False)
    labels = tmp_path / "labels.csv"
    labels.write_text("key,start,end\napi,2024-05-01T02:00:00Z,2024-05-01T02:30:00Z\n")
    out = tmp_path / "r.html"
    assert main(["report", "--scores", str(scores), "--labels", str(labels), "--output", str(out), "--no-baselines"]) == 0
    doc = out.read_text(encoding="utf-8")
    log_plot, timeline = _plots(_section(doc, "Log signals"))[0], _plots(_section(doc, "Alerts"))[0]
    # Each topic's windows are a line of their own, one point per window, not a zigzag between the two.
    lines = {t["name"]: t["x"] for t in log_plot if t["name"].startswith("log_")}
    assert {"log_template_rate (app-logs)", "log_template_rate (access-logs)"} <= set(lines)
    assert all(len(xs) == len(set(xs)) for xs in lines.values())
    # Each alerting log signal is its own row of the timeline and of the evaluation against labels.
    names = [t["name"] for t in timeline]
    assert len(names) == len(set(names)) >= 2 and "api · log_error_ratio (app-logs)" in names
    labelled = [c[0] for c in _cells(_section(doc, "Alerts against labels"))]
    assert "log_error_ratio (app-logs)" in labelled and "app-logs" not in labelled
    # The incident row's opened/resolved times are those of its opened and resolved events.
    events = pl.read_parquet(tmp_path / "out.incidents.parquet")
    header = re.findall(r"<th>(.*?)</th>", _section(doc, "Incidents"))
    row = dict(zip(header, _cells(_section(doc, "Incidents"))[0]))
    stamp = {k: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
             for k, t in events.select("kind", "timestamp").iter_rows() if k != "updated"}
    assert (row["opened"], row["resolved"]) == (stamp["opened"], stamp["resolved"])
    # Template ids are per topic and partition: each is shown with where it was mined.
    templates = _section(doc, "Log templates")
    assert "app-logs[0]" in templates and "access-logs[0]" in templates
