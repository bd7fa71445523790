"""``outage-detector evaluate nab`` end to end on a small synthetic corpus in NAB's layout."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta

import pytest

from detector.cli import main


def _write_corpus(root, files=2, rows=600, spike_at=400):
    data = root / "data" / "synthetic"
    data.mkdir(parents=True)
    labels = {}
    start = datetime(2020, 1, 1)
    rng = random.Random(7)
    for k in range(files):
        lines = ["timestamp,value"]
        for i in range(rows):
            v = 50.0 + rng.gauss(0, 2) + (80.0 if i == spike_at else 0.0)
            lines.append(f"{(start + timedelta(minutes=5 * i)):%Y-%m-%d %H:%M:%S},{v}")
        (data / f"series_{k}.csv").write_text("\n".join(lines) + "\n")
        w0 = start + timedelta(minutes=5 * (spike_at - 20))
        w1 = start + timedelta(minutes=5 * (spike_at + 20))
        labels[f"synthetic/series_{k}.csv"] = [[f"{w0:%Y-%m-%d %H:%M:%S}.000000", f"{w1:%Y-%m-%d %H:%M:%S}.000000"]]
    label_file = root / "labels.json"
    label_file.write_text(json.dumps(labels))
    return root / "data", label_file


def _run(capsys, *args):
    code = main(["evaluate", "nab", *map(str, args)])
    out = capsys.readouterr()
    return code, out


def test_prints_the_three_profiles_and_catches_obvious_spikes(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path)
    code, out = _run(capsys, "--data-dir", data, "--labels", labels, "--json")
    assert code == 0
    result = json.loads(out.out)
    for key in ("standard", "reward_low_FP_rate", "reward_low_FN_rate", "thresholds", "files", "rows", "seconds"):
        assert key in result
    assert result["files"] == 2 and result["rows"] == 1200
    # Two unmistakable spikes inside their windows: far better than a detector that never fires.
    assert result["standard"] > 50


def test_a_category_folder_linked_into_the_data_folder_is_scored(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path / "corpus")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "synthetic").symlink_to(data / "synthetic", target_is_directory=True)
    code, out = _run(capsys, "--data-dir", linked, "--labels", labels, "--json")
    assert code == 0
    assert json.loads(out.out)["files"] == 2


def test_results_dir_and_fixed_thresholds_reproduce_the_score(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path)
    out_dir = tmp_path / "results"
    _, out = _run(capsys, "--data-dir", data, "--labels", labels, "--results-dir", out_dir, "--json")
    first = json.loads(out.out)
    csv = (out_dir / "synthetic" / f"{first['detector']}_series_0.csv").read_text().splitlines()
    assert csv[0] == "timestamp,value,anomaly_score,label"
    assert len(csv) == 601
    assert sum(int(line.rsplit(",", 1)[1]) for line in csv[1:]) == 41  # rows inside the window
    _, out = _run(capsys, "--data-dir", data, "--labels", labels, "--thresholds", out_dir / "thresholds.json", "--json")
    fixed = json.loads(out.out)
    assert fixed["standard"] == pytest.approx(first["standard"])
    assert fixed["thresholds"] == first["thresholds"]


def test_a_file_the_labels_do_not_name_is_scored_without_windows_and_reported(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path)
    (data / "synthetic" / "series_0.csv").rename(data / "synthetic" / "renamed.csv")
    code, out = _run(capsys, "--data-dir", data, "--labels", labels, "--json")
    assert code == 0 and json.loads(out.out)["windows"] == 1
    assert "1 of 2 files have no entry in the labels file" in out.err and "synthetic/renamed.csv" in out.err


def test_a_category_folder_given_for_the_data_folder_is_an_error_naming_the_folder_to_give(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path)
    out_dir = tmp_path / "results"
    code, out = _run(capsys, "--data-dir", data / "synthetic", "--labels", labels, "--results-dir", out_dir)
    # Not a score of 0 with a "never fire" threshold written for later runs.
    assert code == 2 and out.out == "" and not out_dir.exists()
    assert f"no file under {data / 'synthetic'} is named in the labels file {labels}" in out.err
    assert f"('synthetic/series_0.csv' for 'series_0.csv' here): give {data} as --data-dir" in out.err
    assert len(out.err.strip().splitlines()) == 1


def test_a_labels_file_naming_none_of_the_files_is_an_error(tmp_path, capsys):
    data, _ = _write_corpus(tmp_path)
    other = tmp_path / "other.json"
    other.write_text('{"realTweets/Twitter_volume_AAPL.csv": []}')
    code, out = _run(capsys, "--data-dir", data, "--labels", other, "--json")
    assert code == 2 and out.out == ""
    assert (f"no file under {data} is named in the labels file {other} (it names e.g. "
            "'realTweets/Twitter_volume_AAPL.csv', the folder holds 'synthetic/series_0.csv')") in out.err


def test_epoch_timestamps_score_as_their_dates_do(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path)
    _, out = _run(capsys, "--data-dir", data, "--labels", labels, "--json")
    for path in (data / "synthetic").glob("*.csv"):
        lines = path.read_text().splitlines()
        epoch = [f"{datetime.fromisoformat(t + '+00:00').timestamp():.0f},{v}" for t, v in
                 (line.split(",") for line in lines[1:])]
        path.write_text("\n".join([lines[0], *epoch]) + "\n")
    _, again = _run(capsys, "--data-dir", data, "--labels", labels, "--json")
    assert json.loads(again.out)["standard"] == json.loads(out.out)["standard"]


def test_a_bad_timestamp_is_a_clear_error(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path, files=1)
    path = data / "synthetic" / "series_0.csv"
    path.write_text(path.read_text().replace("2020-01-01 00:10:00", "yesterday"))
    code, out = _run(capsys, "--data-dir", data, "--labels", labels)
    assert code == 2
    assert "series_0.csv: not a timestamp: 'yesterday'" in out.err and "Traceback" not in out.err


@pytest.mark.parametrize("cell, expected", [
    ("abc", "line 4: value 'abc' is not a number"),
    ("", "line 4: no value"),
    # NaN would be a missing point that scores 0, which NAB's scorer has no notion of.
    ("NaN", "line 4: value 'NaN' is not finite"),
])
def test_a_value_that_is_not_a_number_is_an_error_naming_the_line(tmp_path, capsys, cell, expected):
    data, labels = _write_corpus(tmp_path, files=1)
    path = data / "synthetic" / "series_0.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].split(",")[0] + "," + cell
    path.write_text("\n".join(lines) + "\n")
    code, out = _run(capsys, "--data-dir", data, "--labels", labels)
    assert code == 2
    assert f"series_0.csv, {expected}" in out.err and "Traceback" not in out.err


def test_a_file_without_the_timestamp_and_value_columns_is_a_one_line_error(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path, files=1)
    path = data / "synthetic" / "series_0.csv"
    path.write_text(path.read_text().replace("timestamp,value", "ts,val", 1))
    code, out = _run(capsys, "--data-dir", data, "--labels", labels)
    assert code == 2
    assert "series_0.csv: expected NAB's columns timestamp,value; the header 'ts,val' has no timestamp or value column" \
        in out.err
    assert len(out.err.strip().splitlines()) == 1  # no query plan of polars after it


def test_a_file_with_only_its_header_is_an_error_naming_it(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path, files=2)
    (data / "synthetic" / "series_1.csv").write_text("timestamp,value\n")
    code, out = _run(capsys, "--data-dir", data, "--labels", labels)
    assert code == 2
    assert "series_1.csv: no row after the header" in out.err and "Traceback" not in out.err


KEY = "synthetic/series_0.csv"


@pytest.mark.parametrize("windows, expected", [
    ('[["2020-01-02 00:00:00"]]', f'window ["2020-01-02 00:00:00"] of {KEY!r} is not a [start, end] pair'),
    ("5", f"the windows of {KEY!r} are 5, not a list of [start, end] windows"),
    ("[null]", f"window null of {KEY!r} is not a [start, end] pair"),
    ('[[null, "2020-01-02 02:00:00"]]', f'window [null, "2020-01-02 02:00:00"] of {KEY!r}: not a timestamp: None'),
    # Dropped as covering no row before, so the file silently had one window fewer.
    ('[["2020-01-02 05:00:00", "2020-01-02 02:00:00"]]',
     f'window ["2020-01-02 05:00:00", "2020-01-02 02:00:00"] of {KEY!r}: its start is after its end'),
])
def test_a_malformed_label_window_is_a_one_line_error_naming_the_key_and_the_window(tmp_path, capsys, windows,
                                                                                     expected):
    data, _ = _write_corpus(tmp_path, files=1)
    labels = tmp_path / "bad_labels.json"
    labels.write_text(f'{{"{KEY}": {windows}}}')
    code, out = _run(capsys, "--data-dir", data, "--labels", labels)
    assert code == 2
    assert f"{labels}: cannot read label windows: {expected}" in out.err
    assert len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err


def test_missing_data_dir_is_a_clear_error(tmp_path, capsys):
    code, out = _run(capsys, "--data-dir", tmp_path / "nope", "--labels", tmp_path / "labels.json")
    assert code == 2
    assert "does not exist" in out.err and "Traceback" not in out.err


def test_reliability_table_compares_observed_with_ideal_fractions(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path, files=1, rows=3000, spike_at=2500)
    _, out = _run(capsys, "--data-dir", data, "--labels", labels, "--reliability", "--json")
    table = json.loads(out.out)["reliability"]
    assert [row["confidence_at_least"] for row in table] == sorted(row["confidence_at_least"] for row in table)
    for row in table:
        assert row["expected_fraction"] == pytest.approx(1 - row["confidence_at_least"])
        assert 0.0 <= row["observed_fraction"] <= 1.0
    # Noise-only rows: the fraction of points reaching 90% confidence is near 10%.
    ninety = next(row for row in table if row["confidence_at_least"] == 0.9)
    assert 0.04 < ninety["observed_fraction"] < 0.2


def test_held_out_halves_match_scoring_one_half_with_the_other_halfs_thresholds(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path, files=4)
    _, out = _run(capsys, "--data-dir", data, "--labels", labels, "--held-out", "3", "--json")
    held = json.loads(out.out)["held_out"]
    assert held["random_splits"] == 3
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert held[profile]["random_min"] <= held[profile]["random_mean"]
    # The same by hand: thresholds from the files at even positions, applied to the others.
    halves = {}
    for name, keep in (("even", (0, 2)), ("odd", (1, 3))):
        target = tmp_path / name / "synthetic"
        target.mkdir(parents=True)
        for k in keep:
            (target / f"series_{k}.csv").write_text((data / "synthetic" / f"series_{k}.csv").read_text())
        halves[name] = tmp_path / name
    _run(capsys, "--data-dir", halves["even"], "--labels", labels, "--results-dir", tmp_path / "res", "--json")
    _, out = _run(capsys, "--data-dir", halves["odd"], "--labels", labels,
                  "--thresholds", tmp_path / "res" / "thresholds.json", "--json")
    assert held["standard"]["half_b"] == pytest.approx(json.loads(out.out)["standard"], abs=1e-3)
    _, out = _run(capsys, "--data-dir", data, "--labels", labels, "--held-out", "0")
    assert "held out, half A" in out.out and "random splits" not in out.out


def test_held_out_with_fixed_thresholds_is_a_clear_error(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path)
    _run(capsys, "--data-dir", data, "--labels", labels, "--results-dir", tmp_path / "res")
    code, out = _run(capsys, "--data-dir", data, "--labels", labels, "--held-out", "2",
                     "--thresholds", tmp_path / "res" / "thresholds.json")
    assert code == 2 and "--held-out optimises its own thresholds on each half: leave out --thresholds" in out.err
    assert "Traceback" not in out.err


@pytest.mark.parametrize("splits, expected", [("-1", "must be 0 or more, got -1"), ("two", "not a whole number: 'two'")])
def test_held_out_below_0_is_an_argument_error_naming_the_value(tmp_path, capsys, splits, expected):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "nab", "--data-dir", str(tmp_path), "--labels", str(tmp_path / "l.json"), "--held-out", splits])
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the usage lines
    assert exit_.value.code == 2 and error.endswith(f"error: argument --held-out: {expected}")


@pytest.mark.parametrize("content, holds", [("[0.5, 0.6]", "a JSON list"), ("null", "null")])
def test_thresholds_that_are_not_a_json_object_are_a_clear_error(tmp_path, capsys, content, holds):
    data, labels = _write_corpus(tmp_path, files=1)
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(content)
    code, out = _run(capsys, "--data-dir", data, "--labels", labels, "--thresholds", thresholds)
    assert code == 2
    assert "thresholds are a JSON object" in out.err and f"the file holds {holds}" in out.err
    assert "Traceback" not in out.err


@pytest.mark.parametrize("value, shown", [
    ("5", "5"), ("-1", "-1"), ("NaN", "NaN"), ("Infinity", "Infinity"), ("true", "true"), ('"0.5"', '"0.5"'),
])
def test_a_threshold_that_is_not_a_number_from_0_to_1_is_an_error_naming_the_file_and_profile(tmp_path, capsys,
                                                                                               value, shown):
    data, labels = _write_corpus(tmp_path, files=1)
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(f'{{"standard": 0.5, "reward_low_FP_rate": {value}, "reward_low_FN_rate": 0.5}}')
    code, out = _run(capsys, "--data-dir", data, "--labels", labels, "--thresholds", thresholds, "--json")
    assert code == 2 and out.out == ""
    assert (f"{thresholds}: threshold for profile 'reward_low_FP_rate' is {shown}, not a number from 0 to 1"
            in out.err)
    assert "Traceback" not in out.err


def test_a_thresholds_file_without_a_profile_is_an_error_naming_the_file(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path, files=1)
    thresholds = tmp_path / "flat.json"
    thresholds.write_text('{"standard": 0.5}')
    code, out = _run(capsys, "--data-dir", data, "--labels", labels, "--thresholds", thresholds)
    assert code == 2
    assert f"{thresholds}: no threshold for profile 'reward_low_FP_rate' (the file has 'standard')" in out.err


def test_nabs_own_thresholds_file_of_several_detectors_is_an_error_naming_them(tmp_path, capsys):
    data, labels = _write_corpus(tmp_path, files=1)
    entry = {p: {"score": 1.0, "threshold": 0.5} for p in ("standard", "reward_low_FP_rate", "reward_low_FN_rate")}
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"numenta": entry, "bayesChangePt": entry}))
    code, out = _run(capsys, "--data-dir", data, "--labels", labels, "--thresholds", thresholds)
    assert code == 2 and out.out == ""
    assert (f"{thresholds}: holds the thresholds of 2 detectors (numenta, bayesChangePt), none of them "
            "'robust_seasonal', the model's detector: keep only the entry whose thresholds to use") in out.err
    assert "is null" not in out.err
    # One detector's entry is taken whatever its name.
    thresholds.write_text(json.dumps({"numenta": entry}))
    code, out = _run(capsys, "--data-dir", data, "--labels", labels, "--thresholds", thresholds, "--json")
    assert code == 0 and json.loads(out.out)["thresholds"]["standard"] == 0.5


def test_thresholds_of_a_run_where_firing_never_pays_read_back(tmp_path, capsys):
    # The only window lies in the probationary period: every detection can only cost.
    data, labels = _write_corpus(tmp_path, files=1, spike_at=50)
    out_dir = tmp_path / "results"
    _, out = _run(capsys, "--data-dir", data, "--labels", labels, "--results-dir", out_dir, "--json")
    first = json.loads(out.out)
    assert all(0.0 < t <= 1.0 for t in first["thresholds"].values())
    code, out = _run(capsys, "--data-dir", data, "--labels", labels, "--thresholds", out_dir / "thresholds.json",
                     "--json")
    assert code == 0 and json.loads(out.out)["standard"] == first["standard"] == 0.0


def test_json_output_is_strict_json_even_when_a_figure_is_nan(tmp_path, capsys, monkeypatch):
    from detector.series_model import SeriesModel

    # A detector that scores every row NaN leaves no threshold to choose: it is printed as null.
    monkeypatch.setattr(SeriesModel, "update_many", lambda self, ts, vs: ([math.nan] * len(vs), [0.0] * len(vs)))
    data, labels = _write_corpus(tmp_path, files=1)
    code, out = _run(capsys, "--data-dir", data, "--labels", labels, "--results-dir", tmp_path / "res", "--json")
    assert code == 0

    def refuse(constant):
        raise ValueError(f"bare {constant} in JSON output")

    result = json.loads(out.out, parse_constant=refuse)
    assert result["thresholds"]["standard"] is None
    json.loads((tmp_path / "res" / "thresholds.json").read_text(), parse_constant=refuse)


def test_the_defaults_of_data_dir_and_labels_are_named_when_missing(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        main(["evaluate", "nab", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: data/nab/data under the working directory" in help_text
    assert "default: data/nab/labels/combined_windows.json under the working directory" in help_text

    monkeypatch.chdir(tmp_path)
    code, out = _run(capsys)
    assert code == 2 and "--data-dir not given and its default data/nab/data does not exist" in out.err
    data, _ = _write_corpus(tmp_path / "elsewhere", files=1)
    code, out = _run(capsys, "--data-dir", data)
    assert code == 2 and "--labels not given and its default data/nab/labels/combined_windows.json" in out.err


def test_rows_going_back_in_time_are_scored_as_nab_does_but_warned_about(tmp_path, capsys, caplog):
    data, labels = _write_corpus(tmp_path, files=2)
    path = data / "synthetic" / "series_1.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:501] + lines[301:]) + "\n")  # a stretch exported twice
    code, out = _run(capsys, "--data-dir", data, "--labels", labels, "--json")
    assert code == 0 and json.loads(out.out)["rows"] == 600 + 800
    assert "series_1.csv: 199 rows are earlier than a row before (first: line 502" in caplog.text
    assert "series_0.csv" not in caplog.text
