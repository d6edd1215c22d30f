// Re-enacts the original TypeScript tooling's bundle signing procedure in JavaScript, so that the
// JavaScript engine itself decides the key order of the legacy canonical form.
//
// Run from anywhere with Node.js 18 or later: `node vectors/legacy-js/make.mjs`. It (re)writes,
// next to itself, byte for byte the same files every time (Ed25519 is deterministic and the key
// comes from a fixed seed):
//   legacy-js-signing.pub         the throwaway public key (SPKI PEM); TEST ONLY
//   legacy-names/v1/              a schema 1.0.0 bundle whose signals have names outside 2.0.0's grammar
//   legacy-names/cases.json       signals and the decision the schema 1.0.0 semantics give for them
//   legacy-proto/v1/              a bundle with a "__proto__" signal, which the canonical form drops
//
// The procedure, as vectors/legacy-bundles/README.md describes the original's:
//   canonical(value) = JSON.stringify(sortKeysRecursively(value), null, 2)
//   artifact hash    = hex SHA-256 of canonical(JSON.parse(file))
//   bundle_hash      = hex SHA-256 of canonical(manifest with bundle_hash "")
//   bundle.sig       = base64 Ed25519 over canonical(manifest)

import { createHash, createPrivateKey, createPublicKey, sign } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

// Keys are sorted with the default sort (UTF-16 code units) and assigned to a fresh object, which
// then enumerates array-index keys ("0" … "4294967294") first, in numeric order.
function sortKeysRecursively(value) {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(sortKeysRecursively);
  const sorted = {};
  Object.keys(value)
    .sort()
    .forEach((key) => {
      sorted[key] = sortKeysRecursively(value[key]);
    });
  return sorted;
}

const canonical = (value) => JSON.stringify(sortKeysRecursively(value), null, 2);
const sha256Hex = (text) => createHash("sha256").update(text, "utf8").digest("hex");

// TEST ONLY: the seed is SHA-256 of a public string, like the repository's other test keys.
const seed = createHash("sha256").update("parmana TEST ONLY key: legacy-js").digest();
const pkcs8Prefix = Buffer.from("302e020100300506032b657004220420", "hex");
const privateKey = createPrivateKey({ key: Buffer.concat([pkcs8Prefix, seed]), format: "der", type: "pkcs8" });
const publicPem = createPublicKey(privateKey).export({ type: "spki", format: "pem" });

function writeBundle(id, version, policyText) {
  const dir = join(here, id, version);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "policy.json"), policyText);
  const manifest = {
    artifacts: [{ hash: sha256Hex(canonical(JSON.parse(policyText))), path: "policy.json" }],
    bundle_hash: "",
    manifest_version: "1",
    policy_id: id,
    policy_version: version,
    runtime_requirements: {
      required_capabilities: ["replay-protection", "attestation-signing", "bundle-verification"],
      supported_runtime_versions: ["1.0.0"],
      supported_schema_versions: ["1.0.0"],
    },
  };
  manifest.bundle_hash = sha256Hex(canonical(manifest));
  writeFileSync(join(dir, "bundle.manifest.json"), canonical(manifest) + "\n");
  const signature = sign(null, Buffer.from(canonical(manifest), "utf8"), privateKey);
  writeFileSync(join(dir, "bundle.sig"), signature.toString("base64") + "\n");
}

// The schema 1.0.0 semantics: the rule tree true gives `decision`, false gives "deny".
function holds(condition, signals) {
  if (condition.all) return condition.all.every((c) => holds(c, signals));
  if (condition.any) return condition.any.some((c) => holds(c, signals));
  const value = signals[condition.signal];
  if ("equals" in condition) return value === condition.equals;
  if ("greater_than" in condition) return value > condition.greater_than;
  if ("less_than" in condition) return value < condition.less_than;
  throw new Error("unknown operator");
}

// Written by hand, as an author would: declarations not in any sorted order, one name spelt
// with an escape ("\u00e9" is "é"), numbers spelt 1e2, -1.0 and 0.5.
const namesPolicy = `{
  "schema_version": "1.0.0",
  "signals": {
    "\u00e9": { "type": "boolean", "required": true },
    "A": { "type": "number", "required": true },
    "10": { "type": "number", "required": true },
    "9": { "type": "boolean", "required": true },
    "": { "type": "boolean", "required": true },
    "a.b": { "type": "number", "required": true },
    "a": { "type": "boolean", "required": true },
    "\\ud834\\udd1e": { "type": "number", "required": true },
    "\\u0000": { "type": "boolean", "required": true },
    "4294967294": { "type": "number", "required": true },
    "4294967295": { "type": "number", "required": true },
    "01": { "type": "boolean", "required": true },
    "constructor": { "type": "boolean", "required": true },
    "all": { "type": "boolean", "required": true },
    "equals": { "type": "boolean", "required": true }
  },
  "decision": "approve",
  "rules": {
    "all": [
      { "signal": "\\u00e9", "equals": true },
      { "any": [{ "signal": "10", "greater_than": 9 }, { "signal": "9", "equals": true }] },
      { "signal": "A", "less_than": 1e2 },
      { "signal": "a.b", "less_than": 0.5 },
      { "signal": "a", "equals": true },
      { "any": [{ "signal": "", "equals": true }, { "signal": "\\u0000", "equals": true }, { "signal": "01", "equals": true }] },
      { "signal": "\u{1d11e}", "greater_than": -1.0 },
      { "signal": "4294967294", "less_than": 1 },
      { "signal": "4294967295", "greater_than": 0 },
      { "any": [{ "signal": "constructor", "equals": true }, { "signal": "all", "equals": true }, { "signal": "equals", "equals": false }] }
    ]
  }
}
`;
writeBundle("legacy-names", "v1", namesPolicy);

// One approving signal set, then each signal changed alone.
const approving = {
  "é": true, A: 99, 10: 10, 9: false, "": true, "a.b": 0.25, a: true, "\u{1d11e}": 0,
  "\u0000": false, "4294967294": 0, "4294967295": 1, "01": false, constructor: true, all: false, equals: true,
};
const changes = [
  {}, { "é": false }, { 10: 9 }, { 10: 9, 9: true }, { A: 100 }, { "a.b": 0.5 }, { a: false },
  { "": false }, { "": false, "\u0000": true }, { "": false, "01": true }, { "\u{1d11e}": -1 },
  { "4294967294": 1 }, { "4294967295": 0 }, { constructor: false }, { constructor: false, all: true },
  { constructor: false, equals: false },
];
const policy = JSON.parse(namesPolicy);
const cases = changes.map((change) => {
  const signals = { ...approving, ...change };
  return { signals, decision: holds(policy.rules, signals) ? policy.decision : "deny" };
});
writeFileSync(join(here, "legacy-names", "cases.json"), JSON.stringify(cases, null, 2) + "\n");

// JSON.parse makes "__proto__" an own key, but assigning it to the sorted object sets the
// prototype instead: the canonical form, and so the hash and the signature, leave it out.
const protoPolicy = `{
  "schema_version": "1.0.0",
  "signals": {
    "__proto__": { "type": "number", "required": true },
    "ok": { "type": "boolean", "required": true }
  },
  "decision": "approve",
  "rules": { "all": [{ "signal": "ok", "equals": true }, { "signal": "__proto__", "less_than": 5 }] }
}
`;
if (canonical(JSON.parse(protoPolicy)).includes('"__proto__": {')) throw new Error("__proto__ kept");
writeBundle("legacy-proto", "v1", protoPolicy);

writeFileSync(join(here, "legacy-js-signing.pub"), publicPem);
