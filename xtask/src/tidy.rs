//! The tidy check: dependency arrows point down, the CLI goes through the runtime only, crypto and storage IO stay in their layers, files open with `//!`.
//!
//! It runs as `cargo xtask tidy` and as a normal test (`cargo test -p xtask`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Which internal crates each crate may depend on (normal, dev and build dependencies alike).
///
/// A crate missing from this table is an error: adding a crate means deciding its layer.
const ALLOWED_INTERNAL: &[(&str, &[&str])] = &[
    ("parmana-canon", &[]),
    ("parmana-policy", &["parmana-canon"]),
    ("parmana-trust", &["parmana-canon"]),
    ("parmana-replay", &["parmana-canon"]),
    (
        "parmana-runtime",
        &[
            "parmana-canon",
            "parmana-policy",
            "parmana-trust",
            "parmana-replay",
        ],
    ),
    // The HTTP service stands on the facade alone, like the CLI.
    ("parmana-server", &["parmana-runtime"]),
    // The binary reaches every layer through the facade; what it needs is re-exported there.
    // `parmana serve` is the server crate.
    ("parmana-cli", &["parmana-runtime", "parmana-server"]),
    (
        "parmana-benches",
        &[
            "parmana-canon",
            "parmana-policy",
            "parmana-trust",
            "parmana-replay",
            "parmana-runtime",
        ],
    ),
    (
        "xtask",
        &[
            "parmana-canon",
            "parmana-policy",
            "parmana-trust",
            "parmana-replay",
            "parmana-runtime",
        ],
    ),
    (
        "parmana-reliability",
        &[
            "parmana-canon",
            "parmana-policy",
            "parmana-trust",
            "parmana-replay",
            "parmana-runtime",
        ],
    ),
    // Test support: the generic parts stand on the canon layer, the `runtime` feature on the
    // facade (and through its re-exports on everything). A dev-dependency only, of any crate.
    ("parmana-testkit", &["parmana-canon", "parmana-runtime"]),
    (
        "parmana-fuzz",
        &[
            "parmana-canon",
            "parmana-policy",
            "parmana-trust",
            "parmana-replay",
            "parmana-runtime",
        ],
    ),
];

/// Workspace crates that only ever appear under `[dev-dependencies]`: test support never ships,
/// and as a dev-dependency it may sit above the crate whose tests use it.
const DEV_ONLY_INTERNAL: &[&str] = &["parmana-testkit"];

/// External crates that only one workspace crate may depend on directly.
const EXCLUSIVE_EXTERNAL: &[(&str, &str, &str)] = &[
    (
        "ed25519-dalek",
        "parmana-trust",
        "cryptography lives only in parmana-trust",
    ),
    (
        "ed25519",
        "parmana-trust",
        "cryptography lives only in parmana-trust",
    ),
    (
        "rusqlite",
        "parmana-replay",
        "storage IO lives only in parmana-replay",
    ),
    (
        "postgres",
        "parmana-replay",
        "storage IO lives only in parmana-replay",
    ),
    (
        "tokio-postgres",
        "parmana-replay",
        "storage IO lives only in parmana-replay",
    ),
    (
        "r2d2",
        "parmana-replay",
        "storage IO lives only in parmana-replay",
    ),
    (
        "r2d2_postgres",
        "parmana-replay",
        "storage IO lives only in parmana-replay",
    ),
    (
        "tokio-postgres-rustls",
        "parmana-replay",
        "storage IO lives only in parmana-replay",
    ),
];

/// The only exceptions to [`EXCLUSIVE_EXTERNAL`]: (crate, external crate, why), each allowed
/// under `[dev-dependencies]` only, for a measurement baseline or a test fixture that must not
/// go through the product's own code.
const BASELINE_EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "parmana-benches",
        "postgres",
        "the `postgres/bare_insert` row: the server's bare single-row insert, beside the store's rows",
    ),
    (
        "parmana-cli",
        "postgres",
        "the serve tests create a database of their own for each test and hold the sequencer's \
         lock from outside the servers",
    ),
    (
        "parmana-cli",
        "rusqlite",
        "SQLite stores put in states this build never makes — set back to an older schema \
         version, a ledger cut under a running server — to show what the commands and the \
         server do with them",
    ),
];

/// What is wrong with `name` depending on the external crate `dep_name`, if anything: a crate
/// that only one workspace crate may use, outside a baseline exception.
fn exclusive_external_problem(name: &str, dep_name: &str, is_dev: bool) -> Option<String> {
    let (_, owner, why) = EXCLUSIVE_EXTERNAL
        .iter()
        .find(|(external, _, _)| *external == dep_name)?;
    let excepted = is_dev
        && BASELINE_EXCEPTIONS
            .iter()
            .any(|(crate_name, external, _)| *crate_name == name && *external == dep_name);
    (name != *owner && !excepted).then(|| format!("`{name}` depends on `{dep_name}`: {why}"))
}

