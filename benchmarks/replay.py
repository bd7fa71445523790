"""Replay throughput, next to reading alone of the same file in the same run.

    python benchmarks/replay.py [--rows 300000] [--series 200] [--kind metric|log] [--format parquet|csv|jsonl]

Writes a synthetic history file to a temporary folder, then times (1) streaming the file as the replay reads it
in the replay's batch size and touching every value (the baseline: what reading alone costs) and
(2) ``replay`` of the same file through the whole pipeline to Parquet outputs. Prints one JSON
document; ``ratio`` is replay rows/s over baseline rows/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from pathlib import Path

import polars as pl

from detector.config import load_pipeline
from detector.replay import DEFAULT_BATCH_ROWS, open_rows, replay_file

T0 = 1_700_000_000.0


def history(kind: str, rows: int, series: int, seed: int = 0) -> pl.DataFrame:
    rng = random.Random(seed)
    services = [f"svc-{i}" for i in range(series)]
    ts = [T0 + 60.0 * (i // series) for i in range(rows)]
    svc = [services[i % series] for i in range(rows)]
    if kind == "metric":
        return pl.DataFrame({"timestamp": ts, "name": ["latency_ms"] * rows, "service": svc,
                             "value": [rng.gauss(100.0, 10.0) for _ in range(rows)]})
    words = ["GET", "POST", "PUT"]
    msgs = [f"{rng.choice(words)} /api/items/{rng.randrange(10_000)} 200 in {rng.randrange(900)} ms" for _ in range(rows)]
    return pl.DataFrame({"timestamp": ts, "service": svc, "message": msgs, "level": ["info"] * rows})


def read_baseline(path: Path) -> float:
    started = time.perf_counter()
    n = 0
    for df, _ in open_rows(path, DEFAULT_BATCH_ROWS)[1]:
        n += len(df.rows())  # materialise the rows, as the replay must
    return n / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--kind", choices=("metric", "log"), default="metric")
    ap.add_argument("--format", choices=("parquet", "csv", "jsonl"), default="parquet")
    args = ap.parse_args()
    spec = load_pipeline(None, inputs=[{"topic": "logs", "kind": "log", "format": "ecs"},
                                       {"topic": "metrics", "kind": "metric", "format": "metric_json"}])
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"history.{args.format}"
        df = history(args.kind, args.rows, args.series)
        {"parquet": df.write_parquet, "csv": df.write_csv, "jsonl": df.write_ndjson}[args.format](src)
        del df
        baseline = read_baseline(src)
        summary = replay_file(spec, src, Path(tmp) / "out.parquet", progress=False)
    replay_rate = summary["rows_per_second"]
    print(json.dumps({
        "benchmark": "replay", "kind": args.kind, "format": args.format, "rows": args.rows, "series": args.series,
        "replay_rows_per_second": replay_rate, "polars_read_rows_per_second": round(baseline, 1),
        "ratio": round(replay_rate / baseline, 4), "scores": summary["scores"],
        "python": platform.python_version(), "polars": pl.__version__,
    }))


if __name__ == "__main__":
    main()
