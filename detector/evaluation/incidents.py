"""``outage-detector evaluate incidents``: detection, lead time and false alerts on the simulated incidents.

Every scenario of :mod:`detector.simulate` is generated and replayed offline through the live code
path: the records become the ``RawRecord``s a Kafka consumer would hand over (topic by kind, partition
by key with Kafka's default partitioner over ``--partitions``, event time as the record timestamp), and
go through :meth:`Pipeline.process` in poll-sized batches, then :meth:`Pipeline.flush`. Models,
alerting and incident settings come from the pipeline spec; its inputs are replaced by the simulator's
two (ECS logs, metric JSON).

An *alert* is what pages someone: an incident opened for an entity, or, when the pipeline groups no
incidents, a firing alert transition, those of one entity closer than ``incident_window_seconds``
counted once. For a scenario with disruption start D, customer-visible start V and impact end E:

- detected: an alert on the scenario's entity at D <= t < V; ``lead_seconds`` = V - the first such t
  (when the entity's first alert in [D, E] comes after V, detected is false and the lead negative);
- false alert: any alert on an entity the scenario does not involve, or on any entity outside
  [D, E + 30 min]; ``false_alerts_per_day`` divides their count by the simulated days.

The quiet scenario counts only false alerts (``detected`` and ``lead_seconds`` are null); detection rate
and median lead are over the disruption scenarios.

Each scenario is replayed once per start hour (``--start-hours``, UTC hours of 2024-05-01, default 0 and
9). A run that starts at 00:00 puts the disruption at 18:00 and the nightly events of the normal day
(the log rotation at 00:00, the search reindex at 03:00) at its very start or end, where they are hardly
judged; one that starts at 09:00 has the rotation at 00:00 three hours before the disruption (03:00, at
the night's low traffic, beside the reindex), so the models must sit through it quietly. The report's
rows carry their ``start_hour``; the headline figures are over all runs and, under ``by_start_hour``,
per start hour.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Iterable, Iterator

from detector.errors import DetectorError
from detector.simulate.command import DEFAULT_TOPICS

AFTERMATH_SECONDS = 1800.0  # restarts and rollbacks settle within this after mitigation
BATCH = 5000  # records per process() call: the service's max_poll_records
START = 1714521600.0  # 2024-05-01T00:00:00Z: a fixed day, so a run is reproducible
START_HOURS = (0.0, 9.0)  # runs from 00:00 and from 09:00 UTC: the second has midnight well inside


def add_command(subparsers) -> None:
    from detector.commands.common import add_pipeline_option, positive_float, positive_int

    p = subparsers.add_parser(
        "incidents",
        help="detection rate, lead time and false alerts on the simulated incidents",
        description="Replay every simulator scenario through the decoders, pipeline and alerting in event "
        "time; report per scenario whether an alert fired before customers noticed, how long before, "
        "and the false alerts per simulated day.",
    )
    add_pipeline_option(p)
    p.add_argument("--hours", type=positive_float, default=24.0, help="simulated hours per scenario (default 24)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    p.add_argument("--scenario", action="append", metavar="NAME",
                   help="only this scenario (repeatable; default: all)")
    p.add_argument("--partitions", type=positive_int, default=3,
                   help="partitions per topic to spread entities over (default 3)")
    p.add_argument("--start-hours", type=_hours_list, default=list(START_HOURS), metavar="H[,H...]",
                   help="UTC hours of the day the runs start at, one run per scenario each (default 0,9: "
                   "the 09:00 run has the nightly log rotation three hours before the disruption)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def hours_of_day(hours: list[float]) -> bool:
    """Start hours as the runs take them: at least one, each from 0 up to 24."""
    return bool(hours) and all(0.0 <= h < 24.0 for h in hours)


def _hours_list(text: str) -> list[float]:
    try:
        hours = [float(h) for h in text.split(",") if h.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of hours: {text!r}") from None
    if not hours_of_day(hours):
        raise argparse.ArgumentTypeError(f"hours of the day between 0 and 24, comma-separated: {text!r}")
    return hours


def simulator_spec(spec):
    """The pipeline spec with the simulator's two inputs in place of its own."""
    from detector.config import InputSpec

    inputs = [InputSpec(topic=DEFAULT_TOPICS["log"], kind="log", format="ecs"),
              InputSpec(topic=DEFAULT_TOPICS["metric"], kind="metric", format="metric_json")]
    return spec.model_copy(update={"inputs": inputs})


