"""``outage-detector demo``: the whole path on one laptop, in about a minute.

Starts an embedded broker (unless one is given), the service, and a generator that plays a day of a
small fleet's logs and metrics with an injected incident. History before the incident is played as
fast as the service takes it; the incident itself at ``--speed`` event-seconds per second, so the
alerts can be watched arriving before the customer-visible start.
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
import threading
import time
import uuid

from detector.commands.common import exit_on_signal, port_number, positive_float, setup_logging
from detector.errors import DetectorError

log = logging.getLogger("detector.demo")

HOST = "127.0.0.1"  # the demo's /metrics: on this machine only


def add_command(sub) -> None:
    from detector.simulate import SCENARIOS

    p = sub.add_parser(
        "demo",
        help="embedded broker + generated traffic with an injected incident + the service",
        description="Run the service against generated traffic with an injected incident and show the "
        "alerts it raises ahead of the customer-visible start.",
    )
    p.add_argument("--scenario", default="error_burst_after_deploy", choices=sorted(SCENARIOS),
                   help="the incident to inject (default error_burst_after_deploy; see simulate --list)")
    p.add_argument("--bootstrap-servers", help="use this Kafka instead of starting the embedded broker")
    p.add_argument("--port", type=port_number, default=9108, help="port for /metrics (default 9108; 0 picks a free one)")
    p.add_argument("--hours", type=positive_float, default=24.0, help="simulated hours of traffic (default 24)")
    p.add_argument("--speed", type=positive_float, default=120.0, help="event-seconds per second during the incident (default 120)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated traffic (default 0)")
    p.add_argument("--keep-running", action="store_true", help="keep serving /metrics until Ctrl-C")
    p.set_defaults(func=run)


def run(args) -> int:
    from detector.broker import EmbeddedBroker
    from detector.commands.run import install_stop_handlers
    from detector.config import load_pipeline
    from detector.http_server import check_free
    from detector.kafka_io import ensure_topics
    from detector.service import Service
    from detector.simulate import SCENARIOS
    from detector.simulate.generate import SCRAPE_INTERVAL, check_size

    setup_logging()
    scenario = SCENARIOS[args.scenario]
    # Refused before a broker and a service are started for nothing.
    if args.hours < scenario.min_hours:
        raise DetectorError(f"scenario {scenario.name!r} needs at least {scenario.min_hours:g} hours, "
                            f"not {args.hours:g}; raise --hours")
    check_size(args.hours, SCRAPE_INTERVAL)
    check_free(HOST, args.port, "--port")
    # Until the service's own handlers are in place, SIGTERM ends the demo through the cleanup below
    # (as Ctrl-C does), so the broker it started and its state folder do not outlive it.
    signal.signal(signal.SIGTERM, exit_on_signal)
    broker = None
    state_dir = None
    service = None
    try:
        bootstrap = args.bootstrap_servers
        if not bootstrap:
            broker = EmbeddedBroker().start()
            bootstrap = broker.bootstrap_servers
            print(f"embedded broker on {bootstrap}", flush=True)
        state_dir = tempfile.mkdtemp(prefix="outage-detector-demo-")
        spec = load_pipeline(None, name="demo", kafka={"session_timeout_ms": 6000}).pinned(
            # The environment may add settings (Kafka credentials for --bootstrap-servers) but not move
            # the demo onto other topics, broker, port, consumer group or state folder than its own, nor
            # switch off the /metrics it prints the address of.
            inputs=[
                {"topic": "demo-logs", "kind": "log", "format": "ecs"},
                {"topic": "demo-metrics", "kind": "metric", "format": "metric_json"},
            ],
            kafka={"bootstrap_servers": bootstrap, "group_id": f"outage-detector-demo-{uuid.uuid4().hex[:8]}"},
            sinks={"prometheus": {"host": HOST, "port": args.port, "enabled": True}},
            checkpoint={"directory": state_dir},
        )
        opened: list = []  # IncidentEvents of kind "opened", in the order the service raised them
        ensure_topics(spec.kafka, ["demo-logs", "demo-metrics", spec.kafka.dead_letter_topic])
        service = Service(spec, listeners=[lambda res: opened.extend(e for e in res.incidents if e.kind == "opened")])
        service.start()
        print(f"metrics: {service.http.url}/metrics   templates: {service.http.url}/templates", flush=True)
        install_stop_handlers(service.stop)
        worker = threading.Thread(target=service.run, name="service", daemon=True)
        worker.start()
        summary = _play(scenario, spec, args, service)
        _wait_until_consumed(service, summary["records"])
        _report(scenario, summary, opened)
        if args.keep_running:
            print(f"still serving {service.http.url}/metrics; Ctrl-C to stop", flush=True)
            while worker.is_alive():
                worker.join(0.5)
    finally:
        if service is not None:
            service.stop()
            deadline = time.monotonic() + 30
            while service.source is not None and time.monotonic() < deadline:
                time.sleep(0.1)
        if broker is not None:
            broker.stop()
        if state_dir is not None:
            shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def _play(scenario, spec, args, service) -> dict:
    from kafka import KafkaProducer

    from detector.kafka_io import client_config
    from detector.simulate import generate

    # The simulated day starts at a midnight UTC, so every run of the demo (for a seed) plays the same
    # day against the same clock of daily events and prints the same incidents.
    start = (time.time() // 86400 - 1) * 86400 - max(0.0, args.hours - 24.0) * 3600
    disruption = scenario.disruption_start(start, args.hours)
    visible = scenario.customer_visible_start(start, args.hours)
    fast_until = disruption - 1800  # the last half hour before the disruption is played at --speed too
    end = visible + 1800  # half an hour of impact is enough to see the alerts
    print(
        f"scenario {scenario.name}: {scenario.description}\n"
        f"  affected entity: {scenario.entity}; precursor starts at {_hm(disruption, start)}, "
        f"customers notice at {_hm(visible, start)} (simulated clock)",
        flush=True,
    )
    producer = KafkaProducer(**client_config(spec.kafka), linger_ms=20, acks=1)
    topics = {"log": "demo-logs", "metric": "demo-metrics"}
    sent = 0
    paced_from = None
    wall0 = None
    for rec in generate(scenario, start=start, hours=args.hours, seed=args.seed):
        if rec.timestamp > end:
            break
        if rec.timestamp >= fast_until:
            if paced_from is None:
                producer.flush()
                paced_from, wall0 = rec.timestamp, time.monotonic()
                print(f"history played ({sent} records); now at {args.speed:g}x real time", flush=True)
            ahead = (rec.timestamp - paced_from) / args.speed - (time.monotonic() - wall0)
            if ahead > 0:
                time.sleep(ahead)
        producer.send(topics[rec.kind], key=rec.key, value=rec.value, timestamp_ms=int(rec.timestamp * 1000))
        sent += 1
        if service.stop_event.is_set():
            break
    producer.flush()
    producer.close()
    return {"records": sent, "start": start, "disruption": disruption, "visible": visible}


def _wait_until_consumed(service, n: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not service.stop_event.is_set():
        with service.lock:
            done = sum(service.pipeline.consumed.values())
        if done >= n:
            return
        time.sleep(0.2)


def _hm(t: float, start: float) -> str:
    h, rem = divmod(int(t - start), 3600)
    return f"+{h:02d}h{rem // 60:02d}m"


def _report(scenario, summary: dict, opened: list) -> None:
    """Lead time of the first incident on the faulty service once the fault began; incidents on
    services the fault does not involve, or before it began, would have been false pages."""
    during = [e for e in opened if e.timestamp >= summary["disruption"] and scenario.involves(e.incident.entity)]
    false = len(opened) - len(during)
    print(f"incidents: {len(during)} on services the disruption involves, {false} false (elsewhere or before it)",
          flush=True)
    hits = [e for e in during if e.incident.entity == scenario.entity]
    if not hits:
        print(f"no incident opened for {scenario.entity} during the disruption", flush=True)
        return
    first = min(hits, key=lambda e: e.timestamp)
    lead = summary["visible"] - first.timestamp
    when = "before" if lead >= 0 else "after"
    signals = ", ".join(s["signal"] for s in first.incident.signals)
    print(
        f"first incident for {scenario.entity} ({signals}) opened at {_hm(first.timestamp, summary['start'])}: "
        f"{abs(lead):.0f} s {when} customers noticed",
        flush=True,
    )