/// Runs every tidy check and returns all violations at once.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    check_dependencies(root, &mut problems)?;
    check_sources(root, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "tidy found {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

/// The workspaces whose packages are checked: the repository's, and the fuzz targets' (a
/// workspace of its own, so that `cargo fuzz` builds apart).
const MANIFESTS: [&str; 2] = ["Cargo.toml", "fuzz/Cargo.toml"];

fn check_dependencies(root: &Path, problems: &mut Vec<String>) -> Result<(), String> {
    let mut matched = BTreeSet::new();
    for manifest in MANIFESTS {
        check_manifest(root, manifest, problems, &mut matched)?;
    }
    // A layer no package has is a rule that checks nothing: a renamed crate, or one whose
    // workspace is not read.
    for (name, _) in ALLOWED_INTERNAL {
        if !matched.contains(*name) {
            problems.push(format!(
                "xtask/src/tidy.rs ALLOWED_INTERNAL has a layer for `{name}`, which no package of {MANIFESTS:?} is"
            ));
        }
    }
    Ok(())
}

/// Checks every package of the workspace of `manifest`, noting the names it found in `matched`.
fn check_manifest(
    root: &Path,
    manifest: &str,
    problems: &mut Vec<String>,
    matched: &mut BTreeSet<String>,
) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
            manifest,
        ])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata printed invalid JSON: {e}"))?;
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED_INTERNAL.iter().copied().collect();
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    if packages.is_empty() {
        return Err(format!("cargo metadata listed no packages in {manifest}"));
    }
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        matched.insert(name.to_owned());
        let Some(allowed_deps) = allowed.get(name) else {
            problems.push(format!(
                "crate `{name}` has no layer in xtask/src/tidy.rs ALLOWED_INTERNAL"
            ));
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let is_internal = dep["path"].is_string();
            let is_dev = dep["kind"].as_str() == Some("dev");
            let features: Vec<&str> = dep["features"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .collect();
            let arrow = Arrow {
                is_internal,
                is_dev,
                features: &features,
            };
            if let Some(problem) = internal_dependency_problem(name, dep_name, &arrow, allowed_deps)
            {
                problems.push(problem);
            }
            if let Some(problem) = exclusive_external_problem(name, dep_name, is_dev) {
                problems.push(problem);
            }
        }
    }
    Ok(())
}

/// What is wrong with `name` depending on `dep_name`, if anything: a dev-only crate outside
/// `[dev-dependencies]`, or an internal arrow that points up or sideways.
fn internal_dependency_problem(
    name: &str,
    dep_name: &str,
    arrow: &Arrow<'_>,
    allowed_deps: &[&str],
) -> Option<String> {
    if DEV_ONLY_INTERNAL.contains(&dep_name) {
        if !arrow.is_dev {
            return Some(format!(
                "`{name}` depends on `{dep_name}` outside [dev-dependencies]: test support never ships"
            ));
        }
        if name == "parmana-canon" {
            return Some(format!(
                "`{name}` uses `{dep_name}`, which stands on it: the kit is built on the canon layer"
            ));
        }
        if BELOW_THE_FACADE.contains(&name) && arrow.features.contains(&"runtime") {
            return Some(format!(
                "`{name}` uses `{dep_name}` with its `runtime` feature, which builds the facade \
                 above it: its tests would link a second copy of `{name}`"
            ));
        }
        return None;
    }
    (arrow.is_internal && !allowed_deps.contains(&dep_name))
        .then(|| format!("`{name}` depends on `{dep_name}`: the arrow points up or sideways"))
}

/// One dependency of a package, as `cargo metadata` lists it.
struct Arrow<'a> {
    /// A crate of this repository (a path dependency).
    is_internal: bool,
    /// A `[dev-dependencies]` entry.
    is_dev: bool,
    /// The features it turns on.
    features: &'a [&'a str],
}

/// The crates below the facade: their tests may use the test kit only without its `runtime`
/// feature (which builds `parmana-runtime`, and with it a second copy of the crate under test).
const BELOW_THE_FACADE: [&str; 4] = [
    "parmana-canon",
    "parmana-policy",
    "parmana-trust",
    "parmana-replay",
];

