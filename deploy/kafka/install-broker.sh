#!/usr/bin/env bash
# Installs tansu 0.6.0, a Kafka-compatible broker written in Rust, with SQLite storage.
# It goes into a fixed prefix outside the repository so a clean clone reuses it;
# the build is skipped when the right version is already there (a cold build takes ~25 min on 2 cores).
set -euo pipefail

PREFIX="${FUSION_BROKER_PREFIX:-$HOME/.local/share/fusion-broker}"
VERSION="0.6.0"

if [ -x "$PREFIX/bin/tansu" ] && "$PREFIX/bin/tansu" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "tansu $VERSION already installed in $PREFIX"
  exit 0
fi

mkdir -p "$PREFIX"
echo "building tansu $VERSION into $PREFIX (cold: ~25 min on 2 cores)"
# A separate target dir keeps this build out of the workspace's target/ and lets an
# interrupted build resume where it stopped.
CARGO_TARGET_DIR="$PREFIX/build" cargo install "tansu@$VERSION" --locked \
  --no-default-features --features libsql --root "$PREFIX"
"$PREFIX/bin/tansu" --version
# The build directory is 1.5 GB and only needed to resume an interrupted build.
rm -rf "$PREFIX/build"
