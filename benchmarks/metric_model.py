"""Metric model cost: points/s on the NAB replay and bytes held per series, printed as JSON.

Throughput is reported next to a baseline measured in the same run on the same points (a plain EWMA
z-score loop, about the cheapest online detector there is), as a ratio, because the machines this
runs on are shared and noisy. Memory is what tracemalloc sees allocated for N live series models
after each has learned a few points.

    python benchmarks/metric_model.py [--data-dir DIR] [--series 100000] [--model SPEC.yaml]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import time
import tracemalloc
from pathlib import Path

import numpy as np

from detector.series_model import SeriesModel
from detector.specs import MODELS_DIR, load_model_spec

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab" / "data"


def load_series(data_dir: Path) -> list[tuple[list[float], list[float]]]:
    if data_dir.is_dir():
        import polars as pl

        out = []
        for path in sorted(data_dir.rglob("*.csv")):
            df = pl.read_csv(path, schema_overrides={"timestamp": pl.Utf8})
            ts = df["timestamp"].str.to_datetime(time_unit="us").dt.epoch(time_unit="us").to_numpy() / 1e6
            out.append((ts.tolist(), df["value"].cast(pl.Float64).to_list()))
        return out
    rng = np.random.default_rng(0)  # no NAB here: synthetic daily series of the same size
    return [((np.arange(5000) * 300.0).tolist(),
             (100 + 10 * np.sin(np.arange(5000) / 288 * 2 * math.pi) + rng.normal(0, 2, 5000)).tolist())
            for _ in range(50)]


def ewma_zscore(ts: list[float], vs: list[float]) -> list[float]:
    """Baseline: EWMA mean and variance, score |z| before learning."""
    m, var, out, a = vs[0], 1.0, [], 0.02
    for v in vs:
        out.append(abs(v - m) / math.sqrt(var + 1e-12))
        d = v - m
        m += a * d
        var = (1 - a) * (var + a * d * d)
    return out


def timed(fn, series) -> float:
    start = time.perf_counter()
    for ts, vs in series:
        fn(ts, vs)
    return time.perf_counter() - start


def throughput(spec, series, repeats: int = 3) -> dict:
    points = sum(len(vs) for _, vs in series)
    batched = min(timed(lambda t, v: SeriesModel.from_spec(spec).update_many(t, v), series) for _ in range(repeats))

    def per_point(ts, vs):
        model = SeriesModel.from_spec(spec)
        update = model.update
        for t, v in zip(ts, vs):
            update(t, v)

    single = min(timed(per_point, series) for _ in range(repeats))
    baseline = min(timed(ewma_zscore, series) for _ in range(repeats))
    return {
        "points": points,
        "points_per_second": round(points / batched),
        "points_per_second_per_point_path": round(points / single),
        "baseline_ewma_zscore_points_per_second": round(points / baseline),
        "ratio_to_baseline": round(baseline / batched, 3),
        "ratio_to_baseline_per_point_path": round(baseline / single, 3),
    }


def memory(spec, n_series: int) -> dict:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    models = {}
    for i in range(n_series):
        model = SeriesModel.from_spec(spec)
        model.update_many([0.0, 300.0, 600.0], [1.0, 2.0, 1.5])  # state is allocated on first use
        models[f"series-{i}"] = model
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del models
    return {"series": n_series, "bytes_per_series": round(used / n_series), "total_megabytes": round(used / 2**20, 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--model", type=Path, default=MODELS_DIR / "metric-default.yaml")
    p.add_argument("--series", type=int, default=100_000)
    args = p.parse_args(argv)
    spec = load_model_spec(args.model)
    series = load_series(args.data_dir)
    result = {"model": str(args.model.name), "detector": spec.detector.name, "calibrator": spec.calibrator.name}
    result.update(throughput(spec, series))
    result.update(memory(spec, args.series))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
