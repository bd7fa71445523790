"""``outage-detector replay``: history through the live processing path, scores to Parquet."""

from __future__ import annotations

import json
import sys

from detector.commands.common import (PIPELINE_ENV, add_pipeline_option, pipeline_from_args, positive_int,
                                      sigterm_unwinds)
from detector.errors import ConfigError

KAFKA_PREFIX = "kafka:"


def add_command(sub) -> None:
    p = sub.add_parser(
        "replay",
        help="replay history (Parquet, CSV, JSON lines or a Kafka topic) and write scores and alerts",
        description="Replay history through exactly the path the live service runs, in event time, and "
        "write scores, confidence and alerts to Parquet: OUT.parquet (scores), OUT.alerts.parquet, "
        "OUT.incidents.parquet, OUT.dead_letters.parquet and, for log inputs, OUT.templates.parquet. They "
        "replace earlier results only when the replay succeeds. The same input always gives the same output.",
    )
    add_pipeline_option(p, help_text=f"pipeline spec naming the inputs the rows belong to, e.g. pipelines/default.yaml "
                        f"(default: ${PIPELINE_ENV}); needed, since the built-in defaults have no inputs")
    p.add_argument("--input", required=True, metavar="PATH",
                   help="a Parquet (.parquet, .pq), CSV (.csv) or JSON-lines (.jsonl, .ndjson, .json) file, "
                   "or kafka:TOPIC[,TOPIC...] to read topics of the pipeline's broker")
    p.add_argument("--output", required=True, metavar="OUT.parquet",
                   help="where to write the scores: a name ending in .parquet, not the input; the other "
                   "outputs are written beside it")
    p.add_argument("--topic", help="the pipeline input the file's rows belong to (default: the one that fits)")
    p.add_argument("--partitions", type=positive_int, default=1,
                   help="spread keyed rows over this many partitions as Kafka's default partitioner does "
                   "(match the live topic to get its per-partition state; default 1)")
    p.add_argument("--batch-rows", type=positive_int, default=5000,
                   help="rows per processing batch, for files and kafka: inputs alike (default 5000); it changes "
                   "memory and speed only, the outputs are the same whatever the batch size")
    p.add_argument("--start", help="kafka: inputs only: first record, as an ISO 8601 time, epoch seconds or offset:N")
    p.add_argument("--end", help="kafka: inputs only: stop before this time or offset:N (default: the end when started)")
    p.add_argument("--bootstrap-servers", help="kafka: override the pipeline's brokers")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


# Stopped by SIGTERM, a replay removes its partial outputs as it does on Ctrl-C or a failure.
@sigterm_unwinds()
def run(args) -> int:
    from detector import replay

    spec = pipeline_from_args(args)
    progress = not args.no_progress
    if args.input.startswith(KAFKA_PREFIX):
        if args.bootstrap_servers:
            spec = spec.model_copy(update={"kafka": spec.kafka.model_copy(update={"bootstrap_servers": args.bootstrap_servers})})
        topics = [t for t in args.input[len(KAFKA_PREFIX):].split(",") if t]
        summary = replay.replay_kafka(spec, topics, args.output, *replay.parse_bounds(args.start, args.end),
                                      progress, batch_rows=args.batch_rows)
    else:
        if args.start is not None or args.end is not None:
            # Said rather than ignored: a file is replayed whole; cut it to the span wanted first.
            raise ConfigError("--start and --end apply to kafka: inputs only; a file is replayed whole")
        summary = replay.replay_file(spec, args.input, args.output, args.topic, args.partitions,
                                     args.batch_rows, progress)
        if summary["late_rows"]:
            # Not re-sorted here: that would take the whole file in memory. Live, records come in
            # about the order they happened; a file out of that order scores otherwise.
            print(f"replay: warning: {summary['late_rows']} of {summary['rows']} rows are out of time order "
                  f"(more than {spec.lateness_seconds:g} s older than a row before them), which changes their "
                  "scores, alerts and incidents; sort the file by timestamp for the scores the live service "
                  "would give", file=sys.stderr)
    print(json.dumps(summary))
    return 0
