"""``outage-detector simulate``: play one scenario onto Kafka.

Records are produced with kafka-python: key = the entity (service name), value = the JSON payload,
record timestamp = the event time in milliseconds. Logs go to the log topic and metric points to the
metric topic; each defaults to the pipeline's first input of that kind (``--pipeline``, else
``$OUTAGE_DETECTOR_PIPELINE``), and without a pipeline that lists inputs, to ``logs`` and ``metrics``
as in ``pipelines/default.yaml``. If a pipeline lists inputs but none of one kind, that kind is not
sent unless its topic is given.

``--speed X`` plays X event-time seconds per wall-clock second; without it records go as fast as the
broker takes them. Progress goes to stderr; the last line on stdout is a JSON summary with the
records sent and the scenario's disruption and customer-visible start (absolute event times).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import datetime, timezone

from detector.errors import DetectorError
from detector.simulate.generate import SCRAPE_INTERVAL

DEFAULT_TOPICS = {"log": "logs", "metric": "metrics"}


def add_command(sub) -> None:
    from detector.commands.common import add_pipeline_option, non_negative_float, positive_float
    from detector.simulate.scenarios import SCENARIOS

    p = sub.add_parser(
        "simulate",
        help="play a simulated incident (logs and metrics of a small fleet) onto Kafka",
        description="Generate a scenario's logs (ECS JSON) and metric points (JSON) in event-time order and "
        "produce them to Kafka, keyed by service. --list shows the scenarios.",
    )
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--scenario", choices=sorted(SCENARIOS), metavar="NAME", help="scenario to play (see --list)")
    add_pipeline_option(p)
    p.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="Kafka to produce to (default: the pipeline's)")
    p.add_argument("--log-topic", help="topic for log lines (default: the pipeline's first log input)")
    p.add_argument("--metric-topic", help="topic for metric points (default: the pipeline's first metric input)")
    p.add_argument("--hours", type=positive_float, default=24.0, help="simulated hours (default 24)")
    p.add_argument("--start", help="event time of the first record: epoch seconds or ISO 8601 "
                   "(default: 00:00 UTC, as many whole days ago as the run needs)")
    p.add_argument("--speed", type=positive_float, help="event-time seconds per wall-clock second (default: as fast as possible)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same records")
    p.add_argument("--volume", type=non_negative_float, default=1.0,
                   help="scale of the log volume, 0 or more (default 1.0; at 0 only the lines not tied to "
                   "requests remain: jobs, GC, start-ups, some of the scenario's)")
    p.add_argument("--scrape-interval", type=positive_float, default=SCRAPE_INTERVAL,
                   help="seconds between metric scrapes, above 0 (default 30)")
    p.add_argument("--create-topics", action="store_true", help="create missing topics first (3 partitions)")
    p.set_defaults(func=run)


def parse_start(text: str | None, hours: float, now: float | None = None) -> float:
    if text is None:
        now = time.time() if now is None else now
        return (math.floor(now / 86400.0) - math.ceil(hours / 24.0)) * 86400.0
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DetectorError(f"--start {text!r} is neither epoch seconds nor an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def resolve_topics(args, spec) -> dict[str, str | None]:
    topics = {"log": args.log_topic, "metric": args.metric_topic}
    for kind in topics:
        if topics[kind] is None:
            first = next((inp.topic for inp in spec.inputs if inp.kind == kind), None)
            topics[kind] = first if spec.inputs else DEFAULT_TOPICS[kind]
    return topics


def list_scenarios(out=None) -> None:
    from detector.simulate.scenarios import SCENARIOS

    out = out or sys.stdout

    width = max(map(len, SCENARIOS))
    for s in SCENARIOS.values():
        when = "" if s.entity is None else (
            f" [{s.entity}; precursor {s.precursor_seconds / 60:.0f} min, impact {s.impact_seconds / 60:.0f} min]")
        print(f"{s.name:<{width}}  {s.description}{when}", file=out)


def run(args: argparse.Namespace) -> int:
    if args.list:
        list_scenarios()
        return 0
    if not args.scenario:
        raise DetectorError("simulate: give --scenario NAME (or --list to see them)")
    from detector.commands.common import pipeline_from_args
    from detector.simulate.generate import build_world, render, schedule
    from detector.simulate.scenarios import SCENARIOS

    spec = pipeline_from_args(args)
    if args.bootstrap_servers:
        spec = spec.model_copy(update={"kafka": spec.kafka.model_copy(update={"bootstrap_servers": args.bootstrap_servers})})
    topics = resolve_topics(args, spec)
    scenario = SCENARIOS[args.scenario]
    start = parse_start(args.start, args.hours)
    try:
        timeline = scenario.timeline(start, args.hours)
        world = build_world(scenario, start, args.hours, args.seed, volume=args.volume,
                            scrape_interval=args.scrape_interval)
    except ValueError as exc:
        raise DetectorError(str(exc)) from None
    plan = schedule(world)
    for kind, topic in topics.items():
        if topic is None:
            print(f"simulate: the pipeline has no {kind} input; {kind} records are not sent", file=sys.stderr)
    sent, failed, seconds = _produce(spec, topics, render(world, plan, args.seed), len(plan), start, args)
    summary = {
        "scenario": scenario.name,
        "entity": scenario.entity,
        "records": sent["log"] + sent["metric"] - failed,
        "logs": sent["log"],
        "metrics": sent["metric"],
        "failed": failed,
        "log_topic": topics["log"],
        "metric_topic": topics["metric"],
        "start": start,
        "end": world.end,
        "disruption_start": timeline and timeline.disruption_start,
        "customer_visible_start": timeline and timeline.customer_visible_start,
        "impact_end": timeline and timeline.impact_end,
        "seconds": round(seconds, 3),
    }
    print(json.dumps(summary))
    return 1 if failed else 0


def _produce(spec, topics, records, total: int, start: float, args):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    from tqdm import tqdm

    from detector.kafka_io import client_config, ensure_topics

    servers = spec.kafka.bootstrap_servers
    wanted = [t for t in topics.values() if t]
    try:
        if args.create_topics:
            ensure_topics(spec.kafka, wanted)
        producer = KafkaProducer(**client_config(spec.kafka), linger_ms=20, batch_size=256 * 1024,
                                 compression_type=None, acks=1)
    except KafkaError as exc:
        raise DetectorError(f"cannot reach Kafka at {servers}: {exc}") from None
    sent = {"log": 0, "metric": 0}
    failed = 0

    def on_error(exc):
        nonlocal failed
        failed += 1

    wall0 = time.monotonic()
    # tqdm draws on stderr; with --speed the bar also shows how far event time has got.
    bar = tqdm(total=total, unit="rec", unit_scale=True, file=sys.stderr, mininterval=0.5, desc=args.scenario)
    try:
        for n, rec in enumerate(records):
            topic = topics[rec.kind]
            if args.speed:
                ahead = (rec.timestamp - start) / args.speed - (time.monotonic() - wall0)
                if ahead > 0:
                    time.sleep(ahead)
            if topic is not None:
                producer.send(topic, key=rec.key, value=rec.value,
                              timestamp_ms=int(round(rec.timestamp * 1000))).add_errback(on_error)
                sent[rec.kind] += 1
            if n % 2000 == 0:
                bar.update(n + 1 - bar.n)
                bar.set_postfix_str(datetime.fromtimestamp(rec.timestamp, timezone.utc).strftime("%H:%M:%S"),
                                    refresh=False)
        bar.update(total - bar.n)
        producer.flush()
    except KeyboardInterrupt:
        producer.flush(timeout=10)
        raise
    finally:
        bar.close()
        producer.close(timeout=10)
    return sent, failed, time.monotonic() - wall0
