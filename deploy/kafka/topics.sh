#!/usr/bin/env bash
# Creates Fusion's topics (inputs, outputs and the remap; none compacted) on a broker.
#   deploy/kafka/topics.sh [BOOTSTRAP] [PARTITIONS]
# Uses target/release/fusion when built, else `cargo run --release`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bootstrap=${1:-${FUSION_KAFKA_BOOTSTRAP:-127.0.0.1:9092}}
partitions=${2:-4}
if [ -x target/release/fusion ]; then
  exec target/release/fusion topics create --kafka "$bootstrap" --partitions "$partitions"
fi
exec cargo run --release --quiet -- topics create --kafka "$bootstrap" --partitions "$partitions"