def raw_batches(records: Iterable, partitions: int) -> Iterator[list]:
    """Simulated records as a consumer would poll them: topic by kind, partition by key, offsets per partition."""
    from kafka.partitioner.default import murmur2

    from detector.records import RawRecord

    part_of: dict[bytes, int] = {}
    offsets: dict[tuple[str, int], int] = {}
    batch: list = []
    for rec in records:
        p = part_of.get(rec.key)
        if p is None:
            # Kafka's default partitioner, as the producer of `simulate` would choose.
            p = part_of[rec.key] = (murmur2(rec.key) & 0x7FFFFFFF) % partitions
        topic = DEFAULT_TOPICS[rec.kind]
        off = offsets.get((topic, p), 0)
        offsets[(topic, p)] = off + 1
        batch.append(RawRecord(topic, p, off, rec.timestamp, rec.key, rec.value))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def alerts_of(result, use_incidents: bool, window: float, last_firing: dict[str, float]) -> list[tuple[float, str, str]]:
    """(event time, entity, signal) of the pages in one batch result."""
    if use_incidents:
        return [(e.timestamp, e.incident.entity, ",".join(s["signal"] for s in e.incident.signals))
                for e in result.incidents if e.kind == "opened"]
    out = []
    for tr in result.transitions:
        if tr.state != "firing":
            continue
        prev = last_firing.get(tr.entity)
        last_firing[tr.entity] = tr.timestamp
        if prev is None or tr.timestamp - prev > window:
            out.append((tr.timestamp, tr.entity, tr.signal))
    return out


def replay(scenario, spec, hours: float, seed: int, partitions: int,
           start: float = START) -> list[tuple[float, str, str]]:
    """Every page the pipeline raises on one scenario, in event time."""
    from detector.pipeline import Pipeline
    from detector.simulate import generate

    pipeline = Pipeline.from_spec(spec)
    settings = getattr(spec, "incidents", None)
    # Incidents page when the pipeline groups them; otherwise each entity's firing transitions do.
    use_incidents = bool(settings is not None and settings.enabled and hasattr(pipeline, "incidents"))
    window = spec.alerting.incident_window_seconds
    last: dict[str, float] = {}
    pages: list[tuple[float, str, str]] = []
    for batch in raw_batches(generate(scenario, start, hours, seed), partitions):
        pages.extend(alerts_of(pipeline.process(batch), use_incidents, window, last))
    pages.extend(alerts_of(pipeline.flush(), use_incidents, window, last))
    return sorted(pages)


def score(scenario, pages: list[tuple[float, str, str]], hours: float, start: float = START) -> dict:
    days = hours / 24.0
    tl = scenario.timeline(start, hours)
    false = []
    first_on_entity = None
    for t, entity, signal in pages:
        related = tl is not None and tl.disruption_start <= t <= tl.impact_end + AFTERMATH_SECONDS \
            and scenario.involves(entity)
        if not related:
            false.append((t, entity, signal))
        elif entity == scenario.entity and t <= tl.impact_end and first_on_entity is None:
            first_on_entity = (t, signal)
    row = {"name": scenario.name, "entity": scenario.entity, "detected": None, "lead_seconds": None,
           "false_alerts_per_day": round(len(false) / days, 3), "alerts": len(pages),
           "false_alerts": len(false)}
    if tl is not None:
        row["detected"] = first_on_entity is not None and first_on_entity[0] < tl.customer_visible_start
        if first_on_entity is not None:
            row["lead_seconds"] = round(tl.customer_visible_start - first_on_entity[0], 1)
            row["first_alert_signal"] = first_on_entity[1]
    if false:
        row["false_alert_examples"] = [{"offset_hours": round((t - start) / 3600.0, 2), "entity": e, "signal": s}
                                       for t, e, s in false[:5]]
    return row


