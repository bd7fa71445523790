"""Offline replay: history from files or a Kafka topic through the live processing path, in event time.

Rows become the very ``RawRecord``s the live source would have produced (structured rows are encoded
as the JSON the input's decoder reads; a ``payload`` column is passed through byte for byte), and go
through :meth:`Pipeline.process` in batches, then :meth:`Pipeline.flush` at the end. Nothing here reads
the wall clock on the data path (the pipeline's only use of it, refusing records dated in the future,
never touches history), so the same input gives the same output, and the same records give the scores
the live service gave.

Files are streamed in chunks (Parquet with polars' lazy scan, JSON lines in blocks of lines read by
polars, CSV by Python's csv reader), so a file larger than memory replays in bounded memory, and a
line that holds no row becomes a dead letter rather than stopping the replay; outputs are written as Parquet row groups while the replay runs:

- ``OUT.parquet``: one row per score (timestamp, entity, signal, series, score, confidence, value,
  evidence as JSON);
- ``OUT.alerts.parquet``: alert transitions (firing / resolved);
- ``OUT.templates.parquet``: the log templates mined, with their counts (when there are log inputs);
- ``OUT.incidents.parquet``: incident events (opened / updated / resolved);
- ``OUT.dead_letters.parquet``: the records the live service would have dead-lettered, with the reason.
"""

from __future__ import annotations

import codecs
import csv
import heapq
import io
import itertools
import math
import os
import sys
import time
from collections import deque
from pathlib import Path
from zoneinfo import ZoneInfo
from typing import Iterable, Iterator, NamedTuple

import orjson
import polars as pl

from detector.config import InputSpec, PipelineSpec
from detector.decoders import MAX_RECORD_BYTES
from detector.decoders.base import json_type, load_json
from detector.decoders.logfmt import format_pair
from detector.decoders.timestamps import column_to_seconds
from detector.errors import ConfigError, DecodeError, KafkaUnavailable
from detector.pipeline import BatchResult, DeadLetter, Pipeline
from detector.records import RawRecord

DEFAULT_BATCH_ROWS = 5_000
FILE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "ndjson",
                 ".ndjson": "ndjson", ".json": "ndjson"}
ENTITY_COLUMNS = ("entity", "service")


# -- reading files -----------------------------------------------------------------------------


class Unreadable(NamedTuple):
    """A line of a text file that holds no row: it becomes a dead letter, and the replay goes on."""

    line: int
    text: bytes
    reason: str


Frames = Iterator[tuple[pl.DataFrame, list[Unreadable]]]


def open_rows(path: str | Path, batch_rows: int) -> tuple[list[str], Frames]:
    """The file's column names, and its rows in frames of at most ``batch_rows``, with the lines among
    them that could not be read. Parquet, CSV or JSON lines, chosen by suffix.

    CSV and JSON-lines columns are all read as text and converted where they are used (timestamps by
    ``seconds``, values by the decoder), whatever they look like: a type guessed from the first rows
    would fail on a later row (integers, then "1.5"), and an object guessed from the first rows would
    drop later keys.
    """
    path = Path(path)
    kind = FILE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{path}: unknown input type; use one of {', '.join(sorted(FILE_SUFFIXES))}")
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        if kind == "parquet":
            lf = pl.scan_parquet(path)
            return lf.collect_schema().names(), ((df, []) for df in iter_frames(lf, batch_rows))
        if kind == "csv":
            return _csv_rows(path, batch_rows)
        return _ndjson_rows(path, batch_rows)
    except pl.exceptions.PolarsError as exc:
        raise ConfigError(f"{path}: cannot read it: {str(exc).splitlines()[0]}") from None


def _csv_rows(path: Path, batch_rows: int) -> tuple[list[str], Frames]:
    # Python's csv reader, not polars: polars stops at the first row with too many fields, and a row
    # that cannot be read must cost that row only, with its line number. utf-8-sig drops the byte-order
    # mark Excel writes, which would otherwise be part of the first column's name.
    f = open(path, newline="", encoding="utf-8-sig", errors="replace")
    lines: list[str] = []  # the lines of the row being read, for the dead letter of one that cannot be

    def recorded() -> Iterator[str]:
        for text in f:
            lines.append(text)
            yield text

    # A field may be as long as the largest record the live path takes (a stack trace in a message), not
    # the csv module's 128 KiB; the limit is one for the whole process, so it is only ever raised.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))
    reader = csv.reader(recorded())
    try:
        header = next(reader)
    except StopIteration:
        f.close()
        raise ConfigError(f"{path}: cannot read it: empty CSV") from None
    except csv.Error as exc:
        f.close()
        raise ConfigError(f"{path}: cannot read it: line 1: {exc}") from None
    width = len(header)
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:  # one column would silently replace the other
        f.close()
        raise ConfigError(f"{path}: cannot read it: the header names {', '.join(map(repr, twice))} more than once")
    schema = {name: pl.String for name in header}

    def frames() -> Frames:
        with f:
            rows: list[list[str]] = []
            bad: list[Unreadable] = []
            done = len(lines)  # lines read so far
            while True:
                line = done + 1
                lines.clear()
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    _rest_of_row(f, lines)
                    bad.append(Unreadable(line, _text(lines), f"line {line}: {exc}"))
                else:
                    if len(row) > width:
                        bad.append(Unreadable(line, _text(lines), f"line {line}: {len(row)} fields, the header has {width}"))
                    elif row:  # a blank line holds no row
                        rows.append(row + [""] * (width - len(row)))
                done += len(lines)
                if len(rows) + len(bad) >= batch_rows:
                    yield _csv_frame(rows, header, schema), bad
                    rows, bad = [], []
            if rows or bad:
                yield _csv_frame(rows, header, schema), bad

    return header, frames()


