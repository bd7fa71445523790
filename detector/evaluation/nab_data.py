"""Reading a corpus in NAB's layout: ``<dir>/<category>/<file>.csv`` plus a label-windows JSON."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from detector.decoders.base import short
from detector.decoders.timestamps import column_to_seconds, parse_timestamp
from detector.errors import ConfigError

LABELS_SHAPE = '{"<key>": [[start, end], ...]}'

log = logging.getLogger(__name__)


@dataclass
class NabFile:
    key: str  # "<category>/<file>.csv", the key of the labels file
    timestamps: np.ndarray  # seconds since the epoch, float64
    values: np.ndarray  # float64
    raw_timestamps: list[str]  # as written in the file, echoed into results files
    windows: list[tuple[float, float]]  # label windows as (start, end) seconds
    labelled: bool  # the labels file names it (possibly with no window)


def _to_seconds(texts: pl.Series) -> np.ndarray:
    """Timestamps as written (NAB's "2014-04-01 00:00:00", any other ISO form, or epoch numbers)."""
    try:
        seconds = column_to_seconds(texts)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if seconds.null_count():
        raise ConfigError("a row has no timestamp")
    return seconds.to_numpy().astype(np.float64)


def read_labels(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """NAB's combined_windows.json, ``{"<category>/<file>.csv": [[start, end], ...]}``: the label windows
    of each key as (start, end) seconds. A window that is not a pair of timestamps, or that starts after it
    ends, is an error naming the key and the window (it would otherwise fail later or match no row)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"labels file {str(path)!r} does not exist (expected NAB's combined_windows.json)")
    what = f"{path}: cannot read label windows"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{what}: expected an object of window lists, {LABELS_SHAPE}, as NAB's "
                          f"combined_windows.json; the file holds {_json_kind(raw)}")
    labels: dict[str, list[tuple[float, float]]] = {}
    for key, windows in raw.items():
        if not isinstance(windows, list):
            raise ConfigError(f"{what}: the windows of {key!r} are {_json_text(windows)}, not a list of "
                              f"[start, end] windows ({LABELS_SHAPE})")
        labels[key] = []
        for w in windows:
            if not isinstance(w, list) or len(w) != 2:
                raise ConfigError(f"{what}: window {_json_text(w)} of {key!r} is not a [start, end] pair "
                                  f"({LABELS_SHAPE})")
            try:
                labels[key].append(label_window(*w))
            except ValueError as exc:
                raise ConfigError(f"{what}: window {_json_text(w)} of {key!r}: {exc}") from None
    return labels


def label_window(start: object, end: object) -> tuple[float, float]:
    """A label window's start and end as seconds; ``ValueError`` when either is not a timestamp or the
    window starts after it ends."""
    s, e = parse_timestamp(start), parse_timestamp(end)
    if s > e:
        raise ValueError("its start is after its end")
    return s, e


def _json_text(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_kind(value) -> str:
    return "null" if value is None else f"a JSON {type(value).__name__}".replace(" str", " string")


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


def _key(path: Path, data_dir: Path) -> str:
    """The labels file's key of a file: its path under NAB's data/ folder, ``<category>/<file>.csv``."""
    return path.relative_to(data_dir).as_posix()


def read_file(path: Path, data_dir: Path, labels: dict[str, list[tuple[float, float]]]) -> NabFile:
    key = _key(path, data_dir)
    try:
        columns = pl.scan_csv(path, infer_schema=False).collect_schema().names()
        missing = [c for c in ("timestamp", "value") if c not in columns]
        if missing:
            raise ConfigError(f"{path}: expected NAB's columns timestamp,value; the header "
                              f"{short(','.join(columns))} has no {' or '.join(missing)} column")
        # Both as text: the values are checked below, where the line of a bad one can be named.
        df = pl.read_csv(path, columns=["timestamp", "value"], infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        # polars appends its query plan: the first line says what went wrong.
        raise ConfigError(f"{path}: cannot read 'timestamp,value' columns: {str(exc).splitlines()[0]}") from None
    if not df.height:
        # A file with nothing to score would add no rows and quietly leave its windows missed.
        raise ConfigError(f"{path}: no row after the header (expected timestamp,value rows)")
    raw = df["timestamp"]
    try:
        ts = _to_seconds(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    # Against the newest time so far, as the live service judges a point: after a stretch exported
    # twice, every row of the repeat is behind, not only its first.
    back = np.flatnonzero(ts[1:] < np.maximum.accumulate(ts)[:-1])
    if back.size:
        # NAB scores every row, and so does this; the live service and replay would not score these
        # (OutOfOrder). A stretch appended twice tunes a model on data the service never sees.
        first = int(back[0]) + 1
        what = "1 row is" if back.size == 1 else f"{back.size} rows are"
        log.warning("%s: %s earlier than a row before (first: line %d, %s after %s); scored, as NAB scores every "
                    "row, though the live service would not score them", path, what, first + 2, raw[first],
                    raw[first - 1])
    return NabFile(key, ts, _to_values(df["value"], path), raw.to_list(), list(labels.get(key, [])), key in labels)


def read_corpus(data_dir: str | Path, labels_path: str | Path) -> list[NabFile]:
    """Every CSV under ``data_dir`` with its label windows. When the labels file names none of them, every
    file would be scored without windows, to a meaningless 0 and a "never fire" threshold: an error."""
    data_dir = Path(data_dir)
    labels = read_labels(labels_path)
    paths = find_csvs(data_dir)
    keys = [_key(p, data_dir) for p in paths]
    if not any(k in labels for k in keys):
        raise ConfigError(_nothing_labelled(keys, data_dir, labels, labels_path))
    return [read_file(p, data_dir, labels) for p in paths]


def _nothing_labelled(keys: list[str], data_dir: Path, labels: dict, labels_path) -> str:
    what = f"no file under {data_dir} is named in the labels file {labels_path}"
    if not labels:
        return f"{what}: it names no file"
    for key in keys:
        label_key = next((k for k in labels if k.endswith("/" + key)), None)
        if label_key is not None:
            # A category folder given for NAB's data/ folder: the keys here lack the category.
            category = Path(label_key[: -len(key) - 1]).parts
            here, n = data_dir.absolute(), len(category)
            folder = (here.parents[n - 1] if n and here.parts[-n:] == category
                      else f"the folder that holds {'/'.join(category)}/")
            return (f"{what}, whose keys are paths under NAB's data/ folder ({label_key!r} for {key!r} here): "
                    f"give {folder} as --data-dir")
    return (f"{what} (it names e.g. {next(iter(labels))!r}, the folder holds {keys[0]!r}): every file would be "
            f"scored as having no anomaly window")


def _to_values(texts: pl.Series, path: Path) -> np.ndarray:
    """The value column as float64. Every row needs a finite number, as in NAB's own scorer: text read as
    NaN would be a missing point that scores 0, and quietly change the result."""
    values = texts.str.strip_chars().cast(pl.Float64, strict=False)
    bad = (values.is_null() | ~values.is_finite()).arg_true()
    if not len(bad):
        return values.to_numpy()
    i = int(bad[0])
    text = texts[i]
    if text is None or not text.strip():
        what = "no value"
    else:
        what = f"value {short(text)} is {'not finite' if values[i] is not None else 'not a number'}"
    more = f" ({len(bad)} rows have no finite value)" if len(bad) > 1 else ""
    raise ConfigError(f"{path}, line {i + 2}: {what}{more}")  # line 1 is the header