fn check_sources(root: &Path, problems: &mut Vec<String>) {
    let mut files = Vec::new();
    for top in ["crates", "xtask", "benches", "fuzz"] {
        collect_rs_files(&root.join(top), &mut files);
    }
    for file in files {
        let shown = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        let Ok(text) = std::fs::read_to_string(&file) else {
            problems.push(format!("{shown}: not readable as UTF-8"));
            continue;
        };
        if !text.starts_with("//!") {
            problems.push(format!(
                "{shown}: the file must open with a `//!` line saying what it is for"
            ));
        }
        check_ignored_tests(&shown, &text, problems);
        if shown.starts_with("crates/parmana-cli/") || shown.starts_with("crates/parmana-server/") {
            for layer in [
                "parmana_canon",
                "parmana_policy",
                "parmana_trust",
                "parmana_replay",
            ] {
                if text.contains(&format!("{layer}::")) {
                    problems.push(format!(
                        "{shown}: the CLI uses `{layer}` directly; go through parmana_runtime"
                    ));
                }
            }
        }
        let lines = text.lines().count();
        if lines > 1500 {
            problems.push(format!("{shown}: {lines} lines; split the file"));
        }
    }
}

/// The ways a test may be ignored (whitespace removed): `cfg_attr` on the condition
/// `parmana_no_postgres` (or `parmana_no_postgres_tls`, for the tests over TLS) with `ignore` and
/// a reason. The build script of a crate with PostgreSQL tests sets that cfg when no server is
/// configured outside CI, so that `cargo test` reports them as ignored, not passed, while CI
/// still runs them.
const ALLOWED_CONDITIONAL_IGNORE: [&str; 2] = [
    concat!("cfg_", "attr(parmana_no_postgres,ignore=\""),
    concat!("cfg_", "attr(parmana_no_postgres_tls,ignore=\""),
];

