#!/usr/bin/env bash
# Set up a fresh machine and run the demo: an embedded broker, generated traffic with an injected
# incident, the service scoring it, and alerts firing before the customer-visible start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m detector demo "$@"
