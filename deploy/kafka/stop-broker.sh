#!/usr/bin/env bash
# Stops the broker started by start-broker.sh and removes its temporary data directory.
#
#   deploy/kafka/stop-broker.sh [PORT]         # PORT defaults to $FUSION_KAFKA_PORT, then 9092
#
# Always SIGKILL, never SIGTERM: on SIGTERM tansu stops its storage first while still answering
# on the port, and an idempotent producer connected at that moment leaves the SQLite storage in
# a state that panics the next broker started on it (research/kafka-broker.md §4). SIGKILL loses
# nothing that was acknowledged.
#
# Idempotent: exits 0 when no broker from the state file is running.
#
# Environment:
#   FUSION_BROKER_STATE      state file written by start-broker.sh (default /tmp/fusion-broker-PORT.state)
#   FUSION_BROKER_KEEP_DATA  1 keeps a temporary data directory (to restart on it with
#                            FUSION_BROKER_DATA=DIR, or to read its broker.log). A directory given
#                            to start-broker.sh through FUSION_BROKER_DATA is never deleted.
set -euo pipefail

PORT="${1:-${FUSION_KAFKA_PORT:-9092}}"
STATE="${FUSION_BROKER_STATE:-/tmp/fusion-broker-$PORT.state}"
STOP_TIMEOUT_SECS=10

log() { echo "stop-broker: $*" >&2; }

if [ ! -f "$STATE" ]; then
  log "no state file $STATE; nothing to stop"
  exit 0
fi

PID=$(sed -n 's/^PID=//p' "$STATE")
DATA_DIR=$(sed -n 's/^DATA_DIR=//p' "$STATE")
OWNED_DATA=$(sed -n 's/^OWNED_DATA=//p' "$STATE")

# True when this pid is alive and not a zombie (the broker is usually not our child, and an
# unreaped zombie still passes `kill -0`).
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

if [ -n "$PID" ] && alive "$PID"; then
  # Guard against pid reuse: only kill a tansu process.
  if grep -qa tansu "/proc/$PID/cmdline" 2>/dev/null; then
    kill -KILL "$PID" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT_SECS))
    while alive "$PID"; do
      if ((SECONDS >= deadline)); then
        log "ERROR: broker pid $PID still running ${STOP_TIMEOUT_SECS}s after SIGKILL"
        exit 1
      fi
      sleep 0.1
    done
    log "broker pid $PID killed"
  else
    log "pid $PID is no longer a tansu broker; not killing it"
  fi
else
  log "broker pid ${PID:-?} is not running"
fi

rm -f "$STATE"

if [ "$OWNED_DATA" = 1 ] && [ -n "$DATA_DIR" ] && [ -d "$DATA_DIR" ]; then
  if [ "${FUSION_BROKER_KEEP_DATA:-0}" = 1 ]; then
    log "kept data directory $DATA_DIR (restart on it with FUSION_BROKER_DATA=$DATA_DIR)"
  else
    rm -rf -- "$DATA_DIR"
  fi
fi