/// Refuses a plain `ignore` attribute and any conditional one other than [`ALLOWED_CONDITIONAL_IGNORE`].
fn check_ignored_tests(shown: &str, text: &str, problems: &mut Vec<String>) {
    if text.contains(concat!("#[", "ignore")) {
        problems.push(format!(
            "{shown}: ignored tests are not allowed; fix or delete the test"
        ));
    }
    let cfg_attr = concat!("cfg_", "attr(");
    let mut rest = text;
    while let Some(start) = rest.find(cfg_attr) {
        let after = &rest[start..];
        let end = after.find(")]").map_or(after.len(), |e| e + 2);
        let attr: String = after[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let mentions_ignore = attr
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == "ignore");
        if mentions_ignore
            && !ALLOWED_CONDITIONAL_IGNORE
                .iter()
                .any(|allowed| attr.starts_with(allowed))
        {
            problems.push(format!(
                "{shown}: the only conditional ignore allowed is on `parmana_no_postgres` or \
                 `parmana_no_postgres_tls`, with a reason (PostgreSQL tests without a server; \
                 see docs/replay-stores.md)"
            ));
        }
        rest = &after[end..];
    }
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != "corpus" && name != "artifacts" {
                collect_rs_files(&path, out);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_checks_catch_missing_doc_lines_and_ignored_tests() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("crates/demo/src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("good.rs"), "//! Fine.\nfn main() {}\n").unwrap();
        std::fs::write(src.join("bare.rs"), "fn main() {}\n").unwrap();
        let ignored = format!(
            "//! Has one.\n{}]\n#[test]\nfn t() {{}}\n",
            concat!("#[", "ignore")
        );
        std::fs::write(src.join("ignored.rs"), ignored).unwrap();
        // The PostgreSQL form is allowed, also as rustfmt splits it over lines.
        let allowed = format!(
            "//! Needs a server.\n#[test]\n#[{}(\n    parmana_no_postgres,\n    ignore = \"no server\"\n)]\nfn t() {{}}\n",
            concat!("cfg_", "attr")
        );
        std::fs::write(src.join("postgres.rs"), allowed).unwrap();
        // Any other condition, or the allowed condition without a reason, is refused.
        let other = format!(
            "//! Wrong.\n#[{0}(unix, ignore = \"slow\")]\n#[test]\nfn t() {{}}\n#[{0}(parmana_no_postgres, ignore)]\n#[test]\nfn u() {{}}\n",
            concat!("cfg_", "attr")
        );
        std::fs::write(src.join("conditional.rs"), other).unwrap();
        let cli = dir.path().join("crates/parmana-cli/src");
        std::fs::create_dir_all(&cli).unwrap();
        let lower = concat!("parmana_", "trust::LocalSigningKey");
        std::fs::write(cli.join("main.rs"), format!("//! Bin.\nuse {lower};\n")).unwrap();
        let mut problems = Vec::new();
        check_sources(dir.path(), &mut problems);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert_eq!(
            problems
                .iter()
                .filter(|p| p.contains("conditional.rs") && p.contains("parmana_no_postgres"))
                .count(),
            2,
            "{problems:?}"
        );
        assert!(!problems.iter().any(|p| p.contains("postgres.rs")));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("parmana-cli") && p.contains("go through parmana_runtime"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("bare.rs") && p.contains("//!"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("ignored.rs") && p.contains("ignored tests"))
        );
    }

    /// Every stable error code written in the library sources is listed in `docs/errors.md`.
    #[test]
    fn storage_and_crypto_crates_have_one_owner_and_named_baselines() {
        let cases: &[(&str, &str, bool, bool)] = &[
            // (crate, external, under [dev-dependencies], refused)
            ("parmana-replay", "postgres", false, false),
            ("parmana-runtime", "postgres", false, true),
            ("parmana-runtime", "rusqlite", true, true),
            ("parmana-benches", "postgres", true, false),
            ("parmana-benches", "postgres", false, true),
            ("parmana-benches", "r2d2", true, true),
            ("parmana-cli", "ed25519-dalek", true, true),
            ("parmana-cli", "serde_json", false, false),
        ];
        for (name, dep, is_dev, refused) in cases {
            assert_eq!(
                exclusive_external_problem(name, dep, *is_dev).is_some(),
                *refused,
                "{name} -> {dep} (dev: {is_dev})"
            );
        }
    }

    #[test]
    fn test_support_is_a_dev_dependency_only() {
        let none: &[&str] = &[];
        let arrow = |is_internal, is_dev, features| Arrow {
            is_internal,
            is_dev,
            features,
        };
        let runtime: &[&str] = &["runtime"];
        // (crate, dependency, the arrow, the problem's words, or "" for none)
        let cases = [
            (
                "parmana-policy",
                "parmana-testkit",
                arrow(true, true, none),
                "",
            ),
            (
                "parmana-runtime",
                "parmana-testkit",
                arrow(true, true, runtime),
                "",
            ),
            (
                "parmana-server",
                "parmana-testkit",
                arrow(true, true, runtime),
                "",
            ),
            (
                "parmana-runtime",
                "parmana-testkit",
                arrow(true, false, none),
                "outside [dev-dependencies]",
            ),
            (
                "parmana-canon",
                "parmana-testkit",
                arrow(true, true, none),
                "stands on it",
            ),
            (
                "parmana-trust",
                "parmana-testkit",
                arrow(true, true, runtime),
                "second copy",
            ),
            (
                "parmana-replay",
                "parmana-testkit",
                arrow(true, true, runtime),
                "second copy",
            ),
            (
                "parmana-policy",
                "parmana-trust",
                arrow(true, false, none),
                "arrow points up",
            ),
            ("parmana-policy", "serde", arrow(false, false, none), ""),
        ];
        for (name, dep, arrow, words) in cases {
            let problem = internal_dependency_problem(name, dep, &arrow, none);
            match words {
                "" => assert_eq!(problem, None, "{name} -> {dep}"),
                words => assert!(
                    problem.as_deref().is_some_and(|p| p.contains(words)),
                    "{name} -> {dep}: {problem:?}"
                ),
            }
        }
    }

    #[test]
    fn error_codes_are_documented() {
        let root = workspace_root();
        let doc = std::fs::read_to_string(root.join("docs/errors.md")).unwrap();
        let mut files = Vec::new();
        collect_rs_files(&root.join("crates"), &mut files);
        let mut missing = std::collections::BTreeSet::new();
        let mut seen = 0;
        for file in files
            .iter()
            .filter(|f| f.components().any(|c| c.as_os_str() == "src"))
        {
            let text = std::fs::read_to_string(file).unwrap();
            // Every `"layer.name"` wherever it stands: read from each quote on, not by pairing
            // quotes (an escaped quote in a string before it would pair the rest wrongly); and
            // every `warning[layer.name]` / `error[layer.name]` inside a message (the warnings
            // are printed so, and have no literal of their own).
            let mut literals = Vec::new();
            for (open, close) in [("\"", "\""), ("warning[", "]"), ("error[", "]")] {
                for (at, _) in text.match_indices(open) {
                    let rest = &text[at + open.len()..];
                    let Some(end) = rest.find(|c: char| {
                        !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
                    }) else {
                        continue;
                    };
                    if rest[end..].starts_with(close) {
                        literals.push(&rest[..end]);
                    }
                }
            }
            for literal in literals {
                let Some((layer, name)) = literal.split_once('.') else {
                    continue;
                };
                let is_code = [
                    "canon", "digest", "merkle", "tile", "policy", "trust", "replay", "runtime",
                    "server", "cli", "io",
                ]
                .contains(&layer)
                    && !name.is_empty()
                    && name != "json"
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if is_code {
                    seen += 1;
                    if !doc.contains(&format!("`{literal}`")) {
                        missing.insert(literal.to_owned());
                    }
                }
            }
        }
        assert!(
            seen > 50,
            "found only {seen} error codes; is the scan broken?"
        );
        assert!(
            missing.is_empty(),
            "error codes missing from docs/errors.md: {missing:?}"
        );
    }

    #[test]
    fn tidy() {
        if let Err(message) = run(&workspace_root()) {
            panic!("{message}");
        }
    }
}
