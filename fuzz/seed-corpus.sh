#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the repository's fixtures (policies, trust documents, golden
# attestations, the RFC 8785 vectors under vectors/). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=fuzz/corpus
mkdir -p "$corpus"/{strict_json,policy,signals,attestation,trust_documents}
n=0
seed() { # seed TARGET FILE
  n=$((n + 1))
  cp "$2" "$corpus/$1/seed-$n"
}
for f in $(find policies trust release-manifest.json golden -name '*.json' | sort); do
  seed strict_json "$f"
done
for f in vectors/rfc8785/input/*; do seed strict_json "$f"; done
for f in policies/*/*/policy.json; do seed policy "$f"; done
# The `policy` member of every parmana-policy conformance case.
for f in crates/parmana-policy/tests/cases/*.json; do
  n=$((n + 1))
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d.get("policy", d)))' "$f" \
    > "$corpus/policy/seed-$n"
done
# Signals: the `signals` member of every claims-approval test case.
for f in policies/claims-approval/1.0.0/tests/*.json; do
  n=$((n + 1))
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["signals"]))' "$f" \
    > "$corpus/signals/seed-$n"
done
for f in golden/*.attestation.json; do seed attestation "$f"; done
for f in trust/trust-root.json trust/trust-root.d/*.json release-manifest.json policies/*/*/bundle.json; do
  seed trust_documents "$f"
done
echo "seeded: $(for t in "$corpus"/*; do printf '%s=%s ' "$(basename "$t")" "$(ls "$t" | wc -l)"; done)"