def _rest_of_row(f, lines: list[str]) -> None:
    """Read the lines left of a row the csv reader gave up on, which drops only the rest of the line it
    was on: while a quoted field is open (an odd number of quotes so far) the next line belongs to it,
    and would otherwise be read as rows of its own."""
    quotes = sum(text.count('"') for text in lines)
    while quotes % 2:
        text = next(f, "")
        if not text:
            return
        lines.append(text)
        quotes += text.count('"')


def _text(lines: list[str]) -> bytes:
    """A row's lines as the file holds them, for its dead letter."""
    return "".join(lines).rstrip("\r\n").encode("utf-8")


def _csv_frame(rows: list[list[str]], header: list[str], schema: dict) -> pl.DataFrame:
    # An empty field is a missing value, as polars reads CSV.
    cols = zip(*rows) if rows else [()] * len(header)
    return pl.DataFrame({name: [v or None for v in col] for name, col in zip(header, cols)}, schema=schema)


def _line_blocks(path: Path, lines: int) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, the lines) in blocks of ``lines``, without a UTF-8 byte-order mark."""
    with open(path, "rb") as f:
        first = 1
        while True:
            block = list(itertools.islice(f, lines))
            if not block:
                return
            if first == 1:
                block[0] = block[0].removeprefix(codecs.BOM_UTF8)
            yield first, block
            first += len(block)


def _ndjson_rows(path: Path, batch_rows: int) -> tuple[list[str], Frames]:
    try:
        names = pl.scan_ndjson(path, infer_schema_length=None).collect_schema().names()
    except pl.exceptions.PolarsError:
        # A line that is not a JSON object: learn the keys from the lines that are.
        names = {}
        for _, block in _line_blocks(path, batch_rows):
            for line in block:
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    names.update(dict.fromkeys(obj))
        names = list(names)
    if not names:
        raise ConfigError(f"{path}: cannot read it: no line holds a JSON object")
    schema = {name: pl.String for name in names}

    def frames() -> Frames:
        for first, block in _line_blocks(path, batch_rows):
            bad: list[Unreadable] = []
            try:
                df = pl.read_ndjson(io.BytesIO(b"".join(block)), schema=schema)
            except pl.exceptions.PolarsError:
                # One bad line spoils the block for polars: read it line by line, the good lines together.
                good = []
                for n, line in enumerate(block, first):
                    if not line.strip():
                        continue
                    try:
                        pl.read_ndjson(io.BytesIO(line), schema=schema)
                    except pl.exceptions.PolarsError as exc:
                        text = line.rstrip(b"\r\n")
                        bad.append(Unreadable(n, text, f"line {n}: {_not_a_row(line, exc)}"))
                    else:
                        good.append(line if line.endswith(b"\n") else line + b"\n")
                block = good
                df = pl.read_ndjson(io.BytesIO(b"".join(good)), schema=schema) if good else pl.DataFrame(schema=schema)
            yield _json_booleans(df, block), bad

    return names, frames()


def _not_a_row(line: bytes, exc: Exception) -> str:
    """Why a JSON line holds no row, in the decoders' words: polars' own message shows its parser's
    internals (``[Static(U64(1)), ...]``, ``ExpectedNull at character 0``)."""
    try:
        value = load_json(line)
    except DecodeError as err:
        return str(err)  # "invalid JSON at byte 12: ...", or binary data
    if type(value) is not dict:
        return f"expected a JSON object, got {json_type(value)}"
    return f"unreadable: {str(exc).splitlines()[0]}"  # an object polars still refuses: its words are all there is


def _json_booleans(df: pl.DataFrame, lines: list[bytes]) -> pl.DataFrame:
    """JSON ``true``/``false`` values as 1/0, as the metric decoders count them (Prometheus' ``up``).

    Read as text they are "true" and "false", which the decoders refuse as not a number, as they rightly
    refuse the JSON strings "true" and "false"; the few rows with that text are parsed again to tell
    which they were. ``lines`` are those the frame was read from.
    """
    if "value" not in df.columns:
        return df
    hits = df["value"].is_in(["true", "false"]).arg_true().to_list()
    if not hits:
        return df
    rows = [line for line in lines if line.strip()]  # polars skips blank lines
    values = df["value"].to_list()
    for i in hits:
        try:
            value = orjson.loads(rows[i]).get("value")
        except orjson.JSONDecodeError:  # polars' parser is the laxer: the text stays, for the decoder to refuse
            continue
        if type(value) is bool:
            values[i] = "1" if value else "0"
    return df.with_columns(pl.Series("value", values, dtype=pl.String))


def count_rows(path: str | Path) -> int | None:
    """Rows in the file when that is cheap to know (Parquet footers), else None."""
    path = Path(path)
    if FILE_SUFFIXES.get(path.suffix.lower()) == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (OSError, ValueError) as exc:  # not Parquet (pyarrow's ArrowInvalid is a ValueError)
            raise ConfigError(f"{path}: cannot read it: {str(exc).splitlines()[0]}") from None
    return None


def iter_frames(lf: pl.LazyFrame, batch_rows: int) -> Iterator[pl.DataFrame]:
    """The frame in chunks of about ``batch_rows`` rows, in file order, never all at once."""
    if not hasattr(lf, "collect_batches"):  # polars before collect_batches: slices, each its own scan
        offset = 0
        while True:
            chunk = lf.slice(offset, batch_rows).collect()
            if chunk.height == 0:
                return
            yield chunk
            offset += chunk.height
    for chunk in lf.collect_batches(chunk_size=batch_rows, maintain_order=True):
        # The streaming engine may hand over larger chunks; slicing is free (zero copy).
        for start in range(0, chunk.height, batch_rows):
            yield chunk.slice(start, batch_rows)


def seconds(col: pl.Series, zone: str = "UTC") -> pl.Series:
    """A timestamp column as float seconds since the epoch: datetimes, ISO strings or epoch numbers;
    one without an offset is local time in ``zone`` (the input's ``timezone``), as the decoders read it."""
    try:
        return column_to_seconds(col, ZoneInfo(zone))
    except ValueError as exc:
        raise ConfigError(f"column 'timestamp': {exc}") from None


# -- rows -> raw records -----------------------------------------------------------------------


def infer_kind(columns: list[str]) -> str | None:
    if "payload" in columns:
        return None
    if "message" in columns:
        return "log"
    if "value" in columns:
        return "metric"
    raise ConfigError(
        f"cannot tell what the rows are from their columns {columns}: log rows need 'message', metric rows "
        "'value' (with 'timestamp'), raw records 'payload'"
    )


def choose_input(spec: PipelineSpec, columns: list[str], topic: str | None) -> InputSpec | None:
    """The pipeline input the rows belong to; None when a ``topic`` column names it per row."""
    spec.require_inputs()
    if "timestamp" not in columns and "payload" not in columns:
        # Said up front: every row would be dead-lettered for want of a time. A raw record carries its own.
        raise ConfigError(
            f"no 'timestamp' column among the columns {columns}: metric and log rows need one (rename the "
            "time column to 'timestamp'; raw records in a 'payload' column carry their own)"
        )
    if topic is not None:
        try:
            return spec.input_for(topic)
        except KeyError:
            raise ConfigError(f"topic {topic!r} is not an input of pipeline {spec.name!r}") from None
    if "topic" in columns:
        return None
    kind = infer_kind(columns)
    fitting = [inp for inp in spec.inputs if kind is None or inp.kind == kind]
    if len(fitting) != 1:
        names = ", ".join(i.topic for i in fitting) or "none"
        raise ConfigError(f"the rows fit {len(fitting)} inputs of pipeline {spec.name!r} ({names}); name one with --topic")
    return fitting[0]


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record (Java client and kafka-python)."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


class RowEncoder:
    """Turns frames of rows into RawRecords, as the producers of the live topics would have sent them.

    Metric rows ``{timestamp, name?, labels?, entity?, value}`` become ``metric_json``; log rows
    ``{timestamp, message, level?, entity/service?}`` become the JSON (or logfmt line) of the input's log
    format, or the bare line for ``plain``. A ``payload`` column is used as the record value unchanged. Optional
    ``key``, ``partition`` and ``offset`` columns are honoured; otherwise the key is the entity, the
    partition is Kafka's default partitioner over ``partitions``, and offsets count up per partition.
    """

    def __init__(self, spec: PipelineSpec, default_input: InputSpec | None, partitions: int = 1,
                 default_name: str = "value"):
        if partitions < 1:
            raise ConfigError("partitions must be at least 1")
        self.inputs = {inp.topic: inp for inp in spec.inputs}
        self.default_input = default_input
        self.partitions = partitions
        self.default_name = default_name
        self.next_offsets: dict[tuple[str, int], int] = {}

    def encode(self, df: pl.DataFrame) -> tuple[list[RawRecord], list[DeadLetter]]:
        """The rows' records, and the dead letters of rows that make none (a bad offset or labels, a
        ``topic`` that names no input)."""
        cols = df.columns
        n = df.height
        topics = df["topic"].cast(pl.String).to_list() if self.default_input is None else [self.default_input.topic] * n
        ts = self._times(df, topics) if "timestamp" in cols else [None] * n
        entity_col = next((c for c in ENTITY_COLUMNS if c in cols), None)
        entities = df[entity_col].cast(pl.String).to_list() if entity_col else [None] * n
        if "payload" in cols:
            payload = df["payload"]
            values = payload.to_list() if payload.dtype == pl.Binary else [
                None if v is None else v.encode("utf-8") for v in payload.cast(pl.String).to_list()
            ]
        else:
            values = self._encode_rows(df, topics, ts, entities)
        keys = self._keys(df, entities)
        problems = _row_problems(df)
        parts = df["partition"].cast(pl.Int64, strict=False).to_list() if "partition" in cols else None
        offsets = df["offset"].cast(pl.Int64, strict=False).to_list() if "offset" in cols else None
        out = []
        dead = []
        next_offsets = self.next_offsets
        for i in range(n):
            topic, key = topics[i], keys[i]
            if i in problems:  # the row as it was, for the dead letter: there is no record to show
                row = orjson.dumps(df.row(i, named=True), default=str)
                dead.append(DeadLetter(RawRecord(topic, None, None, ts[i], key, row), problems[i], "UnreadableRow"))
                continue
            if topic not in self.inputs:
                # What the live service does with a record of a topic it does not read: one row with a
                # mistyped topic costs that row, not the replay. A payload is kept as the record it is.
                value = values[i] if values[i] is not None else orjson.dumps(df.row(i, named=True), default=str)
                dead.append(DeadLetter(RawRecord(topic, None, None, ts[i], key, value), self._no_input(topic),
                                       "UnknownTopic"))
                continue
            if parts is not None:
                p = parts[i]
            elif key is not None and self.partitions > 1:
                p = murmur2_partition(key, self.partitions)
            else:
                p = 0
            if offsets is not None:
                off = offsets[i]
            else:
                off = next_offsets.get((topic, p), 0)
                next_offsets[(topic, p)] = off + 1
            out.append(RawRecord(topic, p, off, ts[i], key, values[i] or b""))
        return out, dead

    def _times(self, df: pl.DataFrame, topics: list) -> list:
        """The timestamp column in seconds, each row read in the timezone of the input it goes to (the
        live decoder reads a time without an offset so); a row of no input is read as UTC."""
        zones = [self.inputs[t].timezone if t in self.inputs else "UTC" for t in topics]
        distinct = set(zones)
        if len(distinct) <= 1:
            return seconds(df["timestamp"], zones[0] if zones else "UTC").to_list()
        out: list = [None] * len(zones)
        for zone in distinct:
            rows = [i for i, z in enumerate(zones) if z == zone]
            for i, t in zip(rows, seconds(df["timestamp"].gather(rows), zone).to_list()):
                out[i] = t
        return out

    def _keys(self, df: pl.DataFrame, entities: list) -> list[bytes | None]:
        if "key" in df.columns:
            col = df["key"]
            if col.dtype == pl.Binary:
                return col.to_list()
            return [None if k is None else k.encode("utf-8") for k in col.cast(pl.String).to_list()]
        return [None if e is None else e.encode("utf-8") for e in entities]

    def _no_input(self, topic: str | None) -> str:
        inputs = ", ".join(self.inputs)
        if not topic:
            return f"column 'topic' is empty, so the row names no input (the pipeline's inputs: {inputs})"
        return f"no input is configured for topic {topic!r} (the pipeline's inputs: {inputs})"

    def _encode_rows(self, df: pl.DataFrame, topics: list, ts: list, entities: list) -> list[bytes | None]:
        """Each row encoded for the input its topic names; None for a row whose topic names none."""
        if self.default_input is not None:
            return self._encode_input(self.default_input, df, ts, entities)
        # Encode per input, then put rows back in file order.
        by_topic: dict[str | None, list[int]] = {}
        for i, t in enumerate(topics):
            by_topic.setdefault(t, []).append(i)
        out: list[bytes | None] = [None] * len(topics)
        for t, rows in by_topic.items():
            inp = self.inputs.get(t)
            if inp is None:
                continue
            if len(rows) == len(topics):
                return self._encode_input(inp, df, ts, entities)
            encoded = self._encode_input(inp, df[pl.Series(rows)], [ts[i] for i in rows], [entities[i] for i in rows])
            for i, v in zip(rows, encoded):
                out[i] = v
        return out

    def _encode_input(self, inp: InputSpec, df: pl.DataFrame, ts: list, entities: list) -> list[bytes]:
        if inp.kind == "metric":
            return encode_metrics(inp, df, ts, entities, self.default_name)
        return encode_logs(inp, df, ts, entities)


def _row_problems(df: pl.DataFrame) -> dict[int, str]:
    """Row index -> why the row makes no record: an offset or partition that is not a whole number,
    labels that are not a JSON object."""
    problems = {}
    for name in ("offset", "partition"):
        if name in df.columns:
            col = df[name]
            whole = col.cast(pl.Int64, strict=False)
            for i in (whole.is_null() | (col.cast(pl.String) == "")).arg_true().to_list():
                value = col[i]
                # A null is a cell left empty, or a JSON line without the field that other lines have.
                problems[i] = (f"column {name!r} is empty or missing on this row, not a whole number"
                               if value is None or value == "" else f"column {name!r} is {value!r}, not a whole number")
    if "labels" in df.columns and df["labels"].dtype == pl.String:
        for i, text in enumerate(df["labels"].to_list()):
            if text and not isinstance(_labels(text), dict):
                problems.setdefault(i, f"column 'labels' is {text!r}, not a JSON object")
    return problems


def _labels(text: str):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _labels_column(df: pl.DataFrame) -> list[dict]:
    if "labels" not in df.columns:
        return [{} for _ in range(df.height)]
    col = df["labels"]
    if col.dtype == pl.String:
        # Rows whose labels are not an object are dead-lettered by ``encode``; {} only keeps them in step.
        return [lab if v and isinstance(lab := _labels(v), dict) else {} for v in col.to_list()]
    return [{k: v for k, v in (d or {}).items() if v is not None} for d in col.to_list()]


def encode_metrics(inp: InputSpec, df: pl.DataFrame, ts: list, entities: list, default_name: str) -> list[bytes]:
    if inp.format != "metric_json":
        raise ConfigError(
            f"input {inp.topic!r} reads {inp.format}; structured metric rows are encoded as metric_json only, "
            "so replay such history from a 'payload' column holding the records as sent"
        )
    if "value" not in df.columns:
        raise ConfigError(f"metric rows for {inp.topic!r} need a 'value' column")
    names = df["name"].cast(pl.String).to_list() if "name" in df.columns else [default_name] * df.height
    col = df["value"]
    values = col.cast(pl.Float64, strict=False).to_list()
    # Text that is not a number is passed on as written, for the decoder to dead-letter with it; so are
    # NaN and infinities, which JSON cannot hold (they would be written as null, losing the value).
    texts = col.to_list() if col.dtype == pl.String else [None if v is None else str(v) for v in values]
    values = [v if v is not None and math.isfinite(v) else t for v, t in zip(values, texts)]
    labels = _labels_column(df)
    entity_label = inp.fields.entity or "service"
    dumps = orjson.dumps
    out = []
    for name, value, lab, t, ent in zip(names, values, labels, ts, entities):
        if ent is not None and entity_label not in lab:
            lab = {**lab, entity_label: ent}
        obj = {"name": name, "labels": lab, "value": value}
        if t is not None:
            obj["timestamp"] = t
        out.append(dumps(obj))
    return out


# Where each structured log format keeps a field; a configured field mapping wins.
_LOG_PATHS = {
    "json": {"message": "message", "timestamp": "timestamp", "level": "level", "entity": "service"},
    "vector": {"message": "message", "timestamp": "timestamp", "level": "level", "entity": "service"},
    "fluentbit": {"message": "log", "timestamp": "@timestamp", "level": "level", "entity": "service"},
    "ecs": {"message": "message", "timestamp": "@timestamp", "level": "log.level", "entity": "service.name"},
    "logfmt": {"message": "msg", "timestamp": "ts", "level": "level", "entity": "service"},
}


def encode_logs(inp: InputSpec, df: pl.DataFrame, ts: list, entities: list) -> list[bytes]:
    if "message" not in df.columns:
        raise ConfigError(f"log rows for {inp.topic!r} need a 'message' column")
    messages = df["message"].cast(pl.String).to_list()
    if inp.format == "plain":
        # The plain decoder takes the entity from the key and the time from the record's timestamp.
        return [(m or "").encode("utf-8") for m in messages]
    if inp.format not in _LOG_PATHS:
        raise ConfigError(
            f"input {inp.topic!r} reads {inp.format}; structured log rows are encoded for "
            f"{', '.join(_LOG_PATHS)} and plain, so replay such history from a 'payload' column"
        )
    levels = df["level"].cast(pl.String).to_list() if "level" in df.columns else [None] * df.height
    if inp.format == "logfmt":
        keys = {f: getattr(inp.fields, f) or k for f, k in _LOG_PATHS["logfmt"].items()}
        return [" ".join(format_pair(keys[f], v) for f, v in (("timestamp", t), ("level", lv), ("entity", ent),
                                                               ("message", m or "")) if v is not None).encode("utf-8")
                for m, t, lv, ent in zip(messages, ts, levels, entities)]
    paths = {f: (getattr(inp.fields, f) or p).split(".") for f, p in _LOG_PATHS[inp.format].items()}
    dumps = orjson.dumps
    out = []
    for m, t, lv, ent in zip(messages, ts, levels, entities):
        obj: dict = {}
        _put(obj, paths["message"], m)
        if t is not None:
            _put(obj, paths["timestamp"], t)
        if lv is not None:
            _put(obj, paths["level"], lv)
        if ent is not None:
            _put(obj, paths["entity"], ent)
        out.append(dumps(obj))
    return out


def _put(obj: dict, path: list[str], value) -> None:
    for part in path[:-1]:
        obj = obj.setdefault(part, {})
    obj[path[-1]] = value


# -- Kafka -------------------------------------------------------------------------------------


def parse_bound(text: str | None) -> tuple[str, float] | None:
    """``offset:N`` -> ("offset", N); an ISO 8601 time or epoch number -> ("time", seconds)."""
    if text is None:
        return None
    from detector.decoders.timestamps import parse_timestamp

    if text.startswith("offset:"):
        try:
            offset = int(text[7:])
        except ValueError:
            raise ConfigError(f"bound {text!r}: offset:N needs an integer") from None
        if offset < 0:  # a typo, not "from the beginning", which a negative offset was taken for
            raise ConfigError(f"bound {text!r}: an offset is 0 or more")
        return ("offset", offset)
    try:
        return ("time", parse_timestamp(text))
    except ValueError:
        raise ConfigError(f"bound {text!r}: expected an ISO 8601 time, epoch seconds, or offset:N") from None


def parse_bounds(start: str | None, end: str | None) -> tuple:
    """``--start`` and ``--end`` parsed, and refused when they leave nothing between them: a replay of
    nothing would succeed and replace the earlier outputs with empty ones."""
    first, last = parse_bound(start), parse_bound(end)
    if first and last and first[0] == last[0] and first[1] >= last[1]:
        raise ConfigError(f"--start {start} is not before --end {end} (which is excluded): nothing to replay")
    if first and first[0] == "time" and (last is None or last[0] == "offset") and first[1] > time.time():
        # Without an end time the replay ends at records newer than its own start: now.
        raise ConfigError(f"--start {start} is in the future: nothing to replay")
    return first, last


class PartitionMerge:
    """Records of several partitions interleaved by their timestamps, as they happened: each partition's
    records in its own order, the partitions merged by record timestamp (ties by topic, then partition;
    a record without one takes the time of the one before it). A record is handed out only once every
    partition still being read has one buffered, as the one that has none may yet deliver an earlier
    one; ``full`` tells which partitions to stop fetching meanwhile, so memory stays bounded."""

    def __init__(self, limit: int):
        self.limit = limit
        self.buffers: dict = {}
        self._heads: list = []  # (timestamp, topic, partition, tp) of each partition's first buffered record
        self._times: dict = {}  # a partition's latest record timestamp

    def add(self, tp, record: RawRecord) -> None:
        ts = record.timestamp if record.timestamp is not None else self._times.get(tp, float("-inf"))
        self._times[tp] = ts
        buffer = self.buffers.get(tp)
        if buffer is None:
            buffer = self.buffers[tp] = deque()
        if not buffer:
            heapq.heappush(self._heads, (ts, tp.topic, tp.partition, tp))
        buffer.append((ts, record))

    def full(self, tp) -> bool:
        return len(self.buffers.get(tp, ())) >= self.limit

    def ready(self, reading) -> Iterator[RawRecord]:
        """The records that can be handed out now, in merged order; ``reading``: the partitions that may
        still deliver records (none: everything buffered)."""
        buffers, heads = self.buffers, self._heads
        if any(not buffers.get(tp) for tp in reading):
            return
        while heads:
            *_, tp = heapq.heappop(heads)
            buffer = buffers[tp]
            yield buffer.popleft()[1]
            if buffer:
                ts = buffer[0][0]
                heapq.heappush(heads, (ts, tp.topic, tp.partition, tp))
            elif tp in reading:
                return


def kafka_batches(settings, topics: list[str], start=None, end=None, poll_ms: int = 500,
                  idle_polls: int = 3, stall_seconds: float = 30.0,
                  batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[list[RawRecord]]:
    """Every record of ``topics`` from ``start`` up to ``end`` (exclusive), all partitions, in batches of
    up to ``batch_rows``, the partitions interleaved by record timestamp (``PartitionMerge``): read as
    polls hand them out, one partition would run hours ahead of another, and what a replay makes of
    them would vary with the polls.

    Bounds are ("time", seconds) or ("offset", n) as from :func:`parse_bound`; an offset bound applies
    to every partition. Without an end bound the replay stops at records newer than its own start, so
    a busy topic still ends. A partition also ends when the topic stays quiet for ``idle_polls``
    polls and the broker still answers, unless the broker reports records beyond those read: those
    are waited for up to ``stall_seconds`` (then a warning names the partition). The reported end
    offsets are not trusted as the end, since some Kafka-compatible brokers report them low. A Kafka error while reading, a lost broker included,
    raises ``KafkaUnavailable``. The consumer is assigned its partitions (no consumer group, nothing
    committed), so a replay never disturbs the live service.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    from detector.kafka_io import client_config

    try:
        # "earliest": if retention deletes records under a running replay, reading goes on from the
        # first one left, instead of jumping to the end of the partition.
        consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False, group_id=None,
                                 auto_offset_reset="earliest", max_poll_records=settings.max_poll_records)
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from None
    try:
        tps = []
        try:
            for topic in topics:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    raise ConfigError(f"topic {topic!r} does not exist on {settings.bootstrap_servers}")
                tps.extend(TopicPartition(topic, p) for p in sorted(parts))
            # Where each partition is to be read from next; one with nothing at or after the start time
            # is not read at all.
            positions = {tp: first for tp, first in _start_offsets(consumer, tps, start).items() if first is not None}
        except KafkaError as exc:  # the metadata or offset look-ups timed out
            raise KafkaUnavailable(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from None
        open_tps = set(positions)
        stop_offset = int(end[1]) if end and end[0] == "offset" else None
        # A start time is looked up with offsets_for_times and checked again on each record: some
        # Kafka-compatible brokers answer that lookup with the partition's first offset.
        start_ms = start[1] * 1000.0 if start and start[0] == "time" else None
        # The wall clock bounds how much is read, never what a record scores.
        end_ms = end[1] * 1000.0 if end and end[0] == "time" else (None if end else time.time() * 1000.0)
        merge = PartitionMerge(settings.max_poll_records)
        assigned: set = set()
        batch: list[RawRecord] = []
        quiet = 0
        read = 0
        last_record = time.monotonic()
        try:
            while True:
                for record in merge.ready(open_tps):
                    batch.append(record)
                    if len(batch) >= batch_rows:
                        yield batch
                        batch = []
                if not open_tps:
                    break
                # A partition far enough ahead of the others is not fetched until they catch up. It is
                # left out of the assignment rather than paused: kafka-python can leave a resumed
                # partition unfetched for good when records of it were buffered as it was paused.
                fetching = {tp for tp in open_tps if not merge.full(tp)}
                if fetching != assigned:
                    consumer.assign(sorted(fetching))
                    for tp in fetching:
                        consumer.seek(tp, positions[tp])
                    assigned = fetching
                polled = consumer.poll(poll_ms)
                if not polled:
                    quiet += 1
                    if quiet >= idle_polls:
                        # A broker that went away is quiet too: kafka-python retries its connections
                        # rather than raise. One request tells the two apart. What it reports is not
                        # taken as the end (some brokers report end offsets low), but an end beyond
                        # what was read means records are still to come: a broker that restarted, or
                        # a slow fetch. They are waited for, up to ``stall_seconds`` without a record.
                        ends = consumer.end_offsets(list(fetching))
                        behind = {tp: (consumer.position(tp), ends[tp]) for tp in fetching
                                  if ends.get(tp) is not None and consumer.position(tp) < ends[tp]}
                        if behind and time.monotonic() - last_record < stall_seconds:
                            quiet = 0
                            continue
                        for tp, (position, end_offset) in sorted(behind.items()):
                            print(f"replay: {tp.topic}[{tp.partition}] ended at offset {position}, though the "
                                  f"broker reports records up to offset {end_offset - 1}: none came for "
                                  f"{stall_seconds:g} s", file=sys.stderr)
                        open_tps -= fetching  # the partitions fetched have ended; those held back go on
                        quiet = 0
                    continue
                quiet = 0
                last_record = time.monotonic()
                for tp, recs in polled.items():
                    if tp not in open_tps:
                        continue
                    for r in recs:
                        if (stop_offset is not None and r.offset >= stop_offset) or (
                                end_ms is not None and r.timestamp is not None and r.timestamp >= end_ms):
                            open_tps.discard(tp)
                            break
                        positions[tp] = r.offset + 1
                        if start_ms is not None and r.timestamp is not None and 0 <= r.timestamp < start_ms:
                            continue
                        ts = r.timestamp / 1000.0 if r.timestamp is not None and r.timestamp >= 0 else None
                        merge.add(tp, RawRecord(r.topic, r.partition, r.offset, ts, r.key, r.value))
                        read += 1
            if batch:
                yield batch
        except KafkaError as exc:  # the broker lost, a corrupt or oversized record, access revoked, ...
            # Raised to the replay, which discards its outputs as for any other failure.
            raise KafkaUnavailable(f"reading from Kafka at {settings.bootstrap_servers} failed after {read} "
                                   f"records: {exc}") from None
    finally:
        consumer.close()


def _start_offsets(consumer, tps, start) -> dict:
    if start is None:
        return consumer.beginning_offsets(tps)
    kind, value = start
    if kind == "offset":
        begin = consumer.beginning_offsets(tps)
        return {tp: max(int(value), begin[tp]) for tp in tps}
    found = consumer.offsets_for_times({tp: int(value * 1000) for tp in tps})
    return {tp: (None if f is None else f.offset) for tp, f in found.items()}


# -- output ------------------------------------------------------------------------------------


class ParquetTableWriter:
    """Rows appended in batches, written as row groups once ``group_rows`` are buffered.

    Rows go to a temporary file next to ``path``; :meth:`commit` renames it over ``path``, and
    :meth:`discard` removes it, so a replay that fails leaves the previous results as they were.
    """

    def __init__(self, path: Path, schema, group_rows: int = 100_000):
        self.path = path
        self.partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        self.schema = schema
        self.group_rows = group_rows
        self._cols: dict[str, list] = {f.name: [] for f in schema}
        self._n = 0
        self._writer = None
        self.rows = 0

    def append(self, columns: dict[str, list]) -> None:
        for name, values in columns.items():
            self._cols[name].extend(values)
        self._n += len(next(iter(columns.values()))) if columns else 0
        if self._n >= self.group_rows:
            self._write()

    def _write(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self.partial, self.schema, compression="zstd")
        table = pa.Table.from_pydict(self._cols, schema=self.schema)
        if table.num_rows:
            self._writer.write_table(table, row_group_size=max(self.group_rows, table.num_rows))
        self.rows += table.num_rows
        self._cols = {f.name: [] for f in self.schema}
        self._n = 0

    def close(self) -> None:
        self._write()  # also creates the file when nothing was written: an empty table is an answer
        self._writer.close()
        self._writer = None

    def commit(self) -> None:
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.partial.unlink(missing_ok=True)


def _schemas():
    import pyarrow as pa

    scores = pa.schema([
        ("timestamp", pa.float64()), ("entity", pa.string()), ("signal", pa.string()), ("series", pa.string()),
        ("score", pa.float64()), ("confidence", pa.float64()), ("value", pa.float64()), ("evidence", pa.string()),
    ])
    alerts = pa.schema([
        ("timestamp", pa.float64()), ("entity", pa.string()), ("signal", pa.string()), ("series", pa.string()),
        ("state", pa.string()), ("confidence", pa.float64()), ("since", pa.float64()), ("evidence", pa.string()),
    ])
    incidents = pa.schema([
        ("timestamp", pa.float64()), ("kind", pa.string()), ("id", pa.string()), ("entity", pa.string()),
        ("severity", pa.string()), ("confidence", pa.float64()), ("start", pa.float64()), ("end", pa.float64()),
        ("signals", pa.string()), ("templates", pa.string()), ("series", pa.string()),
    ])
    templates = pa.schema([
        ("topic", pa.string()), ("partition", pa.int64()), ("id", pa.int64()), ("template", pa.string()),
        ("count", pa.int64()), ("first_seen", pa.float64()),
    ])
    dead_letters = pa.schema([
        ("topic", pa.string()), ("partition", pa.int64()), ("offset", pa.int64()), ("error_kind", pa.string()),
        ("error", pa.string()), ("key", pa.binary()), ("value", pa.binary()),
    ])
    return scores, alerts, templates, incidents, dead_letters


def sibling(path: Path, name: str) -> Path:
    """``OUT.parquet`` -> ``OUT.<name>.parquet``."""
    return path.with_name(f"{path.stem}.{name}{path.suffix or '.parquet'}")


SIBLINGS = ("alerts", "templates", "incidents", "dead_letters")  # OUT.<name>.parquet, written or removed


def check_output(out: Path, source: str | Path | None = None) -> None:
    """Refuse, before anything is written, an output name that would hold Parquet under another type's
    suffix, and outputs of which one is the input file: the scores would replace the history."""
    if out.suffix.lower() != ".parquet":
        raise ConfigError(f"--output {out}: the outputs are Parquet files; give a name ending in .parquet")
    if source is None:
        return
    for path in (out, *(sibling(out, name) for name in SIBLINGS)):
        if path.exists() and path.samefile(source):
            what = "is the input file" if path == out else f"would write {path.name}, which is the input file"
            raise ConfigError(f"--output {out} {what}; the replay would replace it, so choose another output")


def _json(evidence) -> str | None:
    if evidence is None:
        return None
    return orjson.dumps(evidence, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=str).decode()


class ReplayWriter:
    def __init__(self, out: str | Path, group_rows: int = 100_000, source: str | Path | None = None):
        self.out = Path(out)
        check_output(self.out, source)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        scores, alerts, self._templates_schema, incident_schema, dead_schema = _schemas()
        self.scores = ParquetTableWriter(self.out, scores, group_rows)
        self.alerts = ParquetTableWriter(sibling(self.out, "alerts"), alerts, group_rows)
        self.incidents = ParquetTableWriter(sibling(self.out, "incidents"), incident_schema, group_rows)
        self.dead_letters = ParquetTableWriter(sibling(self.out, "dead_letters"), dead_schema, group_rows)
        self._extra: list[ParquetTableWriter] = []

    def write(self, result) -> None:
        scores = result.scores
        if scores:
            self.scores.append({
                "timestamp": [s.timestamp for s in scores], "entity": [s.entity for s in scores],
                "signal": [s.signal for s in scores], "series": [s.series for s in scores],
                "score": [float(s.score) for s in scores], "confidence": [float(s.confidence) for s in scores],
                "value": [s.value for s in scores], "evidence": [_json(s.evidence) for s in scores],
            })
        trs = result.transitions
        if trs:
            self.alerts.append({
                "timestamp": [t.timestamp for t in trs], "entity": [t.entity for t in trs],
                "signal": [t.signal for t in trs], "series": [t.series for t in trs], "state": [t.state for t in trs],
                "confidence": [float(t.confidence) for t in trs], "since": [t.since for t in trs],
                "evidence": [_json(t.evidence) for t in trs],
            })
        dead = result.dead_letters
        if dead:  # what the live service would send to the dead-letter topic, with the record as it was
            self.dead_letters.append({
                "topic": [d.raw.topic for d in dead], "partition": [d.raw.partition for d in dead],
                "offset": [d.raw.offset for d in dead], "error_kind": [d.kind for d in dead],
                "error": [d.reason for d in dead], "key": [d.raw.key for d in dead], "value": [d.raw.value for d in dead],
            })
        events = result.incidents
        if events:
            snaps = [e.incident for e in events]
            self.incidents.append({
                "timestamp": [e.timestamp for e in events], "kind": [e.kind for e in events],
                "id": [i.id for i in snaps], "entity": [i.entity for i in snaps], "severity": [i.severity for i in snaps],
                "confidence": [float(i.confidence) for i in snaps], "start": [i.start for i in snaps],
                "end": [i.end for i in snaps], "signals": [_json(list(i.signals)) for i in snaps],
                "templates": [_json(list(i.templates)) for i in snaps], "series": [_json(list(i.series)) for i in snaps],
            })

    def close(self, pipeline: Pipeline) -> None:
        """Finish every output, then put them all in place of the previous ones."""
        tables = [self.scores, self.alerts, self.incidents, self.dead_letters]
        rows = [
            {"topic": topic, "partition": part, **t}
            for (topic, part), st in sorted(pipeline.partitions.items()) if st.kind == "log"
            for t in st.model.templates()
        ]
        templates = sibling(self.out, "templates")
        if rows:
            w = ParquetTableWriter(templates, self._templates_schema, len(rows) + 1)
            self._extra.append(w)
            w.append({f.name: [r[f.name] for r in rows] for f in self._templates_schema})
        for table in tables + self._extra:
            table.close()
        for table in tables + self._extra:
            table.commit()
        if not rows:
            templates.unlink(missing_ok=True)  # an earlier replay's templates do not belong with these scores

    def discard(self) -> None:
        for table in (self.scores, self.alerts, self.incidents, self.dead_letters, *self._extra):
            table.discard()


# -- the replay itself -------------------------------------------------------------------------


def run_replay(pipeline: Pipeline, batches: Iterable[tuple[list[RawRecord], list[DeadLetter]]], out: str | Path,
               total: int | None = None, progress: bool = True, source: str | Path | None = None) -> dict:
    """Feed every batch through the pipeline, flush, and write the outputs. Returns a summary.

    Each batch comes with the dead letters of what its source could not make a record of. ``source``
    is the input file, which no output may replace.
    """
    from tqdm import tqdm

    writer = ReplayWriter(out, source=source)
    started = time.perf_counter()
    rows = dead = late = 0
    bar = tqdm(total=total, unit="row", unit_scale=True, file=sys.stderr, desc="replay",
               disable=None if progress else True, mininterval=0.5)
    try:
        for batch, unreadable in batches:
            if unreadable:
                writer.write(BatchResult(dead_letters=unreadable))
            result = pipeline.process(batch)
            writer.write(result)
            rows += len(batch) + len(unreadable)
            dead += len(result.dead_letters) + len(unreadable)
            late += result.late
            bar.update(len(batch) + len(unreadable))
        writer.write(pipeline.flush())
        bar.close()
        writer.close(pipeline)
    except BaseException:
        bar.close()
        writer.discard()
        raise
    elapsed = time.perf_counter() - started
    return {
        "rows": rows, "dead_letters": dead, "late_rows": late, "scores": writer.scores.rows,
        "alerts": writer.alerts.rows, "incidents": writer.incidents.rows,
        "seconds": round(elapsed, 3), "rows_per_second": round(rows / elapsed, 1) if elapsed > 0 else None,
        "output": str(writer.out),
    }


def file_batches(spec: PipelineSpec, path: str | Path, topic: str | None = None, partitions: int = 1,
                 batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[tuple[list[RawRecord], list[DeadLetter]]]:
    """RawRecord batches from a file, encoded for the pipeline input the rows belong to, each with the
    dead letters of the lines among them that held no row.

    The file is opened and its rows matched to an input here, before the first batch is asked for,
    so that a replay that cannot start says so before it opens any output.
    """
    columns, frames = open_rows(path, batch_rows)
    encoder = RowEncoder(spec, choose_input(spec, columns, topic), partitions, default_name=Path(path).stem)
    return _encoded(encoder, frames, path)


def _encoded(encoder: RowEncoder, frames: Frames, path) -> Iterator[tuple[list[RawRecord], list[DeadLetter]]]:
    topic = encoder.default_input.topic if encoder.default_input is not None else ""
    try:
        for df, bad in frames:
            dead = [DeadLetter(RawRecord(topic, None, None, None, None, u.text), u.reason, "UnreadableRow")
                    for u in bad]
            records, rejected = encoder.encode(df)
            yield records, dead + rejected
    except pl.exceptions.PolarsError as exc:
        raise ConfigError(f"{path}: cannot read it: {str(exc).splitlines()[0]}") from None


def replay_file(spec: PipelineSpec, path: str | Path, out: str | Path, topic: str | None = None,
                partitions: int = 1, batch_rows: int = DEFAULT_BATCH_ROWS, progress: bool = True,
                pipeline: Pipeline | None = None) -> dict:
    batches = file_batches(spec, path, topic, partitions, batch_rows)
    total = count_rows(path)
    pipeline = pipeline or Pipeline.from_spec(spec)
    return run_replay(pipeline, batches, out, total, progress, source=path)


def replay_kafka(spec: PipelineSpec, topics: list[str], out: str | Path, start=None, end=None,
                 progress: bool = True, pipeline: Pipeline | None = None,
                 batch_rows: int = DEFAULT_BATCH_ROWS) -> dict:
    """Replay topics of the pipeline's broker; all of them go through one pipeline, as live."""
    spec.require_inputs()
    if not topics:
        raise ConfigError("kafka: names no topic; use kafka:TOPIC[,TOPIC...]")
    for topic in topics:
        if not any(inp.topic == topic for inp in spec.inputs):
            raise ConfigError(f"topic {topic!r} is not an input of pipeline {spec.name!r}")
    pipeline = pipeline or Pipeline.from_spec(spec)
    batches = ((batch, []) for batch in kafka_batches(spec.kafka, topics, start, end, batch_rows=batch_rows))
    return run_replay(pipeline, batches, out, None, progress)
