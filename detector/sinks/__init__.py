"""Where scores and alerts go: Prometheus (scrape), console, Alertmanager."""
