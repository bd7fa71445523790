"""Grouping accuracy as the Loghub benchmark defines it, and the ``evaluate parsing`` command."""

from __future__ import annotations

import json

import pytest

from detector.cli import main
from detector.evaluation.parsing import grouping_accuracy


def test_identical_grouping_under_other_names_is_perfect():
    assert grouping_accuracy(["a", "a", "b", "c"], [7, 7, 1, 2]) == 1.0


def test_merging_two_true_groups_makes_all_their_lines_wrong():
    # Lines 0-2 merged into one predicted group; line 3 alone and right.
    assert grouping_accuracy(["a", "a", "b", "c"], [1, 1, 1, 2]) == 0.25


def test_splitting_a_true_group_makes_all_its_lines_wrong():
    # Group "a" split in two: even the larger part does not count.
    assert grouping_accuracy(["a", "a", "a", "b"], [1, 1, 2, 3]) == 0.25


def test_each_line_alone_is_right_only_for_singleton_groups():
    assert grouping_accuracy(["a", "b", "b"], [1, 2, 3]) == pytest.approx(1 / 3)


def test_lengths_must_match():
    with pytest.raises(ValueError):
        grouping_accuracy(["a"], [1, 2])


def test_command_prints_accuracy_templates_lines_and_speed(tmp_path, capsys):
    rows = [("connection from 10.0.0.%d closed" % i, "E1") for i in range(5)]
    rows += [("disk %d is full" % i, "E2") for i in range(3)]
    rows += [("cupsd startup succeeded", "E3"), ("cupsd shutdown succeeded", "E4")]
    f = tmp_path / "X_2k.log_structured.csv"
    f.write_text("LineId,Content,EventId\n" + "".join(f'{i},"{c}",{e}\n' for i, (c, e) in enumerate(rows)))
    assert main(["evaluate", "parsing", "--structured", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"grouping_accuracy", "templates", "lines", "lines_per_second"}
    assert out["grouping_accuracy"] == 1.0
    assert out["templates"] == 4 and out["lines"] == 10
    assert out["lines_per_second"] > 0


def test_command_reports_an_unreadable_file_without_a_traceback(tmp_path, capsys):
    f = tmp_path / "bad.csv"
    f.write_text("a,b\n1,2\n")
    assert main(["evaluate", "parsing", "--structured", str(f)]) == 2
    assert "Content" in capsys.readouterr().err


def test_a_structured_csv_with_only_its_header_is_an_error_naming_it(tmp_path, capsys):
    f = tmp_path / "X_2k.log_structured.csv"
    f.write_text("LineId,Content,EventId\n")
    code = main(["evaluate", "parsing", "--structured", str(f), "--json"])
    out = capsys.readouterr()
    assert code == 2 and out.out == ""  # not a grouping accuracy of 0
    assert f"{f}: no log line after the header" in out.err and "Traceback" not in out.err


def test_a_raw_log_given_for_its_structured_csv_is_a_one_paragraph_error(data_dir, capsys):
    raw = data_dir / "loghub" / "2k" / "HDFS" / "HDFS_2k.log"
    assert main(["evaluate", "parsing", "--structured", str(raw)]) == 2
    err = capsys.readouterr().err
    assert "its header has no Content or EventId column" in err
    assert f"did you mean {raw}_structured.csv?" in err
    assert len(err.strip().splitlines()) == 1  # no query plan of polars after it


def test_command_uses_the_miner_section_of_a_model_spec(tmp_path, capsys):
    spec = tmp_path / "log.yaml"
    spec.write_text("kind: log\nminer:\n  merge_after: 2\n")
    rows = [("user alice logged in", "E1"), ("user bob logged in", "E1")]
    f = tmp_path / "s.csv"
    f.write_text("Content,EventId\n" + "".join(f"{c},{e}\n" for c, e in rows))
    assert main(["evaluate", "parsing", "--structured", str(f), "--model", str(spec), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["grouping_accuracy"] == 1.0
    spec.write_text("kind: log\nminer:\n  merge_after: 1\n")
    assert main(["evaluate", "parsing", "--structured", str(f), "--model", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "miner" in err and "merge_after" in err


def test_several_files_give_their_mean(tmp_path, capsys):
    a, b = tmp_path / "A_2k.log_structured.csv", tmp_path / "B_2k.log_structured.csv"
    a.write_text("Content,EventId\nuser 1 in,E1\nuser 2 in,E1\n")
    b.write_text("Content,EventId\ncupsd startup succeeded,E1\ncupsd shutdown succeeded,E1\n")
    assert main(["evaluate", "parsing", "--structured", str(a), str(b), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"]["A_2k.log_structured.csv"]["grouping_accuracy"] == 1.0
    assert out["files"]["B_2k.log_structured.csv"]["grouping_accuracy"] == 0.0
    assert out["grouping_accuracy"] == 0.5
    assert out["lines"] == 4


def test_two_files_of_the_same_name_each_keep_their_row(tmp_path, capsys):
    (tmp_path / "dev").mkdir()
    (tmp_path / "test").mkdir()
    dev, test = tmp_path / "dev" / "HDFS_2k.log_structured.csv", tmp_path / "test" / "HDFS_2k.log_structured.csv"
    dev.write_text("Content,EventId\nuser 1 in,E1\nuser 2 in,E1\n")
    test.write_text("Content,EventId\ncupsd startup succeeded,E1\ncupsd shutdown succeeded,E1\n")
    assert main(["evaluate", "parsing", "--structured", str(dev), str(test), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # Both files show, and the headline is the mean of what they show.
    assert {k: v["grouping_accuracy"] for k, v in out["files"].items()} == {
        "dev/HDFS_2k.log_structured.csv": 1.0, "test/HDFS_2k.log_structured.csv": 0.0}
    assert out["grouping_accuracy"] == 0.5
    assert main(["evaluate", "parsing", "--structured", str(dev), str(test)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert rows == ["  dev/HDFS_2k.log_structured.csv: grouping_accuracy 1.0, templates 1",
                    "  test/HDFS_2k.log_structured.csv: grouping_accuracy 0.0, templates 2"]
