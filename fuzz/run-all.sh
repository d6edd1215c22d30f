#!/usr/bin/env bash
# Runs every fuzz target one after another for SECONDS each (default 600) and appends libFuzzer's
# final statistics to fuzz/results.log. Run from the repository root after fuzz/seed-corpus.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
for target in strict_json policy signals attestation trust_documents; do
  log="fuzz/logs/$target.log"
  mkdir -p fuzz/logs
  started=$(date -u +%FT%TZ)
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  echo "$target started=$started seconds=$seconds exit=$status executions=${execs:-?} corpus=$(ls "fuzz/corpus/$target" | wc -l)" >> fuzz/results.log
done
