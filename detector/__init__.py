"""outage-detector: online anomaly detection on logs and metrics, exported to Prometheus."""

__version__ = "0.1.0"
