"""``outage-detector evaluate sessions``: session anomaly detection on a raw log with session labels.

The log is replayed in file order through the same ``LogModel`` the service runs (event time from
the lines, windows and sessions closed by the watermark). A session key (an HDFS block id) may span
several sessions when it goes idle in between; the key counts as flagged when any of its sessions
was, and its score is the highest of them. Only labelled keys that occur in the log are scored: a
labels file for a larger log than the one given (a sample) would otherwise count every key outside the
sample as a miss. How many were left out is reported, with a warning. A line without a time the reader recognises takes the time of the line before it: the
count is reported, and a log with no readable time at all is an error (its sessions would never go
idle).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from detector.decoders.base import short
from detector.errors import ConfigError

ANOMALY_LABELS = frozenset({"anomaly", "anomalous", "abnormal", "1", "true", "yes", "attack", "fail", "failure"})
NORMAL_LABELS = frozenset({"normal", "0", "false", "no", "benign", "ok", "success"})


def precision_recall_f1(truth: Sequence[bool], predicted: Sequence[bool]) -> tuple[float, float, float]:
    tp = sum(1 for t, p in zip(truth, predicted) if t and p)
    fp = sum(1 for t, p in zip(truth, predicted) if p and not t)
    fn = sum(1 for t, p in zip(truth, predicted) if t and not p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def roc_auc(truth: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve: the chance that a random positive outscores a random negative,
    ties counting half (Mann-Whitney U over average ranks). None when one class is missing."""
    pairs = sorted(zip(scores, truth), key=lambda p: p[0])
    n = len(pairs)
    pos = sum(1 for _, t in pairs if t)
    neg = n - pos
    if not pos or not neg:
        return None
    rank_sum = 0.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and pairs[j + 1][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + j) / 2 + 1  # ranks are 1-based; tied scores share their average rank
        rank_sum += avg_rank * sum(1 for k in range(i, j + 1) if pairs[k][1])
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def read_labels(path: str | Path) -> dict[str, bool]:
    """key -> is anomalous, from a two-column CSV with a header (key, label)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            header = next(rows, None)
            if header is None or len(header) < 2:
                raise ConfigError(f"{path}: expected a header and two columns (key, label)")
            out = {}
            for r in rows:
                if len(r) < 2:
                    continue
                label = r[1].strip().lower()
                if label not in ANOMALY_LABELS and label not in NORMAL_LABELS:
                    # A typo or another dataset's vocabulary would otherwise count as Normal, silently.
                    raise ConfigError(f"{path}, line {rows.line_num}: unknown label {r[1].strip()!r} for key "
                                      f"{r[0].strip()!r}; anomalous: {', '.join(sorted(ANOMALY_LABELS))}; normal: "
                                      f"{', '.join(sorted(NORMAL_LABELS))} (any case)")
                out[r[0].strip()] = label in ANOMALY_LABELS
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read labels: {exc.strerror or exc}") from None
    if not out:
        # Nothing to score: every figure would be 0, like a model that flags nothing.
        raise ConfigError(f"{path}: no labelled session after the header (expected rows of key,label)")
    return out


def replay_sessions(lines, model, reader) -> dict[str, tuple[float, bool]]:
    """Feed raw lines through ``model`` as ``reader`` (a ``LineReader``) reads them; returns key ->
    (highest session score, any flagged)."""
    result: dict[str, tuple[float, bool]] = {}

    def collect(scores):
        for s in scores:
            if s.signal != "log_session":
                continue
            ev = s.evidence
            key = ev["session"]
            prev = result.get(key)
            if prev is None:
                result[key] = (s.score, ev["anomalous"])
            else:
                result[key] = (max(prev[0], s.score), prev[1] or ev["anomalous"])

    high = float("-inf")
    for line in lines:
        rec = reader.record(line)
        if rec.timestamp > high:
            high = rec.timestamp
        collect(model.process(rec))
        collect(model.advance(high))
    collect(model.advance(float("inf")))
    return result


def run_sessions(log_path, labels_path, session_key: str, spec=None) -> dict:
    from detector.evaluation.logs_lines import LineReader
    from detector.logs.model import LogModel

    labels = read_labels(labels_path)
    if spec is not None:
        sessions = dict(spec.sessions or {})
        sessions["key"] = session_key
        model = LogModel(miner=spec.miner, signals=spec.signals, sessions=sessions)
    else:
        model = LogModel(sessions={"key": session_key})
    reader = LineReader()
    start = time.perf_counter()
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            scored = replay_sessions(f, model, reader)
    except OSError as exc:
        raise ConfigError(f"{log_path}: cannot read: {exc.strerror or exc}") from None
    elapsed = time.perf_counter() - start
    keys = list(labels)
    # Every score would be 0 and the run would look like a model that flags nothing.
    if not scored:
        raise ConfigError(f"--session-key '{session_key}' matches no line of {log_path} ({model.lines} lines)")
    if not any(k in scored for k in keys):
        raise ConfigError(f"--session-key '{session_key}' names {len(scored)} sessions in {log_path}, none of them a "
                          f"key of {labels_path} (the log has e.g. {next(iter(scored))!r}, the labels "
                          f"{keys[0]!r})")
    if reader.untimed == model.lines:
        # Every line at time 0: no session would ever go idle, and the scores would measure another model.
        raise ConfigError(f"{log_path}: no line has a time this command reads (a leading ISO 8601, yyMMdd HHmmss, "
                          f"yyyy/MM/dd, Apache, syslog or epoch time, or a JSON line's timestamp field); the first "
                          f"line: {short(reader.first_untimed, 120)}")
    unseen = sum(1 for k in keys if k not in scored)
    keys = [k for k in keys if k in scored]
    truth = [labels[k] for k in keys]
    got = [scored[k] for k in keys]
    p, r, f1 = precision_recall_f1(truth, [g[1] for g in got])
    auc = roc_auc(truth, [g[0] for g in got])
    return {
        "precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4),
        "roc_auc": None if auc is None else round(auc, 4),
        "sessions": len(keys), "anomalies": sum(g[1] for g in got),
        "labelled_anomalies": sum(truth), "unseen_keys": unseen,
        "lines": model.lines, "untimed_lines": reader.untimed,
        "lines_per_second": round(model.lines / elapsed, 1) if elapsed > 0 else None,
    }


def _run(args) -> int:
    spec = None
    if args.model:
        from detector.logs.params import load_log_spec

        spec = load_log_spec(args.model)
    result = run_sessions(args.log, args.labels, args.session_key, spec)
    if result["unseen_keys"]:
        labelled = result["sessions"] + result["unseen_keys"]
        # Unseen means not extracted by the regex, not proven absent from the text: say both causes.
        message = (f"warning: {result['unseen_keys']} of {labelled} labelled keys of {args.labels} are found by "
                   f"--session-key in no line of {args.log}: absent from the log, or the regex does not match them; "
                   f"only the {result['sessions']} found are scored")
        if result["unseen_keys"] * 2 > labelled:
            # A sample of a larger log rarely misses most keys; a regex that misses a key form does.
            message += (f". More than half are unseen, so the regex '{args.session_key}' is the likely cause: check "
                        "that it matches every form the keys take (a sign, a prefix)")
        print(message, file=sys.stderr, flush=True)
    if result["untimed_lines"] * 2 > result["lines"]:
        # Continuation lines (a stack trace) have no time of their own; most lines without one is a layout
        # the reader does not know, and sessions then go idle late or not at all.
        print(f"warning: {args.log}: {result['untimed_lines']} of {result['lines']} lines have no time this command "
              f"reads; each takes the time of the line before it, so sessions may go idle late or not at all",
              file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


def add_command(subparsers) -> None:
    p = subparsers.add_parser("sessions", help="session anomaly detection on a raw log with session labels")
    p.add_argument("--log", required=True, help="raw log file, lines in time order")
    p.add_argument("--labels", required=True,
                   help="CSV with a header: session key, label (Anomaly/Normal, 1/0, true/false, any case; "
                   "another value is an error)")
    p.add_argument("--session-key", required=True, help="regex whose match (or first group) is the session key")
    p.add_argument("--model", help="log model spec (YAML); its sessions section is used with this key")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)
