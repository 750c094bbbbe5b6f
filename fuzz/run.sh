#!/usr/bin/env bash
# Runs the coverage-guided fuzz targets on the stable toolchain. cargo-fuzz drives libFuzzer;
# with `--sanitizer none` every flag it gives rustc is a stable one (-Cpasses=sancov-module,
# -Cllvm-args=-sanitizer-coverage-*, -Cdebug-assertions, --cfg fuzzing): no -Z flag, no
# nightly. Seeds come from seed_corpus.py; the corpus grows in fuzz/corpus/<target>/, crashes
# land in fuzz/artifacts/<target>/ and make this script fail.
#
# Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#   default: 300 seconds each for resp_parser, rdb_loader, repl_stream and aof_loader
# Needs cargo-fuzz (cargo install cargo-fuzz --locked), python3 and a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-300}"
if [ "$#" -gt 0 ]; then shift; fi
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(resp_parser rdb_loader repl_stream aof_loader)
fi
if ! command -v cargo-fuzz >/dev/null; then
  echo "cargo-fuzz not found: cargo install cargo-fuzz --locked" >&2
  exit 2
fi
# The point is a stable toolchain: refuse another one (choose stable with
# RUSTUP_TOOLCHAIN=stable) and RUSTC_BOOTSTRAP, which would let nightly-only flags through.
unset RUSTC_BOOTSTRAP
version=$(rustc --version)
echo "$version"
case "$version" in
  *nightly* | *beta* | *-dev*)
    echo "not a stable toolchain: run with RUSTUP_TOOLCHAIN=stable" >&2
    exit 2
    ;;
esac

python3 seed_corpus.py
mkdir -p logs
status=0
for t in "${targets[@]}"; do
  case "$t" in
    resp_parser) max_len=4096 ;;
    *) max_len=8192 ;;
  esac
  echo "== $t: ${seconds}s, inputs <= ${max_len} bytes"
  if ! cargo fuzz run --sanitizer none "$t" -- \
    -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1 >"logs/$t.log" 2>&1; then
    status=1
    tail -n 40 "logs/$t.log"
  fi
done

echo "== summary (libFuzzer: cov = coverage points, ft = features, corp = corpus entries/size)"
for t in "${targets[@]}"; do
  start=$(grep -m1 'INITED cov' "logs/$t.log" || true)
  end=$(grep -E 'DONE +cov|ERROR: libFuzzer|panicked' "logs/$t.log" | tail -n 1 || true)
  execs=$(grep -m1 'number_of_executed_units' "logs/$t.log" | awk '{print $2}' || true)
  crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  echo "$t"
  echo "  start: ${start:-none}"
  echo "  end:   ${end:-none}"
  echo "  execs: ${execs:-unknown}"
  echo "  crash/timeout/oom artifacts: $crashes"
done
exit "$status"
