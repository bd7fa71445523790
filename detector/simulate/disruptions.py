"""The disruptions the scenarios inject, each as a function ``(world, timeline) -> None``.

Every disruption has three moments (see ``Timeline``): its start D, when the fault begins and only
early signals show; the customer-visible start V, when customers start to fail; and the end of the
impact E, when it is mitigated (rollback, restart, clean-up). Nothing here changes the world before D.
The precursors are the signals real incidents give: slopes and creeps well inside the day's normal
range at first, a rare new log template, a warning that grows more frequent.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from detector.simulate import lines
from detector.simulate.fleet import GIB, MIB, World
from detector.simulate.normal import fixed_lines, restart


class Timeline(NamedTuple):
    disruption_start: float
    customer_visible_start: float
    impact_end: float


def _gateway_failures(world: World, route_share: float, failure: np.ndarray, render) -> None:
    """The gateway fails the share of its requests that go to a failing upstream."""
    for i in world.rows("api-gateway"):
        world.errors[i] = np.maximum(world.errors[i], route_share * failure)
        world.incident_lines[i] = render


# -- slow memory leak, then OOM kills ------------------------------------------------------------------

OOM_TRACE = ("Exception in thread \"http-nio-8080-exec-{n}\" java.lang.OutOfMemoryError: Java heap space\n"
             "\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)\n"
             "\tat java.base/java.util.ArrayList.grow(ArrayList.java:237)\n"
             "\tat com.shop.payments.risk.DeviceFingerprintCache.record(DeviceFingerprintCache.java:88)\n"
             "\tat com.shop.payments.risk.RiskScorer.score(RiskScorer.java:141)\n"
             "\tat com.shop.payments.api.ChargeController.charge(ChargeController.java:73)")


def memory_leak_oom(world: World, tl: Timeline) -> None:
    """A partner starts sending a fresh device fingerprint with every charge, and payments' fingerprint
    cache never evicts: memory climbs with traffic until GC thrash and OOM kills."""
    D, V, E = tl
    rows = world.rows("payments")
    svc = world.instances[rows[0]].service
    starts = [D] * len(rows)
    # Mitigation: a rolling restart with fingerprint caching switched off.
    rollback = [E + 90.0 * j for j in range(len(rows))]
    limit = svc.memory_limit_bytes
    thrash_at = 0.965 * limit  # past this the JVM spends most of its time collecting
    cum = np.cumsum(world.traffic, axis=1) * world.dt
    k_v = world.tick(V)
    # Leak rate per unit of traffic, chosen so the first instance reaches the thrash level at V.
    i0 = rows[0]
    leak_rate = (thrash_at - world.memory[i0, k_v]) / max(cum[i0, k_v] - cum[i0, world.tick(D)], 1.0)
    for j, i in enumerate(rows):
        rate = leak_rate * (1.0 - 0.06 * j)
        start = starts[j]
        crashes = 0
        while start < E and crashes < 4:
            live = world.between(start, min(E, world.end))
            leaked = np.where(live, cum[i] - cum[i, world.tick(start)], 0.0) * rate
            mem = world.memory[i] + leaked
            over = np.nonzero(live & (mem >= thrash_at))[0]
            stop = world.t[over[0]] if over.size else E
            mask = world.between(start, stop)
            world.memory[i, mask] = mem[mask]
            occupancy = np.clip((mem - 0.4 * GIB) / (limit - 0.9 * GIB), 0.0, 1.0)
            gc = np.where(mask, np.maximum(occupancy - 0.7, 0.0) / 0.3, 0.0)
            world.latency[i] *= 1.0 + 0.35 * gc**2
            world.cpu_extra[i] += 0.12 * gc**2
            if not over.size:
                break
            # GC thrash for a few minutes, then the kernel's OOM killer; the pod restarts.
            t_thrash = stop
            t_kill = t_thrash + 240.0
            thrash = world.between(t_thrash, t_kill)
            world.memory[i, thrash] = thrash_at + (limit - thrash_at) * 0.8
            world.latency[i, thrash] *= 9.0
            world.cpu_extra[i, thrash] += 0.6
            world.errors[i, thrash] = 0.3
            fixed_lines(world, i, [
                (t_thrash + 60.0 + 50.0 * m, "info",
                 f"[gc] GC({90000 + m}) Pause Full (G1 Compaction Pause) {limit / MIB - 520:.0f}M->{limit / MIB - 560:.0f}M"
                 f"({limit / MIB - 512:.0f}M) {1800 + 400 * m:.3f}ms") for m in range(3)])
            fixed_lines(world, i, [(t_kill - 0.5, "error", OOM_TRACE.format(n=7 + j))], while_down=True)
            restart(world, i, t_kill, 75.0, crash=True)
            for other in rows:  # the surviving replica takes the load while this one restarts
                if other != i:
                    world.traffic[other, world.between(t_kill, t_kill + 75.0)] *= 2.0
            start, crashes = t_kill + 75.0, crashes + 1
        world.incident_lines[i] = lambda r, t, k, ms: ("error", (
            "Servlet.service() for servlet [dispatcherServlet] threw exception: org.springframework.web.context."
            f"request.async.AsyncRequestTimeoutException txnId={lines.txn(r)}"))
    for i, t in zip(rows, rollback):
        restart(world, i, t, 25.0, svc.version)
    payments_failing = np.mean([world.errors[i] for i in rows], axis=0)
    for i in world.rows("checkout"):
        world.errors[i] = np.maximum(world.errors[i], 0.2 * payments_failing)
        world.incident_lines[i] = lambda r, t, k, ms: ("error", (
            'request failed method=POST path=/api/v1/checkout status=504 error="payments timed out after 5000ms" '
            f"duration_ms={5000 + r.randrange(0, 40)} request_id={lines.rid(r)}"))


# -- a dependency's latency creeps up, then timeouts -----------------------------------------------------

def dependency_latency_timeouts(world: World, tl: Timeline) -> None:
    """Lock contention in inventory's database: its latency creeps up until checkout's 2 s timeouts fire."""
    D, V, E = tl
    inv = world.rows("inventory")
    creep = np.where(world.t < V, ((world.t - D) / (V - D)).clip(0, 1) ** 1.8, 1.0)
    creep = creep * (world.t >= D)
    recover = 1.0 - world.ramp(E, E + 300.0)
    mult = 1.0 + (5.0 * creep + 20.0 * world.ramp(V, V + 180.0)) * recover
    for i in inv:
        world.latency[i] *= mult
        world.errors[i] = np.maximum(world.errors[i], (0.002 * creep + 0.25 * world.ramp(V, V + 180.0)) * recover)
        world.add_poisson(i, 0.012 * (mult - 1.0) * world.traffic[i], lambda r, t, k, m=mult: (
            "warn", f"Slow query ({int(r.uniform(300, 700) * m[k])} ms): update stock s set reserved = reserved + ? "
                    "where s.sku = ?"), t0=D)
        world.incident_lines[i] = lambda r, t, k, ms: (
            ("error", "HikariPool-1 - Connection is not available, request timed out after 1000ms.")
            if t >= V and r.random() < 0.8 else
            ("error", f"Reservation failed sku={lines.sku(r)} order={lines.order_id(r)}: PessimisticLockException: "
                      "could not obtain lock on row in relation \"stock\""))
    timeouts = 0.22 * world.ramp(V, V + 240.0) * recover
    for i in world.rows("checkout"):
        world.latency[i] *= 1.0 + 0.08 * (mult - 1.0).clip(0, 6) + 1.5 * timeouts
        world.errors[i] = np.maximum(world.errors[i], timeouts)
        world.add_poisson(i, 0.004 * creep * recover * world.traffic[i], lambda r, t, k: (
            "warn", f"retrying inventory reserve attempt=2/3 after timeout=2000ms request_id={lines.rid(r)}"), t0=D)
        world.incident_lines[i] = lambda r, t, k, ms: ("error", (
            'request failed method=POST path=/api/v1/checkout status=504 error="inventory reserve timed out after '
            f'2000ms" duration_ms={2000 + r.randrange(0, 30)} request_id={lines.rid(r)}'))
    _gateway_failures(world, 0.3, timeouts, lambda r, t, k, ms: (
        "error", lines.gateway_access(r, 2000.0 + r.randrange(0, 50), 504, "checkout")))


# -- error burst after a deploy ------------------------------------------------------------------------------

TRACEBACK = ("unhandled exception method=POST path=/api/v1/checkout request_id={rid}\n"
             "Traceback (most recent call last):\n"
             "  File \"/app/checkout/api/orders.py\", line 148, in place_order\n"
             "    quote = shipping.quote(cart, address=cart.shipping_address)\n"
             "  File \"/app/checkout/shipping/express.py\", line 61, in quote\n"
             "    zone = ZONES[address[\"country_code\"]]\n"
             "KeyError: 'country_code'")


def error_burst_after_deploy(world: World, tl: Timeline) -> None:
    """checkout 3.8.0 breaks on carts saved before a schema change: rare on the canary, then a burst."""
    D, V, E = tl
    rows = world.rows("checkout")
    canary, rest = rows[0], rows[1:]
    restart(world, canary, D + 5.0, 20.0, "3.8.0")  # its shutdown lines begin at D
    for j, i in enumerate(rest):
        restart(world, i, V - 90.0 + 60.0 * j, 20.0, "3.8.0")
    for j, i in enumerate(rows):
        restart(world, i, E + 60.0 * j, 20.0, "3.7.2")
    fault = world.between(D, E)
    # Before the flag flip only old saved carts on the canary hit the new code path.
    flag = 0.004 + 0.11 * world.ramp(V, V + 120.0)
    for i in rows:
        live = fault & ((world.t >= D) if i == canary else (world.t >= V - 60.0))
        world.errors[i] = np.where(live, flag, world.errors[i])
        world.incident_lines[i] = lambda r, t, k, ms: ("error", TRACEBACK.format(rid=lines.rid(r)))
    fixed_lines(world, canary, [(D + 45.0, "info", "feature flag express_checkout enabled for 2% of users")])
    fixed_lines(world, canary, [(V, "info", "feature flag express_checkout enabled for 100% of users")])
    checkout_failing = np.mean([world.errors[i] for i in rows], axis=0)
    _gateway_failures(world, 0.31, checkout_failing, lambda r, t, k, ms: (
        "error", lines.gateway_access(r, ms, 500, "checkout")))


# -- disk filling ---------------------------------------------------------------------------------------

def disk_filling(world: World, tl: Timeline) -> None:
    """A manual full reindex keeps the old index and writes a bigger new one until the flood stage."""
    D, V, E = tl
    (i,) = world.rows("search")
    host = world.instances[i].host
    target = 0.951
    written = target - world.disk[i, world.tick(V)]  # what the reindex adds on top of the normal growth
    grow = ((world.t - D) / (V - D)).clip(0, 1) ** 1.15 * (world.t >= D)
    world.disk[i] += written * grow * (1.0 - world.ramp(E, E + 120.0))
    stalled = world.between(V, E)
    world.disk[i, stalled] = target + 0.004 * world.ramp(V, V + 600.0)[stalled]
    world.cpu_extra[i] += 0.08 * world.ramp(D, D + 600.0) * (world.t < V)  # throttled bulk indexing
    world.latency[i] *= np.where(world.between(D, V), 1.0 + 0.15 * grow, 1.0)
    fixed_lines(world, i, [(D + 3.0, "info", "reindex [products] -> [products-next] started (manual, analyzer=products_v2)")])
    disk = world.disk[i]

    def watermark(r, t, k):
        free = 100.0 * (1.0 - disk[k])
        if disk[k] >= 0.90:
            return "warn", (f"high disk watermark [90%] exceeded on [{host}][/var/lib/search] free: {free:.1f}gb"
                            f"[{free:.1f}%], shards will be relocated away from this node")
        return "warn", (f"low disk watermark [85%] exceeded on [{host}][/var/lib/search] free: {free:.1f}gb"
                        f"[{free:.1f}%], replicas will not be assigned to this node")

    high = np.nonzero((disk >= 0.85) & (world.t >= D) & (world.t < E))[0]
    if high.size:
        world.add_periodic(i, 60.0, watermark, t0=float(world.t[high[0]]), t1=E)
    fixed_lines(world, i, [(V, "warn", f"flood stage disk watermark [95%] exceeded on [{host}][/var/lib/search] "
                                       "free: 4.9gb[4.9%], all indices on this node will be marked read-only")])
    failing = 0.25 * world.ramp(V, V + 120.0) * (world.t < E)
    world.errors[i] = np.maximum(world.errors[i], failing)
    world.latency[i] *= 1.0 + 2.0 * failing
    world.incident_lines[i] = lambda r, t, k, ms: ("error", (
        "failed to index [products-next]: ClusterBlockException[index [products-next] blocked by: "
        "[TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block]]")
        if r.random() < 0.3 else (
        f'search failed q="{r.choice(lines.WORDS)}": SearchPhaseExecutionException: all shards failed '
        f"(shard [products][{r.randrange(5)}] java.io.IOException: No space left on device)"))
    fixed_lines(world, i, [(E, "info", "deleted index [products-next]"),
                           (E + 30.0, "info", "removed index block [read_only_allow_delete] from [products]")])
    _gateway_failures(world, 0.3, failing, lambda r, t, k, ms: ("error", lines.gateway_access(r, ms, 503, "search")))


# -- traffic drop from an upstream outage ----------------------------------------------------------------

def traffic_drop_upstream(world: World, tl: Timeline) -> None:
    """The CDN's edge degrades in one region, then fails: requests stop arriving."""
    D, V, E = tl
    decline = 0.18 * world.ramp(D, V)
    collapse = 0.55 * world.ramp(V, V + 120.0)
    recover = 1.0 - world.ramp(E, E + 300.0)
    retry_storm = 0.25 * world.ramp(E, E + 120.0) * np.exp(-np.maximum(world.t - E - 120.0, 0) / 600.0)
    factor = 1.0 - (decline + collapse) * recover + retry_storm
    for inst in world.instances:
        world.traffic[inst.index] *= factor
    for i in world.rows("api-gateway"):
        world.latency[i] *= 1.0 + 0.6 * decline * recover
        handshake = 0.02 * world.ramp(D, V) * recover + 0.3 * collapse / 0.55 * recover
        world.add_poisson(i, handshake, lambda r, t, k: ("warn", (
            "SSL_do_handshake() failed (SSL: error:0A000126:SSL routines::unexpected eof while reading) while SSL "
            f"handshaking, client: {lines.client_ip(r)}, server: 0.0.0.0:443")), t0=D)
        world.add_poisson(i, 0.5 * handshake, lambda r, t, k: (
            "info", lines.gateway_access(r, r.uniform(800, 4000), 499)), t0=D)


