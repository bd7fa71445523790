"""A normal day of the fleet: what every scenario, the quiet one included, starts from.

Traffic follows the clock (trough around 04:00 UTC, peak in the afternoon and a bump in the evening)
with slow random drift; disks fill with logs until the nightly rotation at 00:00 UTC; the search
node reindexes at 03:00 UTC. The day also carries what makes real days hard for a detector: routine
rolling deploys, short latency spikes and error blips, a newsletter traffic bump, background jobs,
JVM garbage collection lines and benign warnings. All of it comes from the world's "normal" random
streams, so the same seed gives the same normal day whatever scenario is then applied.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from detector.simulate import lines
from detector.simulate.fleet import GIB, MIB, World


def diurnal(t: np.ndarray) -> np.ndarray:
    """Relative traffic by time of day, about 0.25 at the night trough and 1.0 at the peak."""
    h = (t % 86400.0) / 3600.0
    day = 0.5 - 0.5 * np.cos(2 * np.pi * (h - 4.0) / 24.0)
    evening = np.exp(-(((h - 20.5 + 12) % 24 - 12) / 1.6) ** 2)
    return 0.22 + 0.66 * day**1.3 + 0.16 * evening


def drift(world: World, rng: np.random.Generator, n: int, sigma: float, minutes: float) -> np.ndarray:
    """Slow AR(1) noise with the given standard deviation and correlation time, one row per draw."""
    phi = np.exp(-world.dt / (minutes * 60.0))
    eps = rng.normal(0.0, sigma * np.sqrt(1 - phi**2), (n, world.t.size))
    eps[:, 0] = rng.normal(0.0, sigma, n)
    return lfilter([1.0], [1.0, -phi], eps, axis=1)


def fixed_lines(world: World, instance: int, entries, while_down: bool = False) -> None:
    """Lines with known times and texts: ``entries`` of (time, level, message)."""
    for t, level, msg in entries:
        world.add_lines(instance, [t], lambda r, _t, _k, level=level, msg=msg: (level, msg), while_down)


def restart(world: World, instance: int, t: float, downtime: float, version: str | None = None,
            crash: bool = False) -> None:
    """Stop the process at ``t`` (gracefully unless ``crash``) and start it ``downtime`` later."""
    inst = world.instances[instance]
    svc = inst.service
    if not crash:
        fixed_lines(world, instance, [(t - dt, lvl, m) for dt, lvl, m in lines.shutdown_lines(svc.style, svc.app)])
    back = t + downtime
    world.go_down(instance, t, back)
    start = lines.startup_lines(svc.style, svc.app, version or svc.version, inst.host)
    fixed_lines(world, instance, [(back + dt, lvl, m) for dt, lvl, m in start])
    # Cold caches and JIT compilation make the first minutes slower and busier.
    warm = world.between(back, back + 180.0)
    world.latency[instance, warm] *= 1.35
    world.cpu_extra[instance, warm] += 0.12


def apply(world: World) -> None:
    rng = world.rng("normal")
    world.np_rng = rng
    span = world.end - world.start
    n_inst = len(world.instances)
    services = sorted({i.service.name for i in world.instances})
    svc_noise = dict(zip(services, np.exp(drift(world, rng, len(services), 0.05, 40))))
    inst_noise = np.exp(drift(world, rng, n_inst, 0.02, 10))
    shape = diurnal(world.t)
    for inst in world.instances:
        world.traffic[inst.index] *= shape * svc_noise[inst.service.name] * inst_noise[inst.index]

    # A newsletter goes out most days: a short, fleet-wide surge of shoppers.
    if rng.random() < 0.7:
        t0 = world.start + rng.uniform(0.3, 0.65) * span
        bump = np.exp(-np.maximum(world.t - t0, 0) / 900.0) * (world.t >= t0)
        world.traffic *= 1.0 + 0.35 * bump

    _disks(world, rng)
    _routine_deploys(world, rng, span)
    _blips(world, rng, span)
    for inst in world.instances:
        _background(world, inst.index, rng)
        world.add_poisson(inst.index, 1 / 900.0 * world.volume * world.traffic[inst.index],
                          lambda r, t, k, f=lines.BENIGN[inst.service.name]: f(r))


def _disks(world: World, rng: np.random.Generator) -> None:
    hours_since_rotation = ((world.t % 86400.0) / 3600.0)
    for inst in world.instances:
        s = inst.service
        base = s.disk_ratio + rng.uniform(-0.02, 0.02)
        world.disk[inst.index] = base + s.disk_growth_per_hour * hours_since_rotation
    for i in world.rows("search"):
        for t0 in world.occurrences(3.0):
            fixed_lines(world, i, [(t0 + 2.0, "info", "reindex [products] -> [products-next] started (scheduled)")])
            grow = world.ramp(t0, t0 + 2400.0) * (world.t < t0 + 2700.0)
            world.disk[i] += 0.05 * grow
            world.cpu_extra[i] += 0.2 * world.between(t0, t0 + 2400.0)
            fixed_lines(world, i, [
                (t0 + 2405.0, "info", f"reindex [products] -> [products-next] completed: {int(rng.integers(46000, 50000))} docs in 40m"),
                (t0 + 2700.0, "info", "alias [products] swapped; deleted index [products-prev]"),
            ])


def _routine_deploys(world: World, rng: np.random.Generator, span: float) -> None:
    names = sorted({i.service.name for i in world.instances})
    for name in rng.choice(names, size=2, replace=False):
        t = world.start + rng.uniform(0.15, 0.6) * span
        t = np.floor(t / 60.0) * 60.0
        rows = world.rows(str(name))
        version = _bump(world.instances[rows[0]].service.version)
        for j, i in enumerate(rows):
            restart(world, i, t + 90.0 * j, float(rng.uniform(15, 40)), version)


def _bump(version: str) -> str:
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


def _blips(world: World, rng: np.random.Generator, span: float) -> None:
    n_inst = len(world.instances)
    days = span / 86400.0
    for _ in range(rng.poisson(4 * days)):  # GC storms, noisy neighbours: a few minutes of slow requests
        i, t0 = int(rng.integers(n_inst)), world.start + rng.uniform(0, span)
        world.latency[i, world.between(t0, t0 + rng.uniform(30, 150))] *= rng.uniform(1.6, 3.0)
    for _ in range(rng.poisson(3 * days)):  # a dependency hiccup: a minute or two of extra failures
        i, t0 = int(rng.integers(n_inst)), world.start + rng.uniform(0, span)
        world.error_mult[i, world.between(t0, t0 + rng.uniform(30, 120))] *= rng.uniform(3, 8)


def _background(world: World, i: int, rng: np.random.Generator) -> None:
    svc = world.instances[i].service
    traffic = world.traffic[i]
    name = svc.name
    if svc.style == "java":
        world.add_poisson(i, traffic / 60.0, _gc_line(world, i))
    if name == "api-gateway":
        world.add_periodic(i, 3600.0, lambda r, t, k: ("info", "geoip database checked: no update (GeoLite2-City 2024-04-26)"))
    elif name == "auth":
        world.add_periodic(i, 900.0, lambda r, t, k: ("info", "refreshed JWKS cache: 2 keys (kid=k-2024-05, k-2024-04)"))
        world.add_periodic(i, 300.0, lambda r, t, k: (
            "info", f"session cleanup removed {int(traffic[k] * r.uniform(20, 30) * 60)} expired sessions in {r.randrange(20, 90)}ms"))
    elif name == "checkout":
        world.add_periodic(i, 300.0, lambda r, t, k: (
            "info", f"cart cleanup job removed {int(traffic[k] * r.uniform(150, 260))} abandoned carts in {r.uniform(0.4, 1.6):.2f}s"))
        world.add_periodic(i, 600.0, lambda r, t, k: (
            "info", f"exchange rates refreshed: 32 currencies from ecb in {r.randrange(150, 600)}ms"))
    elif name == "payments":
        world.add_periodic(i, 600.0, lambda r, t, k: (
            "info", f"Settlement batch {r.randrange(10**6, 10**7)} submitted: {int(traffic[k] * r.uniform(250, 350))} transactions"))
    elif name == "inventory":
        world.add_periodic(i, 300.0, _pool_stats(world, i))
        world.add_periodic(i, 600.0, lambda r, t, k: (
            "info", f"Stock sync finished: {r.randrange(1400, 1700)} SKUs updated, 0 failed in {r.uniform(3, 6):.1f}s"))
        for t0 in np.arange(np.ceil(world.start / 600.0) * 600.0, world.end, 600.0):
            world.cpu_extra[i, world.between(t0, t0 + 30.0)] += 0.1
    elif name == "search":
        world.add_periodic(i, 300.0, lambda r, t, k: (
            "info", f"refreshed index [products] {r.randrange(46000, 50000)} docs in {r.randrange(60, 240)}ms"))


def _gc_line(world: World, i: int):
    """G1 young-collection lines whose heap and pause follow the process's memory."""
    svc = world.instances[i].service
    heap_max = svc.memory_limit_bytes - 512 * MIB
    counter = iter(range(1, 10**9))

    def render(r, t, k):
        heap_used = max(world.memory[i, k] - 400 * MIB, 0.2 * GIB)
        occupancy = min(heap_used / heap_max, 0.995)
        after = heap_used * r.uniform(0.5, 0.6)
        before = after + r.uniform(300, 520) * MIB
        pause = r.lognormvariate(np.log(9.0), 0.35) * (1.0 + 25.0 * max(occupancy - 0.6, 0.0) ** 2)
        kind = "Pause Young (Normal) (G1 Evacuation Pause)" if occupancy < 0.85 or r.random() < 0.5 else \
            "Pause Young (Concurrent Start) (G1 Humongous Allocation)"
        return "info", (f"[gc] GC({next(counter)}) {kind} {before / MIB:.0f}M->{after / MIB:.0f}M"
                        f"({heap_max / MIB:.0f}M) {pause:.3f}ms")

    return render


def _pool_stats(world: World, i: int):
    def render(r, t, k):
        active = int(world.measured_value("open_connections", i, k) - world.instances[i].service.connections_idle)
        active = max(active, 0) + r.randrange(0, 3)
        waiting = max(active - 20, 0)
        active = min(active, 20)
        return "debug", f"HikariPool-1 - Pool stats (total=20, active={active}, idle={20 - active}, waiting={waiting})"

    return render
