#!/usr/bin/env bash
# Measures the peak memory (maximum resident set size) and wall time of `parmana` refusing huge
# inputs, the figures of docs/reliability.md ("Bounded inputs: peak RSS and time").
#
# Usage, from the repository root (Linux; needs GNU time at /usr/bin/time, `apt-get install time`):
#   cargo build --release -p parmana-cli
#   scripts/bounded-inputs.sh [PATH/TO/parmana]      # default target/release/parmana
#
# Each case runs in a fresh temporary copy of the fixture environment (policies/, trust/,
# release-manifest.json) with the in-memory store, so nothing in the repository changes. The
# 1.5 GiB files are sparse: they take no disk space, and reading them yields zeros.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
parmana=$(realpath "${1:-$root/target/release/parmana}")
[ -x "$parmana" ] || { echo "no binary at $parmana (cargo build --release -p parmana-cli)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time" >&2; exit 1; }

now=2026-11-28T21:00:00Z
signals='{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}'
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 40 MiB of "x" inside a JSON string.
pad() { head -c $((40 << 20)) /dev/zero | tr '\0' 'x'; }

fresh() {
  rm -rf "$work/env" && mkdir "$work/env"
  cp -R "$root/policies" "$root/trust" "$root/release-manifest.json" "$work/env/"
}

# measure NAME -- ARGS…: runs `parmana execute ARGS…` and prints one table row.
measure() {
  local name=$1; shift 2
  measure_command "$name" -- execute --policy claims-approval@1.0.0 --store memory --now "$now" "$@"
}

# measure_command NAME -- ARGS…: runs `parmana ARGS…` in the fresh copy, prints one table row.
measure_command() {
  local name=$1; shift 2
  local stats="$work/stats" err="$work/stderr"
  local start=$EPOCHREALTIME
  set +e
  (cd "$work/env" && /usr/bin/time -f '%M' -o "$stats" \
    "$parmana" "$@" <"${STDIN_FILE:-/dev/null}" >/dev/null 2>"$err")
  local status=$?
  set -e
  local end=$EPOCHREALTIME
  local code kib
  code=$(grep -o 'error\[[a-z_.]*\]' "$err" | head -n 1 | sed 's/^error\[//; s/\]$//' || true)
  kib=$(tail -n 1 "$stats") # GNU time writes "Command exited with non-zero status N" first
  printf '| %s | %s | `%s` | %s MiB | %s s |\n' "$name" "$status" "${code:-none}" \
    "$(awk "BEGIN { printf \"%.1f\", $kib / 1024 }")" \
    "$(awk "BEGIN { printf \"%.3f\", $end - $start }")"
}

echo "| input | exit | code | peak RSS | time |"
echo "|---|---|---|---|---|"

fresh
measure "an ordinary execution (baseline)" -- --signals "$signals"

fresh
{ printf '{"claim_amount":1,"pad":"'; pad; printf '"}'; } >"$work/env/signals.json"
measure "40 MiB signals file (\`--signals FILE\`)" -- --signals signals.json

fresh
truncate -s 1536M "$work/env/signals.json"
measure "1.5 GiB sparse signals file" -- --signals signals.json

fresh
{ printf '{"signals":{"claim_amount":1,"pad":"'; pad; printf '"}}\n'; printf '%s\n' "{\"signals\":$signals}"; } >"$work/env/batch.jsonl"
measure "40 MiB batch line, then a good line (\`--batch\`, \`--jobs 1\`)" -- --batch batch.jsonl --jobs 1

fresh
truncate -s 1536M "$work/env/policies/claims-approval/1.0.0/huge.bin"
measure "1.5 GiB sparse file in a bundle directory" -- --signals "$signals"

fresh
truncate -s 1536M "$work/env/huge.pem"
measure "1.5 GiB sparse key file (\`--key\`)" -- --signals "$signals" --key huge.pem

# Signature lists: the fixture trust root with its one signature copied N times.
copies() {
  python3 - "$1" "$2" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
doc = json.load(open(path))
doc["signatures"] = doc["signatures"][:1] * n
json.dump(doc, open(path, "w"))
PY
}

fresh
copies "$work/env/trust/trust-root.json" 50000
measure "trust root with its signature copied 50,000 times (7 MB)" -- --signals "$signals"

fresh
copies "$work/env/trust/trust-root.json" 5000
measure "trust root with its signature copied 5,000 times (under the 1 MiB cap)" -- --signals "$signals"

fresh
(cd "$work/env" && "$parmana" execute --policy claims-approval@1.0.0 --store memory --now "$now" \
  --signals "$signals" >attestation.json)
copies "$work/env/attestation.json" 100000
measure_command "attestation with its signature copied 100,000 times (\`verify\`)" -- verify attestation.json --now "$now"

fresh
(cd "$work/env" && "$parmana" execute --policy claims-approval@1.0.0 --store memory --now "$now" \
  --signals "$signals" >attestation.json)
copies "$work/env/attestation.json" 5000
measure_command "attestation with its signature copied 5,000 times (\`verify\`)" -- verify attestation.json --now "$now"

fresh
truncate -s 1536M "$work/env/attestation.json"
measure_command "1.5 GiB sparse attestation file (\`verify\`)" -- verify attestation.json --now "$now"

fresh
truncate -s 1536M "$work/env/huge-policy.json"
measure_command "1.5 GiB sparse policy file (\`policy check\`)" -- policy check huge-policy.json

fresh
truncate -s 1536M "$work/env/huge.json"
measure_command "1.5 GiB sparse document (\`canon\`)" -- canon huge.json

fresh
{ printf '{"claim_amount":1,"pad":"'; pad; printf '"}\n'; printf '%s\n' "$signals"; } >"$work/env/eval.jsonl"
measure_command "40 MiB line, then a good line (\`policy eval --batch\`)" -- policy eval policies/claims-approval/1.0.0 --batch eval.jsonl
