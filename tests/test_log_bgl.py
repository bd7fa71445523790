"""On BGL, where the first field labels alert lines, windows holding alerts must stand out."""

from __future__ import annotations

from pathlib import Path

from detector.evaluation.sessions import roc_auc
from detector.logs.model import LogModel
from detector.records import LogRecord

BGL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "loghub" / "2k" / "BGL" / "BGL_2k.log"


def test_windows_with_alert_lines_score_higher_error_ratios():
    window = 3600.0
    model = LogModel(signals={"window_seconds": window, "min_windows": 3})
    alert_windows: set[int] = set()
    scores = []
    for line in BGL.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split(" ", 9)
        ts = float(fields[1])
        if fields[0] != "-":
            alert_windows.add(int(ts // window))
        # The label is not given to the model: only time, level and message.
        scores += model.process(LogRecord(ts, "bgl", fields[9], fields[8].lower()))
        scores += model.advance(ts)
    scores += model.advance(float("inf"))
    errs = [s for s in scores if s.signal == "log_error_ratio"]
    truth = [int((s.timestamp - window) // window) in alert_windows for s in errs]
    assert sum(truth) >= 10
    assert roc_auc(truth, [s.score for s in errs]) > 0.75
