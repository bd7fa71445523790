"""Decoder throughput per input format, next to plain orjson.loads of the same payloads in the same run.

    python benchmarks/decoders.py [--messages 20000] [--repeat 3]

Prints one JSON document. ``ratio`` is decode time over baseline time: how much the decoder costs on
top of parsing alone. The baseline for the text formats (plain, logfmt, influx) is ``bytes.decode``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time

import orjson

from detector.config import InputSpec
from detector.decoders import build_decoder
from detector.records import RawRecord

T0 = 1_705_312_800
SERVICES = ["checkout", "payments", "cart", "search", "auth"]
LEVELS = ["INFO", "INFO", "INFO", "WARN", "ERROR"]


def payloads(fmt: str, n: int, rng: random.Random) -> list[bytes]:
    out = []
    for i in range(n):
        svc = rng.choice(SERVICES)
        lvl = rng.choice(LEVELS)
        ts = T0 + i * 0.01
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{i % 1000:03d}Z"
        msg = f"request {i} to /api/v1/items/{rng.randrange(10_000)} took {rng.randrange(900)}ms"
        if fmt == "json":
            doc = {"timestamp": iso, "level": lvl, "message": msg, "service": svc}
        elif fmt == "vector":
            doc = {"host": f"{svc}-1", "message": f"{lvl} {msg}", "source_type": "file", "file": "/var/log/app.log", "timestamp": iso}
        elif fmt == "fluentbit":
            doc = {"@timestamp": ts, "log": f"{iso} {lvl} {msg}\n", "stream": "stdout",
                   "kubernetes": {"pod_name": f"{svc}-abc", "namespace_name": "shop", "labels": {"app": svc}, "container_name": svc, "host": "node-1"}}
        elif fmt == "ecs":
            doc = {"@timestamp": iso, "log": {"level": lvl.lower()}, "message": msg, "service": {"name": svc},
                   "host": {"name": "node-1"}, "ecs": {"version": "8.0.0"}}
        elif fmt == "otlp_json":
            doc = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}}]},
                                     "scopeLogs": [{"scope": {"name": "app"}, "logRecords": [
                                         {"timeUnixNano": str(int(ts * 1e9) + k), "severityNumber": 9, "severityText": "INFO",
                                          "body": {"stringValue": msg}} for k in range(10)]}]}]}
        elif fmt == "metric_json":
            doc = {"name": "http_request_duration_seconds", "labels": {"service": svc, "route": "/api"}, "value": rng.random(), "timestamp": ts}
        elif fmt == "telegraf":
            doc = {"fields": {"usage_idle": rng.random() * 100, "usage_user": rng.random() * 10}, "name": "cpu",
                   "tags": {"cpu": "cpu-total", "host": svc}, "timestamp": int(ts)}
        elif fmt == "plain":
            out.append(f"{iso} {lvl} [main] {msg}".encode())
            continue
        elif fmt == "logfmt":
            out.append(f'ts={iso} level={lvl.lower()} service={svc} msg="{msg}" caller=api.go:{i % 300}'.encode())
            continue
        elif fmt == "influx":
            out.append(f"cpu,cpu=cpu-total,host={svc} usage_idle={rng.random() * 100:.3f},usage_user={rng.randrange(100)}i {int(ts * 1e9)}".encode())
            continue
        out.append(orjson.dumps(doc))
    return out


def _each(fn, items) -> None:
    # Results are dropped as they come, like a pipeline that hands each batch on: keeping them all
    # alive would time the garbage collector instead of the parser.
    for item in items:
        fn(item)


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(messages: int, repeat: int) -> dict:
    rng = random.Random(0)
    results = {}
    for fmt, kind in [(f, "log") for f in ("json", "vector", "fluentbit", "ecs", "otlp_json", "logfmt", "plain")] + [
        (f, "metric") for f in ("metric_json", "telegraf", "influx")
    ]:
        data = payloads(fmt, messages, rng)
        raws = [RawRecord("bench", 0, i, T0 + i, None, v) for i, v in enumerate(data)]
        decode = build_decoder(InputSpec(topic="bench", kind=kind, format=fmt)).decode
        records = sum(len(decode(r)) for r in raws)
        text = fmt in ("plain", "logfmt", "influx")
        parse = bytes.decode if text else orjson.loads
        baseline = best_of(repeat, lambda: _each(parse, data))
        elapsed = best_of(repeat, lambda: _each(decode, raws))
        results[fmt] = {
            "messages": messages,
            "records": records,
            "messages_per_s": round(messages / elapsed),
            "records_per_s": round(records / elapsed),
            "baseline": "bytes.decode" if text else "orjson.loads",
            "baseline_messages_per_s": round(messages / baseline),
            "ratio": round(elapsed / baseline, 2),
        }
    return {"benchmark": "decoders", "python": platform.python_version(), "orjson": orjson.__version__, "formats": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.messages, args.repeat), indent=2))


if __name__ == "__main__":
    main()
