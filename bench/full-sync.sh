#!/usr/bin/env bash
# Regenerates the full-sync part of docs/benchmarks.md: builds the release binaries, measures
# a full sync of 512 MiB and 4 GiB of YCSB records to a fresh replica, disk and diskless,
# tandem-server and redis-server side by side, then 512 MiB again under a paced write load;
# keeps the JSON under docs/benchmarks/ and rewrites the tables and charts between the
# document's full-sync markers.
#
# Needs redis-server 7.0 and taskset. Defaults: SIZES="512MiB 4GiB" ROUNDS=3 (rounds of the
# first size; larger sizes run once) WRITE_RATE=5000 (0: no write-load run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p tandem-server -p tandem-bench
bin="${CARGO_TARGET_DIR:-target}/release"
mkdir -p docs/benchmarks
jsons=()
measure() { # json, then full-sync flags
  local json="$1"
  shift
  "$bin/tandem-bench" full-sync --modes disk,diskless --servers tandem,redis \
    --tandem-bin "$bin/tandem-server" --json "$json" "$@"
  jsons+=("$json")
}
rounds="${ROUNDS:-3}"
for size in ${SIZES:-512MiB 4GiB}; do
  measure "docs/benchmarks/full-sync-${size,,}.json" --size "$size" --rounds "$rounds"
  rounds=1
done
rate="${WRITE_RATE:-5000}"
if [ "$rate" != 0 ]; then
  measure "docs/benchmarks/full-sync-512mib-write$rate.json" --size 512MiB --write-rate "$rate"
fi
list=$(IFS=,; echo "${jsons[*]}")
"$bin/tandem-bench" report --full-sync "$list" --doc docs/benchmarks.md
