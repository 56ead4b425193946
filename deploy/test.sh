#!/usr/bin/env bash
# The whole check, as CI runs it (.ci/run execs this): installs what the tests need, starts a
# private Kafka-compatible broker, then runs formatting, clippy and every test.
#
#   deploy/test.sh
#
# Works from any directory, non-interactively, as root (CI) or as a user with sudo.
# Environment:
#   FUSION_KAFKA_PORT        broker port (default: a free ephemeral port)
#   FUSION_BROKER_KEEP_DATA  1 keeps the broker's data directory and log after the run
#   FUSION_BROKER_PREFIX     where tansu is installed (see deploy/kafka/install-broker.sh)
#
# The check steps (fmt, clippy, tests) all run even when one fails, so one run reports every
# problem; the script exits non-zero if any failed. Set-up steps stop the run at once.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)

now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }
fmt_secs() { printf '%d.%d' $(($1 / 1000000)) $((($1 % 1000000) / 100000)); }

RUN_START=$(now_us)
TIMINGS=()
FAILED=()
CURRENT_STEP="start"
BROKER_PORT=""
FINISHED=0

# Runs one step, prints its duration and records it. Returns the step's exit status.
step() {
  local name=$1 start rc=0 took
  shift
  CURRENT_STEP=$name
  echo
  echo "==> [$name] $*"
  start=$(now_us)
  "$@" || rc=$?
  took=$(fmt_secs $(($(now_us) - start)))
  if ((rc == 0)); then
    TIMINGS+=("$(printf '  %-15s %7ss  ok' "$name" "$took")")
    echo "<== [$name] ok in ${took}s"
  else
    TIMINGS+=("$(printf '  %-15s %7ss  FAILED (exit %d)' "$name" "$took" "$rc")")
    echo "<== [$name] FAILED (exit $rc) after ${took}s"
  fi
  return "$rc"
}

# A failing check is recorded and the run goes on.
check() {
  local name=$1
  step "$@" || FAILED+=("$name")
}

summary() {
  echo
  echo "timings:"
  if ((${#TIMINGS[@]} > 0)); then
    printf '%s\n' "${TIMINGS[@]}"
  fi
  disk_report
}

# The build's footprint and what is left: a full disk shows up as a linker dying with SIGBUS.
disk_report() {
  local used free
  [ -d "$ROOT/target" ] || return 0
  used=$(du -sh "$ROOT/target" 2>/dev/null | cut -f1)
  free=$(df -h --output=avail "$ROOT/target" 2>/dev/null | tail -n 1 | tr -d ' ')
  echo "disk: target/ uses ${used:-?}, ${free:-?} free on its filesystem"
}

# Stops the broker (SIGKILL, see stop-broker.sh); after a failure it first shows the log tail.
stop_broker() {
  local port=$BROKER_PORT log
  [ -n "$port" ] || return 0
  BROKER_PORT=""
  if (($# > 0)); then
    log=$(sed -n 's/^LOG=//p' "${FUSION_BROKER_STATE:-/tmp/fusion-broker-$port.state}" 2>/dev/null || true)
    if [ -n "$log" ] && [ -f "$log" ]; then
      echo "last lines of the broker log $log:"
      tail -n 20 "$log" || true
    fi
  fi
  "$ROOT/deploy/kafka/stop-broker.sh" "$port" || echo "warning: stopping the broker failed" >&2
}

# Runs on every exit. The normal path has already stopped the broker and printed the final line.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((FINISHED == 0)); then
    ((rc != 0)) || rc=1
    stop_broker show-log
    summary
    echo "deploy/test.sh: FAILED (exit $rc) during step '$CURRENT_STEP' after $(fmt_secs $(($(now_us) - RUN_START)))s"
  fi
  exit "$rc"
}
trap cleanup EXIT
# Exiting from the signal handlers runs the EXIT trap, which stops the broker.
trap 'exit 130' INT
trap 'exit 143' TERM

# --- set-up ---------------------------------------------------------------------------------

# Only what the build needs beyond a Rust toolchain:
#   build-essential  gcc and make: rdkafka-sys builds the bundled librdkafka with configure+make,
#                    and tansu's libsql-ffi compiles the bundled SQLite (cc).
#   pkg-config       librdkafka's configure and libz-sys look zlib up with it.
#   zlib1g-dev       rdkafka's default `libz` feature links zlib.
#   python3          picks a free port for the broker below.
#   libssl-dev       only when something in Cargo.lock builds openssl-sys (nothing does today:
#                    rdkafka is built without its `ssl` feature and tansu uses rustls).
apt_packages() {
  local wanted=(build-essential pkg-config zlib1g-dev python3) missing=() pkg sudo=()
  if grep -q '^name = "openssl-sys"$' Cargo.lock 2>/dev/null; then
    wanted+=(libssl-dev)
  fi
  for pkg in "${wanted[@]}"; do
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    echo "apt packages present: ${wanted[*]}"
    return 0
  fi
  if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; return 1; }
    sudo=(sudo -n)
  fi
  echo "installing: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || return
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

rust_components() {
  if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null || { echo "cargo not found; install a Rust toolchain (rustup)" >&2; return 1; }
  if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
    cargo --version
    return 0
  fi
  rustup component add rustfmt clippy
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_broker() {
  local attempt port
  if [ -n "${FUSION_KAFKA_PORT:-}" ]; then
    BROKER_PORT=$FUSION_KAFKA_PORT
    "$ROOT/deploy/kafka/start-broker.sh" "$BROKER_PORT" >/dev/null || { BROKER_PORT=""; return 1; }
    return 0
  fi
  # The free port can be taken by someone else before tansu binds it; try a few.
  for attempt in 1 2 3; do
    port=$(free_port)
    BROKER_PORT=$port
    if "$ROOT/deploy/kafka/start-broker.sh" "$port" >/dev/null; then
      return 0
    fi
    BROKER_PORT=""
    echo "broker did not start on port $port (attempt $attempt)" >&2
  done
  return 1
}

step apt apt_packages
# A missing cargo on PATH is sourced here, so it has to run in this shell, not a subshell.
step toolchain rust_components
step broker-install "$ROOT/deploy/kafka/install-broker.sh"
step broker-start start_broker
export FUSION_KAFKA_BOOTSTRAP="127.0.0.1:$BROKER_PORT"
echo "FUSION_KAFKA_BOOTSTRAP=$FUSION_KAFKA_BOOTSTRAP"

# --- checks ---------------------------------------------------------------------------------

check fmt cargo fmt --all -- --check
check clippy cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doctests. They run first so that nextest's summary
  # ("N tests run: N passed") is the last test-runner line of the run.
  check doctest cargo test --workspace --doc
  check test cargo nextest run --workspace --no-fail-fast
else
  # Without nextest, cargo test runs the doctests as well.
  check test cargo test --workspace --no-fail-fast
fi

if ((${#FAILED[@]} > 0)); then
  stop_broker show-log
else
  stop_broker
fi
FINISHED=1
summary
total=$(fmt_secs $(($(now_us) - RUN_START)))
if ((${#FAILED[@]} > 0)); then
  echo "deploy/test.sh: FAILED (${FAILED[*]}) in ${total}s"
  exit 1
fi
echo "deploy/test.sh: all checks passed in ${total}s"
