"""Prints incidents (and optionally per-signal alert transitions) for a person watching the terminal."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TextIO

from detector.alerting import AlertTransition
from detector.incidents import IncidentEvent, describe, summary

if TYPE_CHECKING:
    from detector.pipeline import BatchResult


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def format_transition(tr: AlertTransition) -> str:
    what = f"{tr.signal}" + (f" {tr.series}" if tr.series and tr.series != tr.signal else "")
    head = f"[{_ts(tr.timestamp)}] {tr.state.upper():8} {tr.entity}: {what} (confidence {tr.confidence:.3f}, since {_ts(tr.since)})"
    ev = tr.evidence or {}
    detail = []
    if "observed" in ev:
        band = ""
        if ev.get("lower") is not None and ev.get("upper") is not None:
            band = f", expected {ev['lower']:.4g}..{ev['upper']:.4g}"
        detail.append(f"observed {ev['observed']:.4g}{band}")
    if ev.get("detector"):
        detail.append(f"by {ev['detector']}")
    for t in (ev.get("templates") or [])[:3]:
        if isinstance(t, dict):
            detail.append(f"template: {str(t.get('template', ''))[:120]}")
    return head + "".join(f"\n    {d}" for d in detail)


def format_incident(ev: IncidentEvent) -> str:
    head = f"[{_ts(ev.timestamp)}] INCIDENT {ev.kind.upper():8} {summary(ev.incident)}"
    return head + "".join(f"\n    {line}" for line in describe(ev.incident, max_chars=160).splitlines())


class ConsoleSink:
    """Incidents always; per-signal alert transitions only with ``signals=True``, because one
    incident usually gathers several of them and the terminal is for the person on call."""

    def __init__(self, stream: TextIO | None = None, signals: bool = False):
        self.stream = stream or sys.stdout
        self.signals = signals

    def emit(self, result: "BatchResult") -> None:
        if self.signals:
            self.emit_transitions(result.transitions)
        self.emit_incidents(result.incidents)

    def emit_transitions(self, transitions: list[AlertTransition]) -> None:
        for tr in transitions:
            print(format_transition(tr), file=self.stream, flush=True)

    def emit_incidents(self, events: list[IncidentEvent]) -> None:
        for ev in events:
            print(format_incident(ev), file=self.stream, flush=True)