def summarise(rows: list[dict], hours: float) -> dict:
    """Detection rate and median lead over the disruption runs, false alerts per simulated day over all."""
    disrupted = [r for r in rows if r["detected"] is not None]
    leads = [r["lead_seconds"] for r in disrupted if r["detected"]]
    total_false = sum(r["false_alerts"] for r in rows)
    return {
        "detection_rate": round(sum(r["detected"] for r in disrupted) / len(disrupted), 3) if disrupted else None,
        "median_lead_seconds": statistics.median(leads) if leads else None,
        "false_alerts_per_day": round(total_false / (len(rows) * hours / 24.0), 3) if rows else None,
    }


def evaluate(spec, hours: float = 24.0, seed: int = 0, names: list[str] | None = None,
             partitions: int = 3, progress: bool = False, start_hours=(0.0,)) -> dict:
    """The report over ``start_hours``: one run per scenario and start hour (one run from 00:00
    unless given; the command and the tuner default to ``START_HOURS``)."""
    from detector.simulate import SCENARIOS
    from detector.simulate.generate import SCRAPE_INTERVAL, check_size

    spec = simulator_spec(spec)
    chosen = [SCENARIOS[n] for n in names] if names else list(SCENARIOS.values())
    short = [sc for sc in chosen if hours < sc.min_hours]  # min_hours is 0 for a scenario with no fault
    if short:  # refused before any run, not after the first scenarios have taken their time
        raise DetectorError(f"--hours {hours:g} is too short for " + ", ".join(
            f"{sc.name!r} (needs at least {sc.min_hours:g})" for sc in short) + "; raise --hours or pick --scenario")
    check_size(hours, SCRAPE_INTERVAL)
    started = time.perf_counter()
    rows = []
    by_hour = {}
    for h in start_hours:
        start = START + h * 3600.0
        first = len(rows)
        for sc in chosen:
            t0 = time.perf_counter()
            pages = replay(sc, spec, hours, seed, partitions, start)
            row = score(sc, pages, hours, start)
            row["start_hour"] = h
            rows.append(row)
            if progress:
                print(f"{sc.name} from {h:g}h: {len(pages)} alerts, {time.perf_counter() - t0:.1f} s",
                      file=sys.stderr, flush=True)
        by_hour[f"{h:g}"] = summarise(rows[first:], hours)
    return {
        "scenarios": rows,
        **summarise(rows, hours),
        "hours": hours,
        "seed": seed,
        "start_hours": list(start_hours),
        "by_start_hour": by_hour,
        "seconds": round(time.perf_counter() - started, 1),
    }


def run(args: argparse.Namespace) -> int:
    from detector.commands.common import pipeline_from_args
    from detector.simulate import SCENARIOS

    unknown = [n for n in args.scenario or () if n not in SCENARIOS]
    if unknown:
        raise DetectorError(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    report = evaluate(pipeline_from_args(args), args.hours, args.seed, args.scenario, args.partitions,
                      progress=not args.json, start_hours=args.start_hours)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{'scenario':<28} {'start':>5} {'entity':<12} {'detected':>8} {'lead s':>8} {'false/day':>9}")
    for r in report["scenarios"]:
        detected = "-" if r["detected"] is None else ("yes" if r["detected"] else "no")
        lead = "-" if r["lead_seconds"] is None else f"{r['lead_seconds']:.0f}"
        print(f"{r['name']:<28} {r['start_hour']:>4g}h {r['entity'] or '-':<12} {detected:>8} {lead:>8} "
              f"{r['false_alerts_per_day']:>9.2f}")
    for h, s in report["by_start_hour"].items():
        print(f"from {h}h: detection rate {s['detection_rate']}, median lead {s['median_lead_seconds']} s, "
              f"false alerts per day {s['false_alerts_per_day']}")
    print(f"detection rate {report['detection_rate']}, median lead {report['median_lead_seconds']} s, "
          f"false alerts per day {report['false_alerts_per_day']}")
    return 0
