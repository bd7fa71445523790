"""NAB scoring: the Numenta Anomaly Benchmark's published method, on plain arrays.

For one profile (its TP/FP/FN weights) and a detection threshold, a file scores:

- for each label window, the earliest detection in it earns ``tpWeight * S(p) / S(-1)``, where ``p`` is
  the detection's position relative to the window's right edge (``-1`` is the left edge) and
  ``S(p) = 2 * sigmoid(-5 p) - 1`` (the scaled sigmoid); a window with no detection costs ``fnWeight``;
- every detection outside the windows costs ``fpWeight * S(d)``, where ``d`` is its distance past the
  end of the preceding window in window lengths (a detection before any window, or three windows
  away or more, costs the full ``fpWeight``);
- rows of the probationary period (the first 15% of the file, at most 750 rows) are not scored.

A detection is a row whose anomaly score is at least the threshold. The threshold is chosen per
profile to maximise the total over all files, and the total is normalised so that a detector that
never fires scores 0 and a perfect one 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750  # 0.15 * 5000 in NAB


def scaled_sigmoid(position: float) -> float:
    """NAB's reward/penalty shape: ~0.987 at -1 (window start), 0 at the window's right edge, -1 far past it."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


MAX_TP = scaled_sigmoid(-1.0)


def probation_length(rows: int) -> int:
    """Rows at the start of a file that are not scored."""
    return int(min(math.floor(PROBATION_FRACTION * rows), PROBATION_FRACTION * 5000))


@dataclass(frozen=True)
class Profile:
    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float

    @classmethod
    def from_nab(cls, name: str, entry: dict) -> "Profile":
        cm = entry["CostMatrix"]
        return cls(name, float(cm["tpWeight"]), float(cm["fpWeight"]), float(cm["fnWeight"]))


# NAB's profiles.json, used when no profiles file is given.
DEFAULT_PROFILES = (
    Profile("standard", 1.0, 0.11, 1.0),
    Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)


def window_bounds(timestamps: np.ndarray, windows: list[tuple]) -> list[tuple[int, int]]:
    """Row index ranges ``[left, right]`` (inclusive) of windows given as (start, end) timestamps.

    Windows that cover no row are dropped.
    """
    timestamps = np.asarray(timestamps, dtype=float)
    out = []
    for start, end in windows:
        inside = np.flatnonzero((timestamps >= start) & (timestamps <= end))
        if len(inside):
            out.append((int(inside[0]), int(inside[-1])))
    return sorted(out)


@dataclass
class FileRows:
    """What the scorer needs from one file, independent of profile weights.

    ``window`` holds the window number of each row (-1 outside windows), ``tp_shape`` the in-window
    reward shape ``S(p)/S(-1)``, ``fp_shape`` the out-of-window penalty shape ``S(d)`` (negative).
    """

    scores: np.ndarray
    window: np.ndarray
    tp_shape: np.ndarray
    fp_shape: np.ndarray
    scored: np.ndarray  # bool: outside the probationary period
    n_windows: int  # windows with at least one scored row


def prepare_file(scores, bounds: list[tuple[int, int]]) -> FileRows:
    scores = np.asarray(scores, dtype=float)
    n = len(scores)
    window = np.full(n, -1, dtype=np.int64)
    tp_shape = np.zeros(n)
    fp_shape = np.full(n, -1.0)
    idx = np.arange(n)
    prev_right = None
    prev_width = None
    cursor = 0
    for w, (left, right) in enumerate(bounds):
        # Out-of-window rows between the previous window and this one.
        _fill_fp(fp_shape, cursor, left, prev_right, prev_width)
        width = right - left + 1
        pos = -(right - idx[left : right + 1] + 1) / width
        tp_shape[left : right + 1] = (2.0 / (1.0 + np.exp(5.0 * pos)) - 1.0) / MAX_TP
        window[left : right + 1] = w
        prev_right, prev_width, cursor = right, width, right + 1
    _fill_fp(fp_shape, cursor, n, prev_right, prev_width)
    scored = idx >= probation_length(n)
    n_windows = len(set(window[scored & (window >= 0)].tolist()))
    return FileRows(scores, window, tp_shape, fp_shape, scored, n_windows)


