#!/usr/bin/env bash
# Build (once) a Debian sid root holding Asterisk 22, cached outside the work tree.
# Debian 12 ships no asterisk package and there is no Docker here; DESIGN.md explains why a
# debootstrap root run with chroot is how trunx gets a real Asterisk for tests and `make run`.
set -euo pipefail
ROOT="${TRUNX_ASTERISK_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/trunx/asterisk-root}"
if [ -x "$ROOT/usr/sbin/asterisk" ] && [ -f "$ROOT/.trunx-ready" ]; then
  echo "asterisk root ready: $ROOT"; exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }
# Use the mirror apt already uses, so this works wherever apt works.
MIRROR=$(grep -rhoE '^(URIs:|deb) *https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
  | grep -oE 'https?://[^ ]+' | head -n1 || true)
MIRROR="${TRUNX_DEBIAN_MIRROR:-${MIRROR:-http://deb.debian.org/debian}}"
rm -rf "$ROOT.partial"
mkdir -p "$(dirname "$ROOT")"
debootstrap --variant=minbase --include=asterisk,asterisk-core-sounds-en-gsm,asterisk-modules \
  sid "$ROOT.partial" "$MIRROR"
touch "$ROOT.partial/.trunx-ready"
rm -rf "$ROOT"; mv "$ROOT.partial" "$ROOT"
chroot "$ROOT" asterisk -V
echo "asterisk root ready: $ROOT"
