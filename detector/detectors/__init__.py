"""Anomaly detectors behind one protocol, and the registry that builds them from specs."""

from detector.detectors.base import Detector
from detector.detectors.registry import build, get, names, register

__all__ = ["Detector", "build", "get", "names", "register"]
