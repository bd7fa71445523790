"""Named scenarios: a normal day of the fleet with at most one disruption.

A scenario places its disruption at ``placement`` of the run (18 h into a 24 h run by default),
rounded down to the minute. From there its precursor lasts ``precursor_seconds`` until the
customer-visible start, and the impact lasts ``impact_seconds`` until it is mitigated. All three are
absolute event times, from ``disruption_start``, ``customer_visible_start`` and ``impact_end``.

``entity`` is the service where the fault is and whose alerts count as detecting it; ``related`` are
services that suffer from it, so their alerts during the disruption are not false alerts. The quiet
scenario has no disruption: its entity and times are None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from detector.simulate import disruptions
from detector.simulate.disruptions import Timeline
from detector.simulate.fleet import World


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    entity: str | None = None
    related: tuple[str, ...] = ()
    precursor_seconds: float = 0.0
    impact_seconds: float = 0.0
    inject: Callable[[World, Timeline], None] | None = None
    placement: float = 0.75

    @property
    def min_hours(self) -> float:
        """The shortest run that still holds the customer-visible start (with 30 minutes to spare)."""
        if self.inject is None:
            return 0.0
        return math.ceil((self.precursor_seconds + 1800.0) / (1.0 - self.placement) / 3600.0)

    def timeline(self, start: float, hours: float) -> Timeline | None:
        if self.inject is None:
            return None
        if hours < self.min_hours:
            raise ValueError(f"scenario {self.name!r} needs at least {self.min_hours:g} hours, not {hours:g}")
        d = math.floor((start + self.placement * hours * 3600.0) / 60.0) * 60.0
        v = d + self.precursor_seconds
        return Timeline(d, v, v + self.impact_seconds)

    def disruption_start(self, start: float, hours: float) -> float | None:
        tl = self.timeline(start, hours)
        return tl and tl.disruption_start

    def customer_visible_start(self, start: float, hours: float) -> float | None:
        tl = self.timeline(start, hours)
        return tl and tl.customer_visible_start

    def impact_end(self, start: float, hours: float) -> float | None:
        tl = self.timeline(start, hours)
        return tl and tl.impact_end

    def involves(self, entity: str) -> bool:
        return entity == self.entity or entity in self.related


_ALL = (
    Scenario("quiet", "a normal day: routine deploys, blips and background jobs, no disruption"),
    Scenario(
        "memory_leak_oom",
        "a partner sends a new device fingerprint per charge and payments caches them all: memory climbs for hours, then GC thrash and OOM kills fail payments",
        "payments", ("checkout", "api-gateway"), 150 * 60.0, 40 * 60.0, disruptions.memory_leak_oom,
    ),
    Scenario(
        "dependency_latency_timeouts",
        "lock contention slows inventory's database; its latency creeps up until checkout times out",
        "inventory", ("checkout", "api-gateway"), 40 * 60.0, 30 * 60.0, disruptions.dependency_latency_timeouts,
    ),
    Scenario(
        "error_burst_after_deploy",
        "checkout 3.8.0 throws a new KeyError on a canary, then on every node once a feature flag goes to 100%",
        "checkout", ("api-gateway",), 15 * 60.0, 25 * 60.0, disruptions.error_burst_after_deploy,
    ),
    Scenario(
        "disk_filling",
        "a manual reindex fills the search node's disk; at the flood-stage watermark searches and writes fail",
        "search", ("api-gateway",), 180 * 60.0, 40 * 60.0, disruptions.disk_filling,
    ),
    Scenario(
        "traffic_drop_upstream",
        "the CDN edge degrades, then fails: requests to the gateway (and everything behind it) stop arriving",
        "api-gateway", ("auth", "checkout", "payments", "inventory", "search"), 20 * 60.0, 30 * 60.0,
        disruptions.traffic_drop_upstream,
    ),
    Scenario(
        "cert_auth_failures",
        "auth's renewed TLS certificate lacks its intermediate: handshakes fail as pools recycle, then logins fail",
        "auth", ("api-gateway", "checkout", "payments"), 35 * 60.0, 30 * 60.0, disruptions.cert_auth_failures,
    ),
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _ALL}
