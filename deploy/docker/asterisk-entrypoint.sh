#!/bin/sh
# Add trunx to the container's /etc/asterisk (idempotent: a restart appends nothing), then
# run Asterisk in the foreground. Settings come from the environment (compose.yaml).
set -eu
: "${TRUNX_AMI_SECRET:?set TRUNX_AMI_SECRET (the engine uses the same)}"
set -- --etc /etc/asterisk --agi "${TRUNX_AGI:-agi://engine:4573}" \
       --ami-secret "$TRUNX_AMI_SECRET" --ami-bind 0.0.0.0:5038 \
       --ami-permit "${TRUNX_AMI_PERMIT:-127.0.0.1/255.255.255.255}" \
       --sip-bind 0.0.0.0:5060
if [ -n "${TRUNX_TRUNK_HOST:-}" ]; then
  set -- "$@" --trunk-host "$TRUNX_TRUNK_HOST"
  [ -z "${TRUNX_TRUNK_USER:-}" ] || set -- "$@" --trunk-user "$TRUNX_TRUNK_USER"
  [ "${TRUNX_TRUNK_REGISTER:-yes}" = yes ] || set -- "$@" --no-register
fi
/opt/trunx/bin/trunx asterisk install "$@"   # TRUNX_TRUNK_SECRET is read from the environment
exec asterisk -f -U asterisk -G asterisk
