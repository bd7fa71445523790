"""Session metrics, the session detector, and the ``evaluate sessions`` command."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from detector.cli import main
from detector.detectors import build
from detector.evaluation.sessions import precision_recall_f1, read_labels, roc_auc

HDFS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "loghub" / "hdfs"


def test_precision_recall_f1_on_a_hand_counted_case():
    truth = [True, True, True, False, False, False]
    pred = [True, True, False, True, False, False]
    p, r, f1 = precision_recall_f1(truth, pred)
    assert (p, r) == pytest.approx((2 / 3, 2 / 3))
    assert f1 == pytest.approx(2 / 3)
    assert precision_recall_f1([True], [False]) == (0.0, 0.0, 0.0)


def test_roc_auc_counts_ties_as_half():
    assert roc_auc([True, False], [0.9, 0.1]) == 1.0
    assert roc_auc([True, False], [0.1, 0.9]) == 0.0
    assert roc_auc([True, False, False], [0.5, 0.5, 0.1]) == pytest.approx(0.75)
    assert roc_auc([True, True, False], [1, 1, 1]) == 0.5
    assert roc_auc([False, False], [1, 2]) is None


def test_labels_accept_words_and_numbers(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("BlockId,Label\nblk_1,Normal\nblk_2,Anomaly\nblk_3,1\nblk_4,0\n")
    assert read_labels(f) == {"blk_1": False, "blk_2": True, "blk_3": True, "blk_4": False}


def test_session_detector_flags_a_rare_error_and_a_missing_step():
    det = build("session_rarity")
    rng = random.Random(0)
    for _ in range(2000):
        x = {"1": 1.0, "2": 3.0, "3": 3.0}
        if rng.random() < 0.3:
            x["4"] = 1.0  # an optional step some sessions have
        det.score_one(x)
        det.learn_one(x)
    normal = det.score_one({"1": 1.0, "2": 3.0, "3": 3.0})
    optional = det.score_one({"1": 1.0, "2": 3.0, "3": 3.0, "4": 1.0})
    error = det.score_one({"1": 1.0, "2": 3.0, "3": 3.0, "!9": 1.0})
    missing = det.score_one({"1": 1.0, "2": 3.0})
    assert max(normal, optional) < 1.0
    assert error > 2.0 and missing > 2.0
    assert det.explain()["traits"][0]["kind"] == "missing_partner"


def _write_log(path: Path, n: int, bad: set[int]) -> None:
    lines = []
    t = 1_700_000_000
    for i in range(n):
        ts = t + i * 5
        stamp = lambda s: f"2023-11-14T22:{(s // 60) % 60:02d}:{s % 60:02d}Z"  # noqa: E731
        lines.append(f"{stamp(ts - t)} INFO open request req-{i} from client {i % 7}")
        if i in bad:
            lines.append(f"{stamp(ts - t + 1)} ERROR request req-{i} failed: disk quota exceeded")
        else:
            lines.append(f"{stamp(ts - t + 1)} INFO request req-{i} served in {i % 50} ms")
            lines.append(f"{stamp(ts - t + 2)} INFO request req-{i} closed")
    path.write_text("\n".join(lines) + "\n")


def test_command_finds_the_broken_requests(tmp_path, capsys):
    log, labels = tmp_path / "app.log", tmp_path / "labels.csv"
    bad = {300, 420, 555, 610}
    _write_log(log, 700, bad)
    labels.write_text("Key,Label\n" + "".join(f"req-{i},{'Anomaly' if i in bad else 'Normal'}\n" for i in range(700)))
    rc = main(["evaluate", "sessions", "--log", str(log), "--labels", str(labels), "--session-key", r"req-\d+", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert {"precision", "recall", "f1", "roc_auc", "sessions", "anomalies", "lines_per_second"} <= set(out)
    assert out["sessions"] == 700
    assert out["recall"] == 1.0 and out["precision"] == 1.0
    assert out["roc_auc"] == 1.0


def _evaluate_small(tmp_path, log_text: str, labels_text: str, key: str, *extra: str,
                    labels_name: str = "l.csv") -> int:
    """``evaluate sessions`` on a small log and labels file written under ``tmp_path``."""
    log, labels = tmp_path / "a.log", tmp_path / labels_name
    log.write_text(log_text)
    labels.write_text(labels_text)
    return main(["evaluate", "sessions", "--log", str(log), "--labels", str(labels), "--session-key", key, *extra])


def test_command_rejects_a_bad_session_key(tmp_path, capsys):
    assert _evaluate_small(tmp_path, "x\n", "k,l\nx,1\n", "((") == 2
    assert "sessions.key" in capsys.readouterr().err


def test_hdfs_blocks_replayed_in_time_order_are_flagged_online(capsys):
    rc = main(["evaluate", "sessions", "--log", str(HDFS / "hdfs_dev.log"), "--labels",
               str(HDFS / "hdfs_dev_labels.csv"), "--session-key", r"blk_-?\d+", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sessions"] == 5750
    assert out["f1"] >= 0.9, out


@pytest.mark.parametrize(
    "line, ts, message, level",
    [
        ("081109 203530 147 INFO dfs.DataNode: Receiving block", 1226262930.0, "147 INFO dfs.DataNode: Receiving block",
         "info"),
        ("2015-10-18 18:01:47,978 ERROR [main] boom", 1445191307.978, "ERROR [main] boom", "error"),
        ("[Sun Dec 04 04:47:44 2005] [error] mod_jk child", 1133671664.0, "[error] mod_jk child", "error"),
        ("[17/Jun/2005:20:35:30 +0000] GET /", 1119040530.0, "GET /", None),
        ("1131566461 node-1 RAS KERNEL FATAL oops", 1131566461.0, "node-1 RAS KERNEL FATAL oops", "fatal"),
    ],
)
def test_raw_lines_give_event_time_level_and_message(line, ts, message, level):
    from detector.evaluation.logs_lines import LineReader

    rec = LineReader().record(line)
    assert rec.timestamp == pytest.approx(ts)
    assert rec.message == message
    assert rec.level == level


def test_a_line_without_a_time_keeps_the_previous_one():
    from detector.evaluation.logs_lines import LineReader

    r = LineReader()
    r.record("2020-01-01T00:00:00Z start")
    rec = r.record("    at com.example.Foo.bar(Foo.java:12)")
    assert rec.timestamp == 1577836800.0 and r.untimed == 1


def test_session_detector_memory_does_not_grow_with_sessions():
    import pickle

    det = build("session_rarity")
    sizes = []
    for i in range(3000):
        x = {str(i % 7): 1.0, "a": 2.0, "b": float(i % 3)}
        det.score_one(x)
        det.learn_one(x)
        if i in (999, 2999):
            sizes.append(len(pickle.dumps(det)))
    assert sizes[1] <= sizes[0] * 1.1
    huge = {str(i): 1.0 for i in range(1000)}
    det.learn_one(huge)
    assert sum(len(r) for r in det._co.values()) < 5000


def test_an_unknown_label_value_is_an_error_naming_it_and_the_accepted_ones(tmp_path, capsys):
    assert _evaluate_small(tmp_path, "blk_1 INFO start\nblk_2 INFO start\n",
                           "BlockId,Label\nblk_1,Normal\nblk_2,Maybe\n", r"blk_\d+") == 2
    err = capsys.readouterr().err
    assert "line 3: unknown label 'Maybe' for key 'blk_2'" in err and "anomaly" in err and "normal" in err


def test_a_session_key_that_matches_no_line_is_an_error(tmp_path, capsys):
    log_text, labels_text = "blk_1 INFO start\nblk_2 INFO start\n", "BlockId,Label\nblk_1,Normal\nblk_2,Anomaly\n"
    assert _evaluate_small(tmp_path, log_text, labels_text, "zzz") == 2
    assert "--session-key 'zzz' matches no line of" in capsys.readouterr().err
    # Matching lines, but none of the labelled keys: as useless, and as silent, without the error.
    assert _evaluate_small(tmp_path, log_text, labels_text, "start") == 2
    assert "none of them a key of" in capsys.readouterr().err


def test_a_labels_file_with_only_its_header_is_an_error_naming_it(tmp_path, capsys):
    code = _evaluate_small(tmp_path, "blk_1 INFO start\nblk_2 INFO start\n", "BlockId,Label\n", r"blk_\d+", "--json",
                           labels_name="header_only.csv")
    labels = tmp_path / "header_only.csv"
    out = capsys.readouterr()
    assert code == 2 and out.out == ""  # not a run that scores 0
    assert f"{labels}: no labelled session after the header" in out.err and "Traceback" not in out.err


def test_a_log_with_no_time_the_reader_knows_is_an_error_naming_the_file_and_a_line(tmp_path, capsys):
    log, labels = tmp_path / "app.log", tmp_path / "labels.csv"
    _write_log(log, 50, {7})
    labels.write_text("Key,Label\n" + "".join(f"req-{i},{'Anomaly' if i == 7 else 'Normal'}\n" for i in range(50)))
    args = ["evaluate", "sessions", "--log", str(log), "--labels", str(labels), "--session-key", r"req-\d+", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["untimed_lines"] == 0
    # The same lines with day-first dotted dates: every line would sit at time 0 and no session go idle.
    log.write_text("".join(f"14.11.2023 22:{line[14:]}" for line in log.read_text().splitlines(keepends=True)))
    assert main(args) == 2
    out = capsys.readouterr()
    assert out.out == ""  # not a run that scores a model that never closes a session
    assert f"{log}: no line has a time this command reads" in out.err
    assert "the first line: '14.11.2023 22:00:00Z INFO open request req-0 from client 0'" in out.err
    assert len(out.err.strip().splitlines()) == 1


def test_lines_without_a_time_are_counted_and_a_majority_of_them_is_a_warning(tmp_path, capsys):
    log, labels = tmp_path / "app.log", tmp_path / "labels.csv"
    _write_log(log, 50, {7})
    labels.write_text("Key,Label\n" + "".join(f"req-{i},{'Anomaly' if i == 7 else 'Normal'}\n" for i in range(50)))
    timed = log.read_text().splitlines(keepends=True)
    args = ["evaluate", "sessions", "--log", str(log), "--labels", str(labels), "--session-key", r"req-\d+"]
    # A stack-trace line after each error: counted, no warning.
    log.write_text("".join(line + ("    at Quota.check(Quota.java:12)\n" if "ERROR" in line else "")
                           for line in timed))
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["untimed_lines"] == 1 and out.err == ""
    # Two of every three lines without their time: a layout the reader does not know.
    log.write_text("".join(line if i % 3 == 0 else line[21:] for i, line in enumerate(timed)))
    assert main(args) == 0
    out = capsys.readouterr()
    assert "lines: 149\nuntimed_lines: 99\n" in out.out
    assert f"warning: {log}: 99 of 149 lines have no time this command reads" in out.err


def test_labelled_keys_missing_from_the_log_are_left_out_of_the_scores_with_a_warning(tmp_path, capsys):
    # A sample of the log with the labels of the whole of it: the keys beyond the sample are no misses.
    log, labels = tmp_path / "app.log", tmp_path / "labels.csv"
    bad = {300, 420, 555, 610}
    _write_log(log, 700, bad)
    more_bad = {900, 1000, 1100}
    labels.write_text("Key,Label\n" + "".join(f"req-{i},{'Anomaly' if i in bad | more_bad else 'Normal'}\n"
                                             for i in range(1400)))
    args = ["evaluate", "sessions", "--log", str(log), "--labels", str(labels), "--session-key", r"req-\d+"]
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert (result["sessions"], result["unseen_keys"], result["labelled_anomalies"]) == (700, 700, 4)
    assert result["recall"] == 1.0 and result["precision"] == 1.0
    assert (f"warning: 700 of 1400 labelled keys of {labels} are found by --session-key in no line of {log}: absent "
            "from the log, or the regex does not match them; only the 700 found are scored\n") in out.err
    assert main(args) == 0
    assert "unseen_keys: 700\n" in capsys.readouterr().out


def test_a_session_key_regex_that_misses_most_labelled_keys_is_named_as_the_likely_cause(tmp_path, capsys):
    # Every labelled key is in the log, but the regex extracts only req-100 to req-299 of them.
    log, labels = tmp_path / "app.log", tmp_path / "labels.csv"
    bad = {150, 420}
    _write_log(log, 700, bad)
    labels.write_text("Key,Label\n" + "".join(f"req-{i},{'Anomaly' if i in bad else 'Normal'}\n" for i in range(700)))
    assert main(["evaluate", "sessions", "--log", str(log), "--labels", str(labels),
                 "--session-key", r"req-[12]\d\d\b", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["unseen_keys"] == 500
    assert "absent from the log, or the regex does not match them" in out.err and "do not occur" not in out.err
    assert r"More than half are unseen, so the regex 'req-[12]\d\d\b' is the likely cause" in out.err
