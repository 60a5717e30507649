#!/usr/bin/env bash
# System packages trunx needs, from Debian's archive. Idempotent; skips apt when all are there.
set -euo pipefail
# graphviz: IVR diagrams; chromium: the console's browser tests
# systemd: systemd-analyze verifies the units in deploy/systemd (tests/integration/test_packaging.py)
# sip-tester: SIPp, the outside SIP caller of the capacity test (tests/integration/test_capacity.py)
# redis-sentinel: the Sentinel failover test (devtools/stack/sentinel.py)
# postgresql: the tests' throw-away PostgreSQL clusters (devtools/stack/postgres.py)
PKGS=(redis-server redis-sentinel sox libsox-fmt-mp3 espeak-ng openssh-server openssh-client debootstrap wrk
      graphviz chromium chromium-driver systemd sip-tester postgresql)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian starts a system redis on 6379 at install; trunx's tests start their own on free ports.
# Debian's postgresql starts a cluster on 5432 at install; the tests run their own too.
