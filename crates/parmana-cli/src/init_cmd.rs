//! `parmana init [DIR]`: scaffold a deployment — fresh keys, trust root, an example policy with tests, a signed bundle, a release manifest and `parmana.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parmana_runtime::canon::{PolicyRef, Timestamp};
use parmana_runtime::policy::EVALUATOR_SEMANTICS;
use parmana_runtime::trust::{
    LocalSigningKey, NEW_DIRECTORY_MODE, NEW_FILE_MODE, ReleaseManifestSpec, RoleSpec, Signer,
    TrustRootSpec, create_trust_root, sign_bundle_dir, sign_release_manifest, sync_directory_of,
    write_public_key_file,
};
use parmana_runtime::{
    RUNTIME_VERSION, RuntimeEnvironment, RuntimeEnvironmentConfig, load_bundle, load_trust_root,
    parse_policy_ref,
};

use crate::common::{
    ClockArgs, create_dir, create_new_file, output_exists, parse_timestamp, refuse_past_expiry,
    write_file,
};
use crate::config::{CONFIG_FILE_NAME, Deployment};
use crate::exit::ExitClass;
use crate::report::{Failure, Format, print_written};

/// The example policy `init` writes, its tests, and the signals the printed commands use.
const EXAMPLE_POLICY: &str = include_str!("init/policy.json");
const EXAMPLE_TESTS: [(&str, &str); 4] = [
    (
        "small-approve.json",
        include_str!("init/tests/small-approve.json"),
    ),
    (
        "large-deny.json",
        include_str!("init/tests/large-deny.json"),
    ),
    (
        "new-payee-escalates.json",
        include_str!("init/tests/new-payee-escalates.json"),
    ),
    (
        "unknown-currency.json",
        include_str!("init/tests/unknown-currency.json"),
    ),
];
const EXAMPLE_REF: &str = "payments-approval@1.0.0";
const EXAMPLE_SIGNALS: &str = r#"{"amount":120,"currency":"EUR","new_payee":false}"#;

/// How long the trust root and release manifest live by default: one year.
const DEFAULT_LIFETIME_SECONDS: i64 = 365 * 86_400;

const INIT_EXAMPLES: &str = "\
Example:
  parmana init my-deployment
  cd my-deployment
  parmana execute --policy payments-approval@1.0.0 \\
      --signals '{\"amount\":120,\"currency\":\"EUR\",\"new_payee\":false}' > attestation.json
  parmana verify attestation.json

The keys init generates are real Ed25519 keys written as files (private keys mode 0600): fine to
try things out; in production keep the root, policy and release keys offline and the attestation
key in a secret store.";

/// Arguments of `parmana init`.
#[derive(Debug, clap::Args)]
#[command(after_help = INIT_EXAMPLES)]
pub(crate) struct InitArgs {
    /// The directory to create the deployment in (created if missing; it must not already hold a
    /// `parmana.toml`, `trust/`, `policies/`, `release-manifest.json` or anything named
    /// `.parmana`, where an earlier store would be).
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// When the trust root and the release manifest expire (RFC 3339 UTC); default one year
    /// from now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    expires: Option<Timestamp>,
    #[command(flatten)]
    clock: ClockArgs,
}

/// One generated key: its role name and the signer.
struct RoleKey {
    role: &'static str,
    key: LocalSigningKey,
}

/// What `init` creates in the deployment's directory, in the order it publishes them: the
/// configuration last, so that a `parmana.toml` is there only once everything it names is.
const PUBLISHED: [(&str, Entry); 5] = [
    ("trust", Entry::Directory),
    ("policies", Entry::Directory),
    ("release-manifest.json", Entry::File),
    (".gitignore", Entry::FileUnlessPresent),
    (CONFIG_FILE_NAME, Entry::File),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Directory,
    File,
    /// A file the directory may already have (then kept as it is, and not refused).
    FileUnlessPresent,
}

