#!/usr/bin/env bash
# Starts the local Kafka-compatible broker (tansu 0.6.0, SQLite storage) on 127.0.0.1 and
# waits until it answers a Kafka metadata request.
#
#   deploy/kafka/start-broker.sh [PORT]        # PORT defaults to $FUSION_KAFKA_PORT, then 9092
#
# Prints the bootstrap address (127.0.0.1:PORT) on stdout; progress and errors go to stderr,
# so `bootstrap=$(deploy/kafka/start-broker.sh 19092)` works.
#
# Environment:
#   FUSION_BROKER_PREFIX   where install-broker.sh put tansu (default ~/.local/share/fusion-broker)
#   FUSION_BROKER_DATA     data directory to use (created if missing, never deleted by
#                          stop-broker.sh); reuse it to restart on the same storage.
#                          Default: a fresh temporary directory, deleted by stop-broker.sh.
#   FUSION_BROKER_STATE    state file (default /tmp/fusion-broker-PORT.state); stop-broker.sh
#                          reads it. Use the same value for both scripts.
#   FUSION_BROKER_START_TIMEOUT_SECS   how long to wait for the broker to answer (default 30)
#
# Stop it with deploy/kafka/stop-broker.sh [PORT]: that uses SIGKILL, because a SIGTERM while
# an idempotent producer is connected corrupts tansu's storage (see
# /work/shared/research/kafka-broker.md §4).
set -euo pipefail

PORT="${1:-${FUSION_KAFKA_PORT:-9092}}"
PREFIX="${FUSION_BROKER_PREFIX:-$HOME/.local/share/fusion-broker}"
TANSU="$PREFIX/bin/tansu"
STATE="${FUSION_BROKER_STATE:-/tmp/fusion-broker-$PORT.state}"
START_TIMEOUT_SECS="${FUSION_BROKER_START_TIMEOUT_SECS:-30}"
BOOTSTRAP="127.0.0.1:$PORT"

log() { echo "start-broker: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
  die "invalid port '$PORT'"
fi
[ -x "$TANSU" ] || die "tansu not found at $TANSU; run deploy/kafka/install-broker.sh first"

# True when this pid is alive and not a zombie. The broker is not our child once this script
# exits, so `kill -0` alone would also count an unreaped zombie as running.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

if [ -f "$STATE" ]; then
  old_pid=$(sed -n 's/^PID=//p' "$STATE")
  if [ -n "$old_pid" ] && alive "$old_pid" && grep -qa tansu "/proc/$old_pid/cmdline" 2>/dev/null; then
    die "a broker from $STATE is already running (pid $old_pid); stop it with deploy/kafka/stop-broker.sh $PORT"
  fi
  log "removing stale state file $STATE"
  rm -f "$STATE"
fi

# Something else answering on the port would pass the readiness check below, so refuse early.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "port $PORT is already in use on 127.0.0.1; pick another port"
fi

if [ -n "${FUSION_BROKER_DATA:-}" ]; then
  DATA_DIR="$FUSION_BROKER_DATA"
  mkdir -p "$DATA_DIR"
  OWNED_DATA=0
else
  DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fusion-broker-$PORT.XXXXXX")
  OWNED_DATA=1
fi
DATA_DIR=$(cd "$DATA_DIR" && pwd -P)
LOG="$DATA_DIR/broker.log"
PID_FILE="$DATA_DIR/broker.pid"
rm -f "$PID_FILE"

# tansu resolves the sqlite path relative to its working directory (an absolute sqlite:/// URL
# gets the cwd prepended), so run it inside the data directory with a relative name.
# setsid gives it its own session: a Ctrl-C in the terminal that runs the tests must not reach
# the broker, because tansu treats SIGINT like SIGTERM (graceful stop, see above).
# The inner shell writes its own pid and then execs tansu, so the pid is the broker's even if
# setsid has to fork.
cd "$DATA_DIR"
echo "=== $(date -u +%FT%TZ) starting tansu on $BOOTSTRAP" >>"$LOG"
# shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
NO_COLOR=1 setsid sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$PID_FILE" \
  "$TANSU" broker \
  --listener-url "tcp://$BOOTSTRAP" \
  --advertised-listener-url "tcp://$BOOTSTRAP" \
  --storage-engine sqlite://tansu.db \
  </dev/null >>"$LOG" 2>&1 &
# Not a job of this shell any more: no "Killed" notice if start-up fails and we kill it.
disown

for _ in $(seq 50); do
  [ -s "$PID_FILE" ] && break
  sleep 0.1
done
PID=$(cat "$PID_FILE" 2>/dev/null || true)
[ -n "$PID" ] || die "broker process did not start; log $LOG:
$(tail -n 40 "$LOG")"

{
  echo "PID=$PID"
  echo "PORT=$PORT"
  echo "DATA_DIR=$DATA_DIR"
  echo "OWNED_DATA=$OWNED_DATA"
  echo "LOG=$LOG"
} >"$STATE"

fail_start() {
  log "ERROR: $1"
  log "last lines of $LOG:"
  tail -n 40 "$LOG" >&2 || true
  if alive "$PID"; then
    kill -KILL "$PID" 2>/dev/null || true
  fi
  rm -f "$STATE"
  # The data directory holds the log, so it stays for inspection.
  log "data directory $DATA_DIR kept for inspection; delete it when done"
  exit 1
}

# Readiness: a TCP connect only shows that the listener is bound. `tansu topic list` sends a
# Kafka Metadata request, which the broker answers from its storage engine, so a successful
# JSON reply also shows that the SQLite storage opened. Each attempt is bounded because the
# client retries forever when nothing listens.
started=$SECONDS
last_reply=""
while :; do
  alive "$PID" || fail_start "broker (pid $PID) exited during start-up"
  rc=0
  reply=$(timeout 3 "$TANSU" topic list --broker "tcp://$BOOTSTRAP" 2>&1) || rc=$?
  if ((rc == 0)) && [[ "$reply" == "["* ]]; then
    break
  fi
  if ((rc == 124)); then
    last_reply="no answer within 3s"
  else
    last_reply="exit $rc: $(printf '%s' "$reply" | tail -n 3)"
  fi
  ((SECONDS - started < START_TIMEOUT_SECS)) \
    || fail_start "broker did not answer a metadata request within ${START_TIMEOUT_SECS}s (last attempt: $last_reply)"
  sleep 0.2
done
# The port could have been taken by someone else between our check and tansu's bind; tansu
# then logs AddrInUse and exits, so make sure the answer came from our process.
sleep 0.2
alive "$PID" || fail_start "broker (pid $PID) exited right after start-up (port taken?)"

log "tansu ready on $BOOTSTRAP after $((SECONDS - started))s (pid $PID, data $DATA_DIR, state $STATE)"
echo "$BOOTSTRAP"
