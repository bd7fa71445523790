"""The simulated fleet and the state its signals are derived from.

Six services on nine hosts; each instance is scraped for seven metrics (see ``METRICS``). A ``World``
holds, for every instance and every scrape tick, the *drivers* of those signals: a traffic multiplier,
a latency multiplier, an extra failure probability, memory and disk use, extra cpu, whether the
instance is up. The normal day (``detector.simulate.normal``) sets them, a scenario edits them, and
``World.measure`` turns them into the noisy values a scrape returns. Log lines are streams of event
times, each with a renderer; the normal day and the scenarios add them the same way.

Arrays are indexed ``[instance, tick]``; tick ``k`` covers ``[t[k], t[k] + dt)``.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

# (rng, event time, tick index) -> (level, message)
Render = Callable[[random.Random, float, int], tuple[str, str]]

GIB = 1024**3
MIB = 1024**2

METRICS = (
    "http_requests_per_second",
    "http_request_error_ratio",
    "http_request_duration_seconds_p99",
    "cpu_usage_ratio",
    "process_resident_memory_bytes",
    "disk_used_ratio",
    "open_connections",
)

# Failed requests are always logged while successful ones are sampled (as most services do), so an
# error is this many times likelier to appear in the log than in the traffic.
ERROR_LOG_BOOST = 10.0


@dataclass(frozen=True)
class Service:
    name: str
    hosts: tuple[str, ...]
    style: str  # log dialect: "nginx", "go", "python", "java"
    app: str  # process / main class name used in start-up lines
    version: str
    peak_rps: float  # requests per second per instance at the daily peak
    p99_seconds: float
    error_ratio: float  # share of requests that fail on a normal day
    memory_bytes: float
    memory_limit_bytes: float
    disk_ratio: float  # used share of the data volume just after the nightly clean-up
    disk_growth_per_hour: float
    cpu_idle: float
    cpu_per_rps: float
    connections_idle: float  # pooled / keep-alive connections held open regardless of load
    log_share: float  # share of successful requests written to the log
    calls: tuple[str, ...] = ()  # downstream services


FLEET: tuple[Service, ...] = (
    Service("api-gateway", ("node-1", "node-2"), "nginx", "nginx", "1.25.3", 180.0, 0.32, 0.0015,
            310 * MIB, 1 * GIB, 0.38, 0.012, 0.04, 0.0021, 60, 0.0011, ("auth", "checkout", "inventory", "search")),
    Service("auth", ("node-3",), "go", "auth", "1.9.3", 90.0, 0.045, 0.012,
            140 * MIB, 512 * MIB, 0.22, 0.004, 0.02, 0.0016, 25, 0.0022),
    Service("checkout", ("node-4", "node-5"), "python", "checkout", "3.7.2", 25.0, 0.62, 0.003,
            430 * MIB, 1 * GIB, 0.31, 0.006, 0.05, 0.0105, 20, 0.008, ("auth", "payments", "inventory")),
    Service("payments", ("node-6", "node-7"), "java", "PaymentsApplication", "2.14.1", 12.0, 0.95, 0.004,
            1.25 * GIB, 2 * GIB, 0.27, 0.005, 0.06, 0.021, 30, 0.016),
    Service("inventory", ("node-8",), "java", "InventoryApplication", "5.2.0", 60.0, 0.085, 0.001,
            0.9 * GIB, 2 * GIB, 0.44, 0.007, 0.05, 0.0045, 20, 0.0033),
    Service("search", ("node-9",), "java", "SearchNode", "8.11.1", 70.0, 0.14, 0.001,
            2.6 * GIB, 4 * GIB, 0.52, 0.004, 0.08, 0.0042, 15, 0.0030),
)
SERVICES = {s.name: s for s in FLEET}


class Instance(NamedTuple):
    index: int
    service: Service
    host: str


class Stream(NamedTuple):
    instance: int
    times: np.ndarray  # event times, already rounded to the millisecond
    render: Render
    while_down: bool  # emitted even when the instance is down (last words before a crash)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class World:
    """Drivers of every signal of every instance, plus the log streams; see the module docstring."""

    def __init__(self, start: float, hours: float, scrape_interval: float, seed: int, volume: float):
        self.start = float(start)
        self.end = self.start + hours * 3600.0
        self.dt = float(scrape_interval)
        n = int(np.ceil(hours * 3600.0 / self.dt))
        self.t = self.start + np.arange(n) * self.dt
        self.volume = volume
        self.seed = seed
        self.np_rng = self.rng("streams")  # whoever adds lines sets this to their own stream first
        self.instances = [Instance(i, s, h) for i, (s, h) in enumerate((s, h) for s in FLEET for h in s.hosts)]
        shape = (len(self.instances), n)
        self.traffic = np.ones(shape)  # multiplier on the service's normal traffic
        self.latency = np.ones(shape)  # multiplier on p99 latency
        self.errors = np.zeros(shape)  # extra failure probability from incidents
        self.error_mult = np.ones(shape)  # multiplier on the normal failure probability (benign blips)
        self.memory = np.array([[i.service.memory_bytes] for i in self.instances]) * np.ones(shape)
        self.disk = np.zeros(shape)  # used ratio, set by the normal day
        self.cpu_extra = np.zeros(shape)
        self.connections_extra = np.zeros(shape)
        self.up = np.ones(shape, dtype=bool)
        self.last_restart = np.full(shape, -np.inf)  # event time of the latest start of the process
        self.streams: list[Stream] = []
        # Renderer of incident failures per instance: (rng, time, tick, duration ms) -> (level, message)
        # for the request lines that fail because of ``errors``.
        self.incident_lines: dict[int, Callable[[random.Random, float, int, float], tuple[str, str]]] = {}
        # Filled by detector.simulate.signals.measure: scraped values, and the true rates lines follow.
        self.measured: dict[str, np.ndarray] = {}
        self.rps = self.p99 = self.fail_normal = self.fail_incident = np.zeros(shape)

    def rng(self, purpose: str) -> np.random.Generator:
        """An independent random stream per purpose, so adding a disruption leaves the normal day as it was."""
        return np.random.default_rng([self.seed, zlib.crc32(purpose.encode())])

    def measured_value(self, metric: str, instance: int, k: int) -> float:
        return float(self.measured[metric][instance, k])

    # -- addressing ------------------------------------------------------------------------------

    def rows(self, service: str) -> list[int]:
        return [i.index for i in self.instances if i.service.name == service]

    def tick(self, t: float) -> int:
        return int(np.clip((t - self.start) // self.dt, 0, len(self.t) - 1))

    def between(self, t0: float, t1: float) -> np.ndarray:
        """Boolean mask of the ticks that start in [t0, t1)."""
        return (self.t >= t0) & (self.t < t1)

    def ramp(self, t0: float, t1: float) -> np.ndarray:
        """0 before t0, rising smoothly to 1 at t1 and after."""
        return smoothstep((self.t - t0) / max(t1 - t0, 1e-9))

    def since(self, t0: float) -> np.ndarray:
        """Seconds since t0 at each tick, 0 before it."""
        return np.maximum(self.t - t0, 0.0)

    # -- log streams -----------------------------------------------------------------------------

    def add_lines(self, instance: int, times, render: Render, while_down: bool = False) -> None:
        times = np.round(np.asarray(times, dtype=float) * 1000.0) / 1000.0
        times = times[(times >= self.start) & (times < self.end)]
        if times.size:
            self.streams.append(Stream(instance, times, render, while_down))

    def add_poisson(self, instance: int, rate, render: Render, t0: float | None = None,
                    t1: float | None = None) -> None:
        """Lines at ``rate`` per second (a scalar or one value per tick) between t0 and t1."""
        lam = np.broadcast_to(np.asarray(rate, dtype=float), self.t.shape) * self.dt
        if t0 is not None or t1 is not None:
            lam = lam * self.between(self.start if t0 is None else t0, self.end if t1 is None else t1)
        # Offsets come from their own stream: then the lines before a change of rate stay where they were.
        offsets = np.random.default_rng(self.np_rng.integers(2**63))
        counts = self.np_rng.poisson(np.maximum(lam, 0.0))
        ticks = np.repeat(np.arange(self.t.size), counts)
        times = self.t[ticks] + offsets.random(ticks.size) * self.dt
        if t0 is not None:
            times = np.maximum(times, t0)
        self.add_lines(instance, np.sort(times), render)

    def add_periodic(self, instance: int, every: float, render: Render, jitter: float = 2.0,
                     t0: float | None = None, t1: float | None = None) -> None:
        """A background job every ``every`` seconds, aligned to the clock like a cron schedule."""
        first = np.ceil((self.start if t0 is None else t0) / every) * every
        times = np.arange(first, self.end if t1 is None else t1, every)
        times = times + self.np_rng.random(times.size) * jitter + 0.05 * instance
        self.add_lines(instance, times, render)

    # -- helpers scenarios and the normal day share -------------------------------------------------

    def go_down(self, instance: int, t0: float, t1: float) -> None:
        """The process is gone from t0 to t1: no scrapes, no log lines; it starts afresh at t1."""
        self.up[instance, self.between(t0, t1)] = False
        later = self.t >= t1
        self.last_restart[instance, later] = np.maximum(self.last_restart[instance, later], t1)

    def occurrences(self, hour_utc: float) -> list[float]:
        """Event times in the run at which the UTC clock reads ``hour_utc``."""
        day0 = np.floor(self.start / 86400.0) * 86400.0
        out, day = [], day0
        while day < self.end:
            t = day + hour_utc * 3600.0
            if self.start <= t < self.end:
                out.append(float(t))
            day += 86400.0
        return out