def _fill_fp(fp_shape: np.ndarray, start: int, stop: int, prev_right, prev_width) -> None:
    if start >= stop or prev_right is None:
        return  # before any window: full penalty, already -1
    if prev_width <= 1:
        return
    d = np.abs(prev_right - np.arange(start, stop)) / float(prev_width - 1)
    shape = 2.0 / (1.0 + np.exp(5.0 * np.minimum(d, 3.0))) - 1.0
    shape[d >= 3.0] = -1.0
    fp_shape[start:stop] = shape


def score_at(files: list[FileRows], profile: Profile, threshold: float) -> float:
    """Raw (unnormalised) NAB total of all files at a fixed threshold."""
    total = 0.0
    for f in files:
        det = f.scored & (f.scores >= threshold)
        outside = det & (f.window < 0)
        total += profile.fp_weight * float(f.fp_shape[outside].sum())
        for w in set(f.window[f.scored & (f.window >= 0)].tolist()):
            hits = det & (f.window == w)
            if hits.any():
                total += profile.tp_weight * float(f.tp_shape[np.argmax(hits)])
            else:
                total -= profile.fn_weight
    return total


def optimise_threshold(files: list[FileRows], profile: Profile) -> tuple[float, float]:
    """The threshold maximising the raw total over all files, and that total.

    Exhaustive sweep over every distinct score. The best total is earned by a range of thresholds;
    the middle of that range is returned. Returns a threshold above every score when firing never
    pays: the middle of the range up to 1 when every score is below 1, as anomaly scores are.
    """
    scores, contrib = [], []
    base = 0.0
    for f in files:
        m = f.scored
        s = f.scores[m]
        win = f.window[m]
        c = np.where(win < 0, profile.fp_weight * f.fp_shape[m], 0.0)
        base -= profile.fn_weight * f.n_windows
        # A window's contribution rises as the threshold falls and earlier rows in it fire:
        # credit each row with the increase of the window's best reward so far.
        order = np.argsort(-s, kind="stable")
        inwin = np.flatnonzero(win[order] >= 0)
        if len(inwin):
            rows = order[inwin]
            gains = profile.tp_weight * f.tp_shape[m][rows]
            wid = win[rows]
            for w in np.unique(wid):
                sel = np.flatnonzero(wid == w)
                best = np.maximum.accumulate(np.concatenate(([-profile.fn_weight], gains[sel])))
                c[rows[sel]] = np.diff(best)
        scores.append(s)
        contrib.append(c)
    s = np.concatenate(scores) if scores else np.zeros(0)
    c = np.concatenate(contrib) if contrib else np.zeros(0)
    order = np.argsort(-s, kind="stable")
    s, c = s[order], c[order]
    totals = base + np.cumsum(c)
    # A threshold equal to a score includes every row with that score: take the last of each run.
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if len(s) else np.zeros(0, dtype=int)
    # Anomaly scores lie in [0, 1], and so do thresholds (NAB's thresholds.json, --thresholds): "never
    # fire" is a threshold between the top score and 1. Other scores (report's baselines) may go higher.
    top = float(s[0]) if len(s) else 0.0
    best_t, best = ((top + 1.0) / 2 if top < 1.0 else top + 1.0), base
    if len(last):
        at = totals[last]
        k = int(np.argmax(at))
        if at[k] > best:
            best = float(at[k])
            # Every threshold from this score down to just above the next lower score (and further
            # while the total stays the same) earns the best total. Take the middle of that range
            # rather than its top edge, so that scores a little lower on other data still fire.
            end = k
            while end + 1 < len(at) and at[end + 1] == at[k]:
                end += 1
            below = float(s[last[end] + 1]) if last[end] + 1 < len(s) else float(s[last[end]])
            best_t = (float(s[last[k]]) + below) / 2
    return best_t, best


def null_and_perfect(files: list[FileRows], profile: Profile) -> tuple[float, float]:
    """Raw totals of the detector that never fires and of the perfect detector. Both count the windows
    with a scored row: a window wholly inside the probationary period can be neither missed nor found."""
    windows = sum(f.n_windows for f in files)
    return -profile.fn_weight * windows, profile.tp_weight * windows


def normalise(raw: float, null: float, perfect: float) -> float:
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)
