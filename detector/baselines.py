"""Batch baselines to hold the online models against, on the very series a replay scored.

- ``isolation_forest``: scikit-learn's IsolationForest through the project's detector adapter
  (``detector.detectors.sklearn_adapter``), run score-before-learn over the series with periodic
  refits, on the value and its change from the previous point;
- ``rolling_zscore``: how many trailing standard deviations the value lies from the trailing mean
  (the window ends before the point, so the point never explains itself away).

Both give "higher is more anomalous" scores, one per point, comparable to the online ``score``
column after the same threshold search.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from detector.detectors import build

BASELINES = ("isolation_forest", "rolling_zscore")


def isolation_forest(values: np.ndarray, seed: int = 0, refit_every: int = 256, buffer_size: int = 1024,
                     n_estimators: int = 50) -> np.ndarray:
    det = build("isolation_forest", {"features": ("value", "delta"), "refit_every": refit_every,
                                     "buffer_size": buffer_size, "n_estimators": n_estimators, "seed": seed})
    out = np.zeros(len(values))
    prev = float(values[0]) if len(values) else 0.0
    for i, v in enumerate(values.tolist()):
        x = {"value": v, "delta": v - prev}
        out[i] = det.score_one(x)
        det.learn_one(x)
        prev = v
    return out


def rolling_zscore(values: np.ndarray, window: int = 100, min_periods: int = 20) -> np.ndarray:
    s = pl.Series(values, dtype=pl.Float64)
    past = s.shift(1)
    mean = past.rolling_mean(window, min_samples=min_periods)
    std = past.rolling_std(window, min_samples=min_periods)
    z = ((s - mean).abs() / std.clip(lower_bound=1e-9)).fill_null(0.0).fill_nan(0.0)
    return z.to_numpy()


def run(name: str, values: np.ndarray) -> np.ndarray:
    if name == "isolation_forest":
        return isolation_forest(values)
    if name == "rolling_zscore":
        return rolling_zscore(values)
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")


def to_unit(scores: np.ndarray) -> np.ndarray:
    """Scores mapped to [0, 1] by rank, so thresholds of different methods mean the same share of points."""
    if len(scores) == 0:
        return scores
    ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable")
    return ranks / max(len(scores) - 1, 1)