/// Runs `parmana init`: builds the whole deployment in a staging directory inside DIR, verifies
/// it there as any command will, and only then moves it into place — so a failure (a full disk, a
/// signature that does not verify, another command racing for the same names) leaves DIR as it
/// was (a DIR it created is removed again), and a rerun starts clean.
pub(crate) fn init(args: &InitArgs, format: Format) -> Result<(), Failure> {
    let dir = &args.dir;
    let now = args.clock.now();
    let expires = match args.expires {
        Some(expires) => expires,
        None => Timestamp::from_unix_seconds_saturating(
            now.unix_seconds().saturating_add(DEFAULT_LIFETIME_SECONDS),
        ),
    };
    refuse_past_expiry("--expires", expires, now)?;
    // The expiry warning's window comes from the flag, the environment or a configuration found
    // walking up: checked before anything is written, so that a bad one leaves nothing.
    let deployment = Deployment::load()?;
    deployment.expiry_warning_days(args.clock.expiry_warning_days)?;
    for (name, entry) in PUBLISHED {
        if entry != Entry::FileUnlessPresent {
            refuse_existing(&dir.join(name))?;
        }
    }
    refuse_earlier_store(&dir.join(STORE_DIRECTORY))?;
    // A .gitignore of DIR's own is kept: said now, before the keys are made (an init killed
    // while it builds leaves them in its staging directory, which that file may not name).
    let gitignore_kept = std::fs::symlink_metadata(dir.join(".gitignore")).is_ok();
    if gitignore_kept {
        warn_gitignore_kept(&dir.join(".gitignore"));
    }
    let created = std::fs::symlink_metadata(dir).is_err();
    create_dir(dir)?;
    remove_abandoned_stagings(dir);
    let made = Staging::create(dir).and_then(|staging| {
        build(staging.path(), expires, now)?;
        publish(dir, staging.path(), !gitignore_kept)
    });
    if let Err(failure) = made {
        if created {
            // Only if empty: nothing of anyone else's goes.
            let _ = std::fs::remove_dir(dir);
        }
        return Err(failure);
    }
    args.clock.warn_if_expiring(
        &deployment,
        "the new deployment (its trust root and release manifest)",
        expires,
    )?;
    print_next_steps(dir, expires, format)
}

/// `cli.output_exists` when `path` (or a link there) already exists.
fn refuse_existing(path: &Path) -> Result<(), Failure> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(Failure::new(
            "cli.output_exists",
            format!(
                "{} already exists: `parmana init` only creates a new deployment",
                path.display()
            ),
            ExitClass::Io,
        ));
    }
    Ok(())
}

/// Where the new deployment's `parmana.toml` puts its replay store (`store` in
/// [`CONFIG_TEMPLATE`]).
const STORE_DIRECTORY: &str = ".parmana";

/// `cli.output_exists` when the directory the new `parmana.toml` puts its store in is already
/// there: it holds an earlier deployment's store (a DIR emptied of everything else to start
/// over), which the new deployment would be bound to — refusing its executions below the old
/// one's versions (`replay.version_rollback`), and its ids read back as not this chain's.
fn refuse_earlier_store(path: &Path) -> Result<(), Failure> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(Failure::new(
            "cli.output_exists",
            format!(
                "{} already exists: it may hold an earlier deployment's replay store, which the \
                 new parmana.toml would name; move it away (the executions it consumed stay \
                 there) and run `parmana init` again",
                path.display()
            ),
            ExitClass::Io,
        ));
    }
    Ok(())
}

/// The prefix and suffix of a staging directory's name: `.parmana-init.PID-NANOS.tmp`.
const STAGING_PREFIX: &str = ".parmana-init.";
const STAGING_SUFFIX: &str = ".tmp";

/// The directory a deployment is built in before it is published: `.parmana-init.PID-NANOS.tmp`
/// inside DIR (the same file system, so publishing a directory is a rename), removed with
/// whatever is left in it when dropped. A killed `init` leaves it behind, private keys and all:
/// the `.gitignore` names it, and the next `init` in DIR removes it. While it lives, it holds an
/// exclusive lock on the directory (`flock`, where the file system has it), which the next
/// `init` tries before it removes one: a staging directory of a running `init` is never taken,
/// whatever PID namespace that `init` runs in.
struct Staging {
    path: PathBuf,
    /// The directory opened and locked (none where it cannot be).
    _lock: Option<std::fs::File>,
}

