"""Turn a scenario into a stream of Kafka-ready records, in event-time order.

``generate(scenario, start, hours, seed)`` builds the world (normal day, then the scenario's
disruption, then the scrape values), then walks every scrape and every log line in event-time order,
rendering each only when it is reached, so records stream out without the day being held in memory
as text. The record key is the service name: an entity's records stay in one partition.

Volume at the defaults (30 s scrapes, ``volume=1.0``): about 180k metric points and 90k log lines
per simulated day. ``volume`` scales the log lines; ``scrape_interval`` sets the metric resolution.
"""

from __future__ import annotations

import math
import random
from typing import Iterator, NamedTuple

import numpy as np

from detector.errors import DetectorError
from detector.simulate import lines, normal
from detector.simulate.encode import Encoder
from detector.simulate.fleet import ERROR_LOG_BOOST, METRICS, World
from detector.simulate.scenarios import SCENARIOS, Scenario
from detector.simulate.signals import LATENCY_SIGMA, P99_OVER_MEDIAN, measure


class SimRecord(NamedTuple):
    kind: str  # "log" | "metric"
    timestamp: float  # event time, seconds since the epoch, whole milliseconds
    key: bytes  # the entity (service name)
    value: bytes  # the JSON payload (see detector.simulate.encode)


def resolve(scenario: Scenario | str) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    try:
        return SCENARIOS[scenario]
    except KeyError:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}") from None


# The world holds every instance's drivers and scrapes for the whole run in memory, about 2.5 KB per
# scrape of the fleet: this many scrapes is about 0.6 GB (7 days at 3 s, or a day at 0.35 s).
MAX_SCRAPES = 250_000
SCRAPE_INTERVAL = 30.0  # seconds between scrapes, unless told otherwise


def check_size(hours: float, scrape_interval: float) -> None:
    """Refuse a run whose world would not fit in memory; commands call it before they start anything."""
    scrapes = math.ceil(hours * 3600.0 / scrape_interval)
    if scrapes > MAX_SCRAPES:
        raise DetectorError(f"{hours:g} hours at a scrape every {scrape_interval:g} s is {scrapes:,} scrapes; at most "
                            f"{MAX_SCRAPES:,} can be simulated (the whole run is held in memory)")


def build_world(scenario: Scenario | str, start: float, hours: float = 24.0, seed: int = 0, *,
                volume: float = 1.0, scrape_interval: float = SCRAPE_INTERVAL) -> World:
    """The world after the normal day, the disruption and the scrapes, with its request-line streams."""
    scenario = resolve(scenario)
    if hours <= 0 or volume < 0 or scrape_interval <= 0:
        raise ValueError("hours and scrape_interval must be positive and volume not negative")
    check_size(hours, scrape_interval)
    timeline = scenario.timeline(start, hours)
    world = World(start, hours, scrape_interval, seed, volume)
    normal.apply(world)
    if timeline is not None:
        world.np_rng = world.rng(f"scenario:{scenario.name}")
        scenario.inject(world, timeline)
    measure(world)
    for inst in world.instances:
        i = inst.index
        world.np_rng = world.rng(f"requests:{i}")
        fail = world.fail_normal[i] + world.fail_incident[i]
        rate = world.rps[i] * inst.service.log_share * (1.0 + (ERROR_LOG_BOOST - 1.0) * fail) * volume
        world.add_poisson(i, rate, _request_lines(world, i))
    return world


def _request_lines(world: World, i: int):
    """Request lines of one instance: failures as often as the drivers say, durations from its p99."""
    ok, failed = lines.REQUESTS[world.instances[i].service.name]
    fn, fi = world.fail_normal[i], world.fail_incident[i]
    mu = np.log(np.maximum(world.p99[i], 1e-4) * 1000.0 / P99_OVER_MEDIAN)
    incident = world.incident_lines.get(i)
    boost = ERROR_LOG_BOOST

    def render(r: random.Random, t: float, k: int):
        ms = math.exp(r.gauss(mu[k], LATENCY_SIGMA))
        p_normal, p_incident = fn[k], fi[k]
        p = p_normal + p_incident
        if r.random() * (1.0 - p + boost * p) < boost * p:  # this line is a failure
            if p_incident > 0.0 and incident is not None and r.random() * p < p_incident:
                return incident(r, t, k, ms)
            return failed(r, ms)
        return ok(r, ms)

    return render


def generate(scenario: Scenario | str, start: float, hours: float = 24.0, seed: int = 0, *,
             volume: float = 1.0, scrape_interval: float = SCRAPE_INTERVAL) -> Iterator[SimRecord]:
    """Every record of the scenario in event-time order; the same arguments give the same records."""
    world = build_world(scenario, start, hours, seed, volume=volume, scrape_interval=scrape_interval)
    return render(world, schedule(world), seed)


class Schedule(NamedTuple):
    """Every record of a world, in event-time order, before rendering: kind 0 is a scrape (one record
    per metric), kind 1 a log line; ``who`` is the instance or the stream, ``tick`` the tick index."""

    times: np.ndarray
    kinds: np.ndarray
    who: np.ndarray
    ticks: np.ndarray

    def __len__(self) -> int:
        scrapes = int((self.kinds == 0).sum())
        return scrapes * len(METRICS) + (len(self.kinds) - scrapes)


def schedule(world: World) -> Schedule:
    n_inst = len(world.instances)
    jitter = world.rng("scrape").random((n_inst, world.t.size)) * 0.05
    times, kinds, who, what = [], [], [], []
    for inst in world.instances:
        i = inst.index
        ticks = np.nonzero(world.up[i])[0]
        # Each target is scraped at its own fixed offset into the interval, plus a little jitter.
        t = world.t[ticks] + (0.03 + 0.1 * i / n_inst) * world.dt + jitter[i, ticks]
        times.append(np.round(t * 1000.0) / 1000.0)
        kinds.append(np.zeros(ticks.size, np.int8))
        who.append(np.full(ticks.size, i))
        what.append(ticks)
    for s, stream in enumerate(world.streams):
        ticks = ((stream.times - world.start) // world.dt).astype(int)
        keep = np.ones(ticks.size, bool) if stream.while_down else world.up[stream.instance, ticks]
        times.append(stream.times[keep])
        kinds.append(np.ones(int(keep.sum()), np.int8))
        who.append(np.full(int(keep.sum()), s))
        what.append(ticks[keep])
    times_a = np.concatenate(times)
    order = np.argsort(times_a, kind="stable")
    return Schedule(times_a[order], *(np.concatenate(x)[order] for x in (kinds, who, what)))


def render(world: World, plan: Schedule, seed: int) -> Iterator[SimRecord]:
    """Render the scheduled records in order; line texts draw from one seeded stream, in time order."""
    rng = random.Random(seed)
    enc = Encoder()
    insts = world.instances
    keys = [inst.service.name.encode() for inst in insts]
    series = [world.measured[m].tolist() for m in METRICS]
    streams = world.streams
    for t, kind, w, k in zip(plan.times.tolist(), plan.kinds.tolist(), plan.who.tolist(), plan.ticks.tolist()):
        if kind == 0:
            inst = insts[w]
            name, host = inst.service.name, inst.host
            for metric, values in zip(METRICS, series):
                yield SimRecord("metric", t, keys[w], enc.metric(t, metric, name, host, values[w][k]))
        else:
            stream = streams[w]
            inst = insts[stream.instance]
            level, message = stream.render(rng, t, k)
            yield SimRecord("log", t, keys[stream.instance],
                            enc.log(t, inst.service.name, inst.host, level, message))
