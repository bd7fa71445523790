"""Reading a corpus in NAB's layout: ``<dir>/<category>/<file>.csv`` plus a label-windows JSON."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from detector.decoders.timestamps import column_to_seconds
from detector.errors import ConfigError


@dataclass
class NabFile:
    key: str  # "<category>/<file>.csv", the key of the labels file
    timestamps: np.ndarray  # seconds since the epoch, float64
    values: np.ndarray  # float64
    raw_timestamps: list[str]  # as written in the file, echoed into results files
    windows: list[tuple[float, float]]  # label windows as (start, end) seconds


def _to_seconds(texts: pl.Series) -> np.ndarray:
    """Timestamps as written (NAB's "2014-04-01 00:00:00", any other ISO form, or epoch numbers)."""
    try:
        seconds = column_to_seconds(texts)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if seconds.null_count():
        raise ConfigError("a row has no timestamp")
    return seconds.to_numpy().astype(np.float64)


def read_labels(path: str | Path) -> dict[str, list]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"labels file {str(path)!r} does not exist (expected NAB's combined_windows.json)")
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read label windows: {exc}") from None
    if not isinstance(labels, dict):
        raise ConfigError(f"{path}: expected an object mapping '<category>/<file>.csv' to windows")
    return labels


def find_csvs(data_dir: str | Path) -> list[Path]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ConfigError(f"data directory {str(data_dir)!r} does not exist (expected NAB's data/ folder)")
    # os.walk, not rglob: a category folder linked into the data folder is followed (rglob's ** does not
    # follow links before Python 3.13).
    files = sorted(Path(root, name) for root, _, names in os.walk(data_dir, followlinks=True)
                   for name in names if name.endswith(".csv"))
    if not files:
        raise ConfigError(f"data directory {str(data_dir)!r} holds no CSV files")
    return files


def read_file(path: Path, data_dir: Path, labels: dict[str, list]) -> NabFile:
    key = path.relative_to(data_dir).as_posix()
    try:
        df = pl.read_csv(path, columns=["timestamp", "value"], schema_overrides={"timestamp": pl.Utf8})
    except Exception as exc:  # polars raises several error types for malformed CSVs
        raise ConfigError(f"{path}: cannot read 'timestamp,value' columns: {exc}") from None
    raw = df["timestamp"]
    try:
        ts = _to_seconds(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    values = df["value"].cast(pl.Float64, strict=False).to_numpy()
    windows = []
    for w in labels.get(key, []):
        start, end = _to_seconds(pl.Series([str(w[0]), str(w[1])]))
        windows.append((float(start), float(end)))
    return NabFile(key, ts, values, raw.to_list(), windows)