impl Staging {
    fn create(dir: &Path) -> Result<Self, Failure> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!(
            "{STAGING_PREFIX}{}-{nanos}{STAGING_SUFFIX}",
            std::process::id()
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, NEW_DIRECTORY_MODE);
        builder
            .create(&path)
            .map_err(|e| Failure::io(&path.display().to_string(), &e))?;
        // Waits out another init's check of it (held for a moment), so the lock is held from
        // here to the end.
        let lock = std::fs::File::open(&path)
            .ok()
            .filter(|directory| directory.lock().is_ok());
        let staging = Self { path, _lock: lock };
        // Before anything else is made in it (the private keys first): an `init` killed while it
        // builds leaves them here, and DIR's own `.gitignore` may not name this directory yet
        // (it is published last) — so this one keeps all of it out of version control. (The
        // deployment's own `.gitignore` replaces it at the end of the build.)
        let ignore_all = staging.path.join(".gitignore");
        std::fs::write(&ignore_all, b"*\n")
            .map_err(|e| Failure::io(&ignore_all.display().to_string(), &e))?;
        Ok(staging)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Removed before the lock goes (the fields drop after this).
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes the staging directories killed `init`s left in `dir`: those no `init` holds locked
/// ([`Staging`]) and whose process is gone (on Linux, where /proc shows this PID namespace's
/// processes; elsewhere, those untouched for ten minutes). One a running `init` owns stays.
fn remove_abandoned_stagings(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| {
            let stamp = name
                .strip_prefix(STAGING_PREFIX)?
                .strip_suffix(STAGING_SUFFIX)?;
            let (pid, nanos) = stamp.split_once('-')?;
            let decimal = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
            (decimal(pid) && decimal(nanos)).then(|| pid.to_owned())
        }) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            continue;
        }
        // Held through the removal when taken; a directory locked by a running `init` is kept.
        let lock = std::fs::File::open(entry.path());
        if let Ok(directory) = &lock
            && let Err(std::fs::TryLockError::WouldBlock) = directory.try_lock()
        {
            continue;
        }
        // Only where /proc shows this process (so it is mounted, and of this PID namespace).
        let proc_shows_processes = cfg!(target_os = "linux")
            && Path::new("/proc")
                .join(std::process::id().to_string())
                .exists();
        let abandoned = if proc_shows_processes {
            !Path::new("/proc").join(&pid).exists()
        } else {
            entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(600))
        };
        if abandoned {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A file-system object: its device and inode (on Unix).
type Identity = (u64, u64);

/// Which file-system object `path` is now, to take back only what is still the one this command
/// published.
fn identity(path: &Path) -> Option<Identity> {
    let metadata = std::fs::symlink_metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        Some((metadata.dev(), metadata.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        Some((0, 0))
    }
}

/// Moves the staged deployment into `dir`, each entry only where nothing is — a directory by a
/// rename (which never replaces one holding anything; what is there is refused first, though an
/// empty directory made between that check and the rename is replaced), a file created where
/// nothing is ([`create_new_file`]) — then syncs `dir`. If another
/// command created one of them meanwhile, or the sync fails, what this one had already moved
/// goes back (each only while it is still the one it moved; a directory that cannot go back, its
/// staging directory gone, is removed) and nothing of the other's is touched (`cli.output_exists`
/// for a race). A `.gitignore` DIR already has is kept, with a warning when `warn_kept`.
fn publish(dir: &Path, staging: &Path, warn_kept: bool) -> Result<(), Failure> {
    let mut published: Vec<Published<'_>> = Vec::new();
    let io = |path: &Path, e: &std::io::Error| Failure::io(&path.display().to_string(), e);
    let mut outcome = Ok(());
    for (name, entry) in PUBLISHED {
        let (from, to) = (staging.join(name), dir.join(name));
        let moved = match entry {
            Entry::Directory => refuse_existing(&to).and_then(|()| {
                std::fs::rename(&from, &to).map_err(|e| {
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty
                    ) {
                        output_exists(&to)
                    } else {
                        io(&to, &e)
                    }
                })
            }),
            Entry::File | Entry::FileUnlessPresent => std::fs::read(&from)
                .map_err(|e| io(&from, &e))
                .and_then(|bytes| create_new_file(&to, &bytes, NEW_FILE_MODE)),
        };
        match moved {
            Ok(()) => published.push((name, entry, identity(&to))),
            Err(failure)
                if entry == Entry::FileUnlessPresent && failure.code == "cli.output_exists" =>
            {
                // Theirs is kept: say what it should hold.
                if warn_kept {
                    warn_gitignore_kept(&to);
                }
            }
            Err(failure) => {
                outcome = Err(failure);
                break;
            }
        }
    }
    if outcome.is_ok() {
        outcome = sync_directory_of(&dir.join(CONFIG_FILE_NAME)).map_err(|e| io(dir, &e));
    }
    if outcome.is_err() {
        take_back(dir, staging, &published);
    }
    outcome
}

/// An entry [`publish`] moved into place: its name, what it is, and which object it was.
type Published<'a> = (&'a str, Entry, Option<Identity>);

