#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite (unit, contract, integration against a real
# broker, Prometheus and Alertmanager started by the tests on loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m pytest -q "$@"
