#!/usr/bin/env bash
# Regenerates the full-sync part of docs/benchmarks.md: builds the release binaries, measures
# a full sync of 512 MiB and 4 GiB of YCSB records to a fresh replica, disk and diskless,
# tandem-server and redis-server side by side, keeps the JSON under docs/benchmarks/ and
# rewrites the tables and charts between the document's full-sync markers.
#
# Needs redis-server 7.0 and taskset. Sizes and rounds: SIZES="512MiB 4GiB" ROUNDS=1.
# Extra full-sync flags (e.g. --write-rate 5000) go after the script's name.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p tandem-server -p tandem-bench
bin="${CARGO_TARGET_DIR:-target}/release"
mkdir -p docs/benchmarks
jsons=()
for size in ${SIZES:-512MiB 4GiB}; do
  json="docs/benchmarks/full-sync-${size,,}.json"
  "$bin/tandem-bench" full-sync --size "$size" --modes disk,diskless --servers tandem,redis \
    --rounds "${ROUNDS:-1}" --json "$json" --tandem-bin "$bin/tandem-server" "$@"
  jsons+=("$json")
done
list=$(IFS=,; echo "${jsons[*]}")
"$bin/tandem-bench" report --full-sync "$list" --doc docs/benchmarks.md