# -- certificate / auth failures -----------------------------------------------------------------------

def cert_auth_failures(world: World, tl: Timeline) -> None:
    """auth's renewed TLS certificate lacks its intermediate: new connections fail as pools recycle."""
    D, V, E = tl
    (i,) = world.rows("auth")
    fixed_lines(world, i, [(D, "info", "reloaded TLS certificate /etc/auth/tls/tls.crt: CN=auth.internal, "
                                       "issuer=Shop Internal CA G2, not after 2026-03-02T00:00:00Z")])
    fixed = 1.0 - world.ramp(E, E + 60.0)
    recycled = world.ramp(D, V) ** 1.5 * 0.12  # pooled connections that have reconnected (and failed)
    broken = (recycled + 0.55 * world.ramp(V, V + 90.0)) * fixed
    world.traffic[i] *= 1.0 - broken
    world.connections_extra[i] += 12.0 * broken  # half-open handshakes retried by clients
    world.add_poisson(i, (0.06 * world.ramp(D, V) ** 1.5 + 1.2 * world.ramp(V, V + 90.0)) * fixed, lambda r, t, k: (
        "warn", f"http: TLS handshake error from {lines.pod_ip(r)}:{r.randrange(30000, 65000)}: remote error: "
                "tls: bad certificate"), t0=D, t1=E + 60.0)
    fixed_lines(world, i, [(E, "info", "reloaded TLS certificate /etc/auth/tls/tls.crt: CN=auth.internal, "
                                       "issuer=Shop Internal CA G2, chain=2 certificates, not after 2026-03-02T00:00:00Z")])
    failing = 0.6 * broken
    _gateway_failures(world, 0.13, failing, lambda r, t, k, ms: ("error", (
        "upstream SSL certificate verify error: (21:unable to verify the first certificate) while SSL handshaking "
        f"to upstream, client: {lines.client_ip(r)}, upstream: \"https://10.4.3.{r.randrange(2, 250)}:8443/v1/token\"")))
    for j in world.rows("checkout") + world.rows("payments"):
        world.errors[j] = np.maximum(world.errors[j], 0.5 * broken)
        world.incident_lines[j] = _token_check_failure(world.instances[j].service.style)


def _token_check_failure(style: str):
    if style == "python":
        return lambda r, t, k, ms: ("error", (
            "token introspection failed: requests.exceptions.SSLError: HTTPSConnectionPool(host='auth.internal', "
            "port=8443): Max retries exceeded with url: /v1/introspect (Caused by SSLError(SSLCertVerificationError("
            f"1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate'))) request_id={lines.rid(r)}"))
    return lambda r, t, k, ms: ("error", (
        "Token introspection failed: javax.net.ssl.SSLHandshakeException: PKIX path building failed: "
        "sun.security.provider.certpath.SunCertPathBuilderException: unable to find valid certification path to "
        f"requested target txnId={lines.txn(r)}"))