/// Takes back what a failed [`publish`] moved into `dir`, newest first, each only while it is
/// still the object it moved: a directory goes back into `staging` (or, that failing — the staging
/// directory gone — is removed), a file is removed.
fn take_back(dir: &Path, staging: &Path, published: &[Published<'_>]) {
    for (name, entry, moved) in published.iter().rev() {
        let at = dir.join(name);
        if moved.is_none() || identity(&at) != *moved {
            continue;
        }
        let _ = match entry {
            Entry::Directory => {
                std::fs::rename(&at, staging.join(name)).or_else(|_| std::fs::remove_dir_all(&at))
            }
            Entry::File | Entry::FileUnlessPresent => std::fs::remove_file(&at),
        };
    }
    let _ = sync_directory_of(&dir.join(CONFIG_FILE_NAME));
}

/// `warning[cli.gitignore_kept]`: the `.gitignore` at `path` is DIR's own, kept as it is.
fn warn_gitignore_kept(path: &Path) {
    crate::report::errln!(
        "warning[cli.gitignore_kept]: {} exists and was kept as it is; to keep the store, the \
         private keys and a killed init's staging directory out of version control, add: {}",
        path.display(),
        GITIGNORE_LINES.join(" ")
    );
}

/// Writes a whole deployment into `dir` (the staging directory) and verifies it there.
fn build(dir: &Path, expires: Timestamp, now: Timestamp) -> Result<(), Failure> {
    let keys_dir = dir.join("trust").join("keys");
    create_dir(&keys_dir)?;
    let mut keys = Vec::new();
    for role in ["root", "policy", "release", "attestation"] {
        let key = LocalSigningKey::generate().map_err(|e| Failure::trust(&e))?;
        key.write_pem_file(&keys_dir.join(format!("{role}.pem")))
            .map_err(|e| Failure::trust(&e))?;
        write_public_key_file(&key.public_key(), &keys_dir.join(format!("{role}.pub")))
            .map_err(|e| Failure::trust(&e))?;
        keys.push(RoleKey { role, key });
    }
    let key = |role: &str| -> Result<&LocalSigningKey, Failure> {
        keys.iter()
            .find(|k| k.role == role)
            .map(|k| &k.key)
            .ok_or_else(|| {
                Failure::new(
                    "cli.internal",
                    format!("no {role} key was made (a defect of parmana)"),
                    ExitClass::Internal,
                )
            })
    };
    let role = |name: &str| -> Result<RoleSpec, Failure> {
        Ok(RoleSpec {
            keys: vec![key(name)?.public_key()],
            threshold: 1,
        })
    };

    // Trust root version 1, signed by the root key, and the pinned root public key.
    let spec = TrustRootSpec {
        expires,
        root: role("root")?,
        policy: role("policy")?,
        release: role("release")?,
        attestation: role("attestation")?,
        log: None,
    };
    let root_key: &dyn Signer = key("root")?;
    let trust_root = create_trust_root(&spec, &[root_key]).map_err(|e| Failure::trust(&e))?;
    write_file(&dir.join("trust").join("trust-root.json"), &trust_root)?;
    write_public_key_file(
        &key("root")?.public_key(),
        &dir.join("trust").join("root.pub"),
    )
    .map_err(|e| Failure::trust(&e))?;

    // The example policy with its tests, signed as a bundle by the policy key.
    let policy = example_ref()?;
    let bundle_dir = dir
        .join("policies")
        .join(policy.id().as_str())
        .join(policy.version().as_str());
    create_dir(&bundle_dir.join("tests"))?;
    write_file(&bundle_dir.join("policy.json"), EXAMPLE_POLICY.as_bytes())?;
    for (name, text) in EXAMPLE_TESTS {
        write_file(&bundle_dir.join("tests").join(name), text.as_bytes())?;
    }
    let policy_key: &dyn Signer = key("policy")?;
    sign_bundle_dir(&bundle_dir, &policy, &[policy_key]).map_err(|e| Failure::trust(&e))?;
    // What was written verifies as any command will verify it.
    let trust = load_trust_root(
        &dir.join("trust").join("root.pub"),
        &dir.join("trust").join("trust-root.json"),
        now,
    )
    .map_err(|e| Failure::execution(&e))?;
    let bundle_digest = load_bundle(&trust, &bundle_dir)
        .map_err(|e| Failure::execution(&e))?
        .bundle_digest();

    // Release manifest version 1 listing it, signed by the release key.
    let manifest = ReleaseManifestSpec {
        version: 1,
        expires,
        evaluator_semantics: EVALUATOR_SEMANTICS.to_owned(),
        minimum_runtime_version: RUNTIME_VERSION.to_owned(),
        policies: BTreeMap::from([(policy.clone(), bundle_digest)]),
    };
    let release_key: &dyn Signer = key("release")?;
    let manifest =
        sign_release_manifest(&manifest, &[release_key]).map_err(|e| Failure::trust(&e))?;
    write_file(&dir.join("release-manifest.json"), &manifest)?;
    RuntimeEnvironment::load(&RuntimeEnvironmentConfig::standard_layout(dir), now)
        .map_err(|e| Failure::execution(&e))?;
    write_file(&dir.join(".gitignore"), gitignore().as_bytes())?;
    // Writable by its owner only, whatever the umask: one anyone may write is refused when
    // found walking up (`cli.config_unsafe`).
    create_new_file(
        &dir.join(CONFIG_FILE_NAME),
        CONFIG_TEMPLATE.as_bytes(),
        NEW_FILE_MODE,
    )
}

/// The `parmana.toml` of a new deployment.
const CONFIG_TEMPLATE: &str = "\
# The deployment configuration, written by `parmana init`. Every command run in this directory or
# below it uses these settings; relative paths resolve against this file's directory.
# `parmana config` prints what is in force and where each setting came from.
policies = \"policies\"
pinned_root = \"trust/root.pub\"
trust_root = \"trust/trust-root.json\"
release_manifest = \"release-manifest.json\"
keys = [\"trust/keys/attestation.pem\"]
# The replay store: every execution id is consumed here exactly once. For several machines, use a
# PostgreSQL URL: store = \"postgres://parmana@db.internal/parmana\".
store = \"sqlite:.parmana/replay.sqlite3\"
expiry_warning_days = 30
";

/// The `.gitignore` of a new deployment (unless DIR has one): the store and the private keys
/// never belong in version control (nor what a killed `init` left: its staging directory holds
/// private keys).
const GITIGNORE_LINES: [&str; 3] = ["/.parmana/", "/trust/keys/*.pem", "/.parmana-init.*.tmp/"];

/// [`GITIGNORE_LINES`] as the file `init` writes.
fn gitignore() -> String {
    let mut text = String::from(
        "# The replay store and the private keys never belong in version control (nor what a\n\
         # killed `parmana init` left: its staging directory holds private keys).\n",
    );
    for line in GITIGNORE_LINES {
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn example_ref() -> Result<PolicyRef, Failure> {
    parse_policy_ref(EXAMPLE_REF).map_err(|e| Failure::execution(&e))
}

/// What `init` made (each path relative to DIR, and what it is) and the commands from there to a
/// verified attestation: printed as text, or under `--format json` as one object.
fn print_next_steps(dir: &Path, expires: Timestamp, format: Format) -> Result<(), Failure> {
    let shown = dir.display().to_string();
    let made = [
        (
            "parmana.toml",
            "settings (store: sqlite:.parmana/replay.sqlite3)".to_owned(),
        ),
        (
            "trust/keys/",
            "root, policy, release and attestation keys (.pem private, mode 0600; .pub public)"
                .to_owned(),
        ),
        (
            "trust/trust-root.json",
            format!("trust root version 1, expires {expires}"),
        ),
        ("trust/root.pub", "the pinned root key".to_owned()),
        (
            "policies/payments-approval/1.0.0/",
            "an example policy with tests, signed".to_owned(),
        ),
        (
            "release-manifest.json",
            "release manifest version 1 listing it".to_owned(),
        ),
    ];
    let steps = [
        format!("cd {}", shell_quote(&shown)),
        format!(
            "parmana execute --policy {EXAMPLE_REF} --signals '{EXAMPLE_SIGNALS}' > attestation.json"
        ),
        "parmana verify attestation.json".to_owned(),
    ];
    let mut human = format!("created a Parmana deployment in {shown}:\n");
    for (path, what) in &made {
        human.push_str(&format!("  {path:<35}{what}\n"));
    }
    human.push_str("\nFrom here to a verified attestation:");
    for step in &steps {
        human.push_str(&format!("\n  {step}"));
    }
    print_written(
        format,
        &human,
        &serde_json::json!({
            "directory": shown,
            "expires": expires.to_string(),
            "created": made
                .iter()
                .map(|(path, what)| ((*path).to_owned(), what.clone()))
                .collect::<BTreeMap<_, _>>(),
            "next_steps": steps,
        }),
    )
}

/// Quotes a path for a POSIX shell when it needs it.
fn shell_quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The directory `init` refuses to find is the one its `parmana.toml` puts the store in (and
    /// its `.gitignore` keeps out of version control).
    #[test]
    fn the_store_directory_refused_is_the_one_the_configuration_names() {
        assert!(
            CONFIG_TEMPLATE.contains(&format!("\nstore = \"sqlite:{STORE_DIRECTORY}/")),
            "{CONFIG_TEMPLATE}"
        );
        assert!(GITIGNORE_LINES.contains(&format!("/{STORE_DIRECTORY}/").as_str()));
    }

    /// A staging directory keeps all it holds out of version control from the start: an `init`
    /// killed while it builds leaves the private keys there before DIR has a `.gitignore`.
    #[test]
    fn a_staging_directory_is_ignored_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::create(dir.path()).unwrap();
        assert_eq!(
            std::fs::read(staging.path().join(".gitignore")).unwrap(),
            b"*\n"
        );
    }

    /// Stages every entry `init` publishes, each holding "ours".
    fn staged(dir: &Path) -> Staging {
        let staging = Staging::create(dir).unwrap();
        for (name, entry) in PUBLISHED {
            let path = staging.path().join(name);
            match entry {
                Entry::Directory => {
                    std::fs::create_dir(&path).unwrap();
                    std::fs::write(path.join("inside"), b"ours").unwrap();
                }
                Entry::File | Entry::FileUnlessPresent => std::fs::write(&path, b"ours").unwrap(),
            }
        }
        staging
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| !name.starts_with(STAGING_PREFIX))
            .collect();
        names.sort();
        names
    }

    /// What another command created between `init`'s check and its publishing is never touched:
    /// `init` refuses, and what it had already moved into place — directories and files — goes
    /// back, so the directory holds exactly what the other command left (and a `.gitignore` of
    /// the directory's own is kept, never refused).
    #[test]
    fn a_deployment_raced_while_publishing_is_taken_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), b"theirs").unwrap();
        let staging = staged(dir.path());
        // The other command's configuration, made after the check: the last entry published.
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), b"theirs").unwrap();
        let failure = publish(dir.path(), staging.path(), true).unwrap_err();
        assert_eq!(failure.code, "cli.output_exists");
        assert_eq!(names(dir.path()), [".gitignore", CONFIG_FILE_NAME]);
        for name in [".gitignore", CONFIG_FILE_NAME] {
            assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), b"theirs");
        }
        // The directories went back to the staging directory, which then goes with them.
        assert!(staging.path().join("trust/inside").exists());
        let staged_at = staging.path().to_path_buf();
        drop(staging);
        assert!(!staged_at.exists());
        // Without the race it publishes everything, keeping the directory's own .gitignore.
        std::fs::remove_file(dir.path().join(CONFIG_FILE_NAME)).unwrap();
        let staging = staged(dir.path());
        publish(dir.path(), staging.path(), true).unwrap();
        assert_eq!(
            names(dir.path()),
            [
                ".gitignore",
                CONFIG_FILE_NAME,
                "policies",
                "release-manifest.json",
                "trust"
            ]
        );
        assert_eq!(
            std::fs::read(dir.path().join(".gitignore")).unwrap(),
            b"theirs"
        );
        assert_eq!(
            std::fs::read(dir.path().join(CONFIG_FILE_NAME)).unwrap(),
            b"ours"
        );
    }

    /// A staging directory a killed `init` left is removed by the next one; one whose process
    /// runs (this one's) stays, and so does anything else.
    #[cfg(target_os = "linux")]
    #[test]
    fn abandoned_staging_directories_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // No process has this id (above the kernel's maximum, 2^22).
        let dead = dir.path().join(".parmana-init.4194305-17.tmp");
        std::fs::create_dir_all(dead.join("trust/keys")).unwrap();
        std::fs::write(dead.join("trust/keys/root.pem"), b"key").unwrap();
        let alive = Staging::create(dir.path()).unwrap();
        for other in [".parmana-init.x-1.tmp", "keep"] {
            std::fs::create_dir(dir.path().join(other)).unwrap();
        }
        // One whose process this PID namespace does not see, but which its `init` (another
        // namespace's, sharing the directory) holds locked.
        let elsewhere = dir.path().join(".parmana-init.4194306-18.tmp");
        std::fs::create_dir(&elsewhere).unwrap();
        let held = std::fs::File::open(&elsewhere).unwrap();
        held.lock().unwrap();
        remove_abandoned_stagings(dir.path());
        assert!(!dead.exists());
        assert!(alive.path().exists());
        assert!(elsewhere.exists());
        assert!(dir.path().join(".parmana-init.x-1.tmp").exists());
        assert!(dir.path().join("keep").exists());
        // Its lock let go (the process killed), it goes too.
        drop(held);
        remove_abandoned_stagings(dir.path());
        assert!(!elsewhere.exists());
        assert!(alive.path().exists());
    }

    /// A published directory whose staging directory is gone when it has to go back is
    /// removed: nothing of a failed init is left half-published (its private keys least of
    /// all); one that is no longer the directory it published stays.
    #[test]
    fn a_directory_that_cannot_go_back_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("trust");
        std::fs::create_dir_all(trust.join("keys")).unwrap();
        std::fs::write(trust.join("keys/root.pem"), b"key").unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        let published = [
            ("trust", Entry::Directory, identity(&trust)),
            // Replaced by another command's since: not this one's to take.
            ("policies", Entry::Directory, Some((u64::MAX, u64::MAX))),
        ];
        take_back(
            dir.path(),
            &dir.path().join(".parmana-init.1-1.tmp"),
            &published,
        );
        assert_eq!(names(dir.path()), ["policies"]);
    }
}
