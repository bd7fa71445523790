"""Incident simulator: realistic logs and metrics of a small fleet, with injected disruptions.

    from detector.simulate import SCENARIOS, generate
    scenario = SCENARIOS["error_burst_after_deploy"]
    for rec in generate(scenario, start=1714521600.0, hours=24.0, seed=0):
        rec.kind, rec.timestamp, rec.key, rec.value   # "log" | "metric", event time, entity, JSON bytes
    scenario.entity                                   # "checkout"
    scenario.disruption_start(1714521600.0, 24.0)     # absolute event time the fault begins
    scenario.customer_visible_start(1714521600.0, 24.0)

Modules: ``fleet`` (services, hosts, the World of signal drivers), ``normal`` (the normal day),
``signals`` (scraped values), ``lines`` (log templates), ``disruptions`` and ``scenarios`` (what goes
wrong, and when), ``encode`` (ECS / metric JSON), ``generate`` (records in event-time order),
``command`` (``outage-detector simulate``). See docs/simulator.md.
"""

from detector.simulate.fleet import FLEET, METRICS
from detector.simulate.generate import SimRecord, build_world, generate
from detector.simulate.scenarios import SCENARIOS, Scenario

__all__ = ["FLEET", "METRICS", "SCENARIOS", "Scenario", "SimRecord", "build_world", "generate"]
