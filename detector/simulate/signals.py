"""From drivers to scraped values: what each of the seven metrics reads at each scrape.

The noise is the noise of measurement, so it shrinks where there is more to measure: request counts
are Poisson, failures binomial among them, and a p99 estimated from few requests wobbles more than one
from many. Open connections follow Little's law (in flight = rate x mean latency) on top of the pooled
idle ones, so a latency creep shows there too. Values of a down instance are NaN: it was not scraped.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom, poisson

from detector.simulate.fleet import World
from detector.simulate.normal import drift

# p99 / mean of the lognormal request-duration distribution the request lines are drawn from.
LATENCY_SIGMA = 0.5
P99_OVER_MEDIAN = float(np.exp(2.326 * LATENCY_SIGMA))
P99_OVER_MEAN = float(P99_OVER_MEDIAN / np.exp(LATENCY_SIGMA**2 / 2))


def measure(world: World) -> None:
    """Fill ``world.measured`` (metric -> [instance, tick]) and the true rates the log lines follow."""
    rng = world.rng("measure")
    n_inst, n_t = world.traffic.shape
    svc = [i.service for i in world.instances]
    col = lambda attr: np.array([[getattr(s, attr)] for s in svc], dtype=float)  # noqa: E731

    rps = col("peak_rps") * world.traffic
    load = np.clip(world.traffic, 0.0, 3.0)
    p99 = col("p99_seconds") * (0.8 + 0.3 * load) * world.latency
    fail_normal = np.clip(col("error_ratio") * world.error_mult, 0.0, 1.0)
    fail_incident = np.clip(world.errors, 0.0, 1.0 - fail_normal)

    # Inverse-CDF draws from uniforms of a fixed shape: a disruption that changes the rates after its
    # start then leaves every random draw before it, of every instance, exactly as on a quiet day.
    requests = poisson.ppf(rng.random((n_inst, n_t)), np.maximum(rps * world.dt, 1e-9))
    failures = binom.ppf(rng.random((n_inst, n_t)), requests, np.clip(fail_normal + fail_incident, 0.0, 1.0))
    observed_rps = requests / world.dt
    error_ratio = failures / np.maximum(requests, 1)
    p99_noise = rng.normal(0.0, 1.0, (n_inst, n_t)) * (0.05 + 0.8 / np.sqrt(requests + 1.0))
    observed_p99 = p99 * np.exp(p99_noise)

    cpu = (col("cpu_idle") + col("cpu_per_rps") * rps + world.cpu_extra) * (1 + rng.normal(0, 0.05, (n_inst, n_t)))
    cpu = np.clip(cpu, 0.005, 1.0)

    # A fresh process starts with ~70% of its settled footprint and fills caches over ~20 minutes.
    age = world.t[None, :] - world.last_restart
    warm = 0.7 + 0.3 * (1 - np.exp(-np.maximum(age, 0.0) / 1200.0))
    memory = world.memory * warm * (1 + 0.03 * (load - 0.6)) * np.exp(drift(world, rng, n_inst, 0.006, 20))
    memory = np.minimum(memory * (1 + rng.normal(0, 0.002, (n_inst, n_t))), col("memory_limit_bytes"))

    disk = np.clip(world.disk + rng.normal(0.0, 1.5e-4, (n_inst, n_t)), 0.0, 1.0)
    in_flight = rps * p99 / P99_OVER_MEAN
    connections = poisson.ppf(rng.random((n_inst, n_t)),
                              np.maximum(col("connections_idle") + in_flight + world.connections_extra, 1e-9))

    values = {
        "http_requests_per_second": np.round(observed_rps, 3),
        "http_request_error_ratio": np.round(error_ratio, 5),
        "http_request_duration_seconds_p99": np.round(observed_p99, 4),
        "cpu_usage_ratio": np.round(cpu, 4),
        "process_resident_memory_bytes": np.round(memory),
        "disk_used_ratio": np.round(disk, 4),
        "open_connections": connections.astype(float),
    }
    for v in values.values():
        v[~world.up] = np.nan
    world.measured = values
    world.rps, world.p99, world.fail_normal, world.fail_incident = rps, p99, fail_normal, fail_incident
