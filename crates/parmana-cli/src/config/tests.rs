//! Unit tests of the deployment configuration: precedence, relative paths, refusals of unsafe or malformed files.

use super::*;

fn deployment(dir: &Path, file: Option<&str>, env: &[(&'static str, &str)]) -> Deployment {
    if let Some(text) = file {
        std::fs::write(dir.join(CONFIG_FILE_NAME), text).unwrap();
    }
    let env = env
        .iter()
        .map(|(name, value)| (*name, OsString::from(value)))
        .collect();
    Deployment::load_from(dir.join("sub/dir"), env, None).unwrap()
}

/// Every variable a setting names is read: one left out of [`VARIABLES`] would be
/// documented (help, `parmana config`) and silently ignored.
#[test]
fn every_setting_variable_is_read_from_the_environment() {
    let source = include_str!("../config.rs");
    let named: Vec<&str> = source
        .split("env: \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| name.starts_with("PARMANA_"))
        .collect();
    assert!(named.len() >= VARIABLES.len(), "{named:?}");
    for name in named {
        assert!(VARIABLES.contains(&name), "{name} is never read");
    }
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    std::fs::create_dir_all(root.join("sub/dir")).unwrap();
    let file = "store = \"sqlite:state/replay.sqlite3\"\npolicies = \"pol\"\n";
    let with_file = deployment(root, Some(file), &[]);
    let from_file = with_file.path(POLICIES, None);
    assert_eq!(from_file.value, root.join("pol"));
    assert_eq!(from_file.source.kind(), "file");
    let store = with_file.store(None).unwrap().unwrap();
    assert_eq!(
        store.value,
        format!("sqlite:{}", root.join("state/replay.sqlite3").display())
    );
    // A default resolves against the file's directory, not the current one.
    assert_eq!(
        with_file.path(TRUST_ROOT, None).value,
        root.join("trust/trust-root.json")
    );
    let with_env = deployment(root, None, &[(POLICIES.env, "env-pol")]);
    assert_eq!(
        with_env.path(POLICIES, None).value,
        root.join("sub/dir/env-pol")
    );
    let flag = with_env.path(POLICIES, Some(Path::new("flag-pol")));
    assert_eq!(flag.value, PathBuf::from("flag-pol"));
    assert_eq!(flag.source, Source::Flag("--policies"));
}

#[test]
fn no_file_means_no_store_and_cwd_relative_defaults() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(temp.path().join("sub/dir")).unwrap();
    let bare = deployment(temp.path(), None, &[]);
    assert!(bare.store(None).unwrap().is_none());
    assert_eq!(
        bare.require_store(None).unwrap_err().code,
        "cli.store_not_configured"
    );
    assert_eq!(
        bare.path(PINNED_ROOT, None).value,
        PathBuf::from("trust/root.pub")
    );
    assert_eq!(
        bare.keys(&[]).unwrap().value,
        vec![PathBuf::from("trust/keys/attestation.pem")]
    );
}

#[test]
fn unknown_keys_and_bad_toml_are_refused() {
    for text in [
        "polices = \"x\"\n",
        "store = \n",
        "expiry_warning_days = -1\n",
    ] {
        let temp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(temp.path().join("sub/dir")).unwrap();
        std::fs::write(temp.path().join(CONFIG_FILE_NAME), text).unwrap();
        let err = Deployment::load_from(temp.path().join("sub/dir"), Vec::new(), None).unwrap_err();
        assert_eq!(err.code, "cli.invalid_config", "{text}");
    }
}

/// A file found walking up that another user owns, or that anyone may write, is refused
/// (`cli.config_unsafe`), nothing read from it; named by `PARMANA_CONFIG`, it is read.
#[cfg(unix)]
#[test]
fn a_found_file_someone_else_could_have_planted_is_not_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let temp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(temp.path().join("sub/dir")).unwrap();
    let file = temp.path().join(CONFIG_FILE_NAME);
    std::fs::write(&file, "store = \"memory\"\n").unwrap();
    let load = || Deployment::load_from(temp.path().join("sub/dir"), Vec::new(), None);
    let named = || {
        Deployment::load_from(
            temp.path().join("sub/dir"),
            Vec::new(),
            Some(file.clone().into_os_string()),
        )
    };
    assert!(load().unwrap().file().is_some());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = load().unwrap_err();
    assert_eq!(err.code, "cli.config_unsafe", "{}", err.message);
    assert!(
        err.message.contains("anyone may write it"),
        "{}",
        err.message
    );
    assert!(named().unwrap().file().is_some());
    assert!(
        err.message
            .contains("PARMANA_CONFIG=/dev/null to read none"),
        "{}",
        err.message
    );
    // The way out that does not read it: no file read, none searched.
    let none = Deployment::load_from(
        temp.path().join("sub/dir"),
        Vec::new(),
        Some(NO_CONFIG_FILE.into()),
    )
    .unwrap();
    assert!(none.file().is_none());
    assert!(none.no_file_named());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Another user's file (only root may give a file away: CI runs as root).
    if std::os::unix::fs::chown(&file, Some(65_534), None).is_ok() {
        let err = load().unwrap_err();
        assert_eq!(err.code, "cli.config_unsafe", "{}", err.message);
        assert!(
            err.message.contains("belongs to uid 65534"),
            "{}",
            err.message
        );
        assert!(named().unwrap().file().is_some());
    }
}

/// A symbolic link found walking up that someone else made is refused, even to a file of
/// yours: read through it, your file's relative paths would resolve in their directory.
#[cfg(unix)]
#[test]
fn a_found_link_someone_else_made_is_not_read() {
    let temp = tempfile::tempdir().unwrap();
    let yours = temp.path().join("yours");
    std::fs::create_dir_all(&yours).unwrap();
    std::fs::write(yours.join(CONFIG_FILE_NAME), "store = \"memory\"\n").unwrap();
    let shared = temp.path().join("shared");
    std::fs::create_dir_all(shared.join("sub")).unwrap();
    let link = shared.join(CONFIG_FILE_NAME);
    std::os::unix::fs::symlink(yours.join(CONFIG_FILE_NAME), &link).unwrap();
    let load = || Deployment::load_from(shared.join("sub"), Vec::new(), None);
    // Yours: read (its directory is the link's).
    assert!(load().unwrap().file().is_some());
    // Another user's link (only root may give a link away: CI runs as root).
    if std::os::unix::fs::lchown(&link, Some(65_534), None).is_ok() {
        let err = load().unwrap_err();
        assert_eq!(err.code, "cli.config_unsafe", "{}", err.message);
        assert!(
            err.message
                .contains("symbolic link that belongs to uid 65534"),
            "{}",
            err.message
        );
    }
}

/// A `parmana.toml` found walking up that is no readable file (a dangling link, a named pipe,
/// a directory) is refused, not passed over for a parent's: that one would name another store,
/// where the same id executes again.
#[cfg(unix)]
#[test]
fn a_found_name_that_is_no_file_is_refused_not_passed_over() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(temp.path().join(CONFIG_FILE_NAME), "store = \"memory\"\n").unwrap();
    let app = temp.path().join("app");
    std::fs::create_dir_all(app.join("sub")).unwrap();
    let name = app.join(CONFIG_FILE_NAME);
    let load = || Deployment::load_from(app.join("sub"), Vec::new(), None);
    // The parent's file is read while nothing is named in `app`.
    assert_eq!(
        load().unwrap().file().map(|(path, _)| path.to_path_buf()),
        Some(temp.path().join(CONFIG_FILE_NAME))
    );
    let make_pipe = |path: &Path| {
        let made = std::process::Command::new("mkfifo")
            .arg("-m")
            .arg("600")
            .arg(path)
            .status()
            .unwrap();
        assert!(made.success());
    };
    type Make<'a> = &'a dyn Fn(&Path);
    let kinds: [(&str, Make); 3] = [
        ("a dangling link", &|path: &Path| {
            std::os::unix::fs::symlink(temp.path().join("gone.toml"), path).unwrap();
        }),
        ("a named pipe", &make_pipe),
        ("a directory", &|path: &Path| {
            std::fs::create_dir(path).unwrap()
        }),
    ];
    for (kind, make) in kinds {
        make(&name);
        let err = load().unwrap_err();
        assert_eq!(err.code, "cli.invalid_config", "{kind}: {}", err.message);
        assert!(
            err.message.contains("no parmana.toml above it is read"),
            "{kind}: {}",
            err.message
        );
        if name.is_dir() {
            std::fs::remove_dir(&name).unwrap();
        } else {
            std::fs::remove_file(&name).unwrap();
        }
    }
}

#[test]
fn server_settings_follow_the_same_precedence() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    std::fs::create_dir_all(root.join("sub/dir")).unwrap();
    let file = "[server]\nlisten = \"127.0.0.1:9000\"\ntokens = \"tokens.toml\"\n\
                    max_concurrency = 8\nlog_key = \"keys/log.pem\"\nlog_public = true\n\
                    [[server.authzen.policies]]\n\
                    policy = \"p@1.0.0\"\npermit = [\"allow\"]\n";
    let with_file = deployment(root, Some(file), &[]);
    let listen = with_file
        .server_value::<std::net::SocketAddr>(LISTEN, None, "127.0.0.1:8080".parse().unwrap())
        .unwrap();
    assert_eq!(listen.value.port(), 9000);
    assert_eq!(listen.source.kind(), "file");
    // A relative file path resolves against the file's directory.
    assert_eq!(
        with_file.server_path(TOKENS, None).unwrap().value,
        root.join("tokens.toml")
    );
    assert!(with_file.server_path(TLS_CERT, None).is_none());
    let from_file = with_file.log_keys(&[]).unwrap().unwrap();
    assert_eq!(from_file.value, [root.join("keys/log.pem")]);
    assert_eq!(from_file.source.kind(), "file");
    assert!(
        with_file
            .server_value(LOG_PUBLIC, None, false)
            .unwrap()
            .value
    );
    // The variable is a path list; one that names none is refused, not taken as "no key".
    let list = std::env::join_paths(["/etc/log-1.pem", "/etc/log-2.pem"]).unwrap();
    let list = list.to_str().unwrap();
    let log_key_env = deployment(root, Some(file), &[(LOG_KEY.env, list)]);
    let from_env = log_key_env.log_keys(&[]).unwrap().unwrap();
    assert_eq!(from_env.source, Source::Env("PARMANA_LOG_KEY"));
    assert_eq!(
        from_env.value,
        [
            PathBuf::from("/etc/log-1.pem"),
            PathBuf::from("/etc/log-2.pem")
        ]
    );
    let separator = if cfg!(windows) { ";" } else { ":" };
    let empty_env = deployment(root, Some(file), &[(LOG_KEY.env, separator)]);
    assert_eq!(
        empty_env.log_keys(&[]).map(|_| ()).unwrap_err().code,
        "cli.invalid_config"
    );
    // Flags come first.
    let flags = [PathBuf::from("/flag.pem")];
    assert_eq!(log_key_env.log_keys(&flags).unwrap().unwrap().value, flags);
    assert_eq!(
        with_file
            .server_value::<usize>(MAX_CONCURRENCY, None, 256)
            .unwrap()
            .value,
        8
    );
    assert_eq!(
        with_file
            .server_value::<usize>(MAX_CONNECTIONS, None, 1024)
            .unwrap()
            .source,
        Source::Default
    );
    let (_, server) = with_file.server_file().unwrap();
    assert_eq!(
        server.authzen.as_ref().unwrap().policies[0].permit,
        Some(vec!["allow".to_owned()])
    );
    // The variable beats the file, the flag beats the variable.
    let with_env = deployment(root, None, &[(LISTEN.env, "127.0.0.1:9001")]);
    let from_env = with_env
        .server_value::<std::net::SocketAddr>(LISTEN, None, "127.0.0.1:8080".parse().unwrap())
        .unwrap();
    assert_eq!(
        (from_env.value.port(), from_env.source.kind()),
        (9001, "env")
    );
    let from_flag = with_env
        .server_value(
            LISTEN,
            Some("127.0.0.1:9002".parse::<std::net::SocketAddr>().unwrap()),
            "127.0.0.1:8080".parse().unwrap(),
        )
        .unwrap();
    assert_eq!(from_flag.value.port(), 9002);
    // A value that does not parse is refused, naming where it came from.
    let bad = deployment(root, None, &[(MAX_CONCURRENCY.env, "many")]);
    let error = bad
        .server_value::<usize>(MAX_CONCURRENCY, None, 256)
        .unwrap_err();
    assert_eq!(error.code, "cli.invalid_config");
    assert!(error.message.contains("PARMANA_MAX_CONCURRENCY"));
}

#[test]
fn unknown_server_keys_are_refused() {
    for text in [
        "[server]\nlisten_on = \"x\"\n",
        "[server.authzen]\nfallback = \"p@1\"\n",
    ] {
        let temp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(temp.path().join("sub/dir")).unwrap();
        std::fs::write(temp.path().join(CONFIG_FILE_NAME), text).unwrap();
        let err = Deployment::load_from(temp.path().join("sub/dir"), Vec::new(), None).unwrap_err();
        assert_eq!(err.code, "cli.invalid_config", "{text}");
    }
}

#[test]
fn passwords_are_redacted() {
    for (store, shown) in [
        (
            "postgres://parmana:s3cret@db:5432/p?sslmode=require",
            "postgres://parmana:***@db:5432/p?sslmode=require",
        ),
        ("postgresql://parmana@db/p", "postgresql://parmana@db/p"),
        ("sqlite:/a/b", "sqlite:/a/b"),
        // The credentials end at the first `@`, as the store's parser reads them: a `?` or a
        // `/` in a password is still the password.
        ("postgres://u:a?b@h/db", "postgres://u:***@h/db"),
        ("postgres://u:pa/ss@h/db", "postgres://u:***@h/db"),
        // A password in the query string.
        (
            "postgres://u@h/db?sslmode=require&password=s3cret",
            "postgres://u@h/db?sslmode=require&password=***",
        ),
        (
            "postgres://u@h/db?PASSWORD=s3cret",
            "postgres://u@h/db?PASSWORD=***",
        ),
        (
            "postgres://u@h/db?%70assword=s3cret",
            "postgres://u@h/db?%70assword=***",
        ),
        ("postgres://h/db", "postgres://h/db"),
    ] {
        assert_eq!(redact_store(store), shown);
    }
}

/// `log_key` in `[server]` is one path or a list, each resolved against the file's directory; an
/// empty list is refused, not taken as "no log key".
#[test]
fn log_key_in_the_file_is_one_path_or_a_list() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    std::fs::create_dir_all(root.join("sub/dir")).unwrap();
    let listed = deployment(
        root,
        Some("[server]\nlog_key = [\"keys/a.pem\", \"keys/b.pem\"]\n"),
        &[],
    );
    assert_eq!(
        listed.log_keys(&[]).unwrap().unwrap().value,
        [root.join("keys/a.pem"), root.join("keys/b.pem")]
    );
    let empty = deployment(root, Some("[server]\nlog_key = []\n"), &[]);
    assert_eq!(
        empty.log_keys(&[]).map(|_| ()).unwrap_err().code,
        "cli.invalid_config"
    );
    let none = deployment(root, Some("[server]\nlisten = \"127.0.0.1:9000\"\n"), &[]);
    assert!(none.log_keys(&[]).unwrap().is_none());
}

/// A store variable that is not UTF-8 is refused: read lossily, a `sqlite:` path would name
/// another file, and ids would be consumed in a second store.
#[cfg(unix)]
#[test]
fn a_store_variable_that_is_not_utf8_is_refused() {
    use std::os::unix::ffi::OsStringExt;
    let temp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(temp.path().join("sub/dir")).unwrap();
    let env = vec![(
        STORE.env,
        OsString::from_vec(b"sqlite:caf\xe9.sqlite3".to_vec()),
    )];
    let loaded = Deployment::load_from(temp.path().join("sub/dir"), env, None).unwrap();
    let refused = loaded.store(None).map(|_| ()).unwrap_err();
    assert_eq!(refused.code, "cli.invalid_config");
    assert_eq!(
        loaded.require_store(None).map(|_| ()).unwrap_err().code,
        "cli.invalid_config"
    );
}

/// The witnesses' URLs: flags, else the variable (separated by whitespace), else the file (one or
/// a list); none named, or one that is not `http://` or `https://`, is `cli.invalid_config`
/// naming where it was given.
#[test]
fn witness_urls_come_from_flags_the_variable_or_the_file_and_must_be_http() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    std::fs::create_dir_all(root.join("sub/dir")).unwrap();
    let file = "[server]\nwitness_url = [\"https://w1.example/\", \"http://127.0.0.1:9\"]\n";
    let with_file = deployment(root, Some(file), &[]);
    let from_file = with_file.witness_urls(&[]).unwrap().unwrap();
    assert_eq!(
        from_file.value,
        ["https://w1.example/", "http://127.0.0.1:9"]
    );
    assert_eq!(from_file.source.kind(), "file");
    let with_env = deployment(
        root,
        None,
        &[(WITNESS_URL.env, " https://a.example  https://b.example ")],
    );
    let from_env = with_env.witness_urls(&[]).unwrap().unwrap();
    assert_eq!(from_env.value, ["https://a.example", "https://b.example"]);
    let flags = ["http://c.example".to_owned()];
    let from_flag = with_env.witness_urls(&flags).unwrap().unwrap();
    assert_eq!(from_flag.value, flags);
    assert_eq!(from_flag.source, Source::Flag("--witness-url"));
    let many: String = (0..33).map(|n| format!("https://w{n}.example ")).collect();
    for (value, says) in [
        ("  ", "the variable PARMANA_WITNESS_URL: names no witness"),
        (
            "w.example",
            "the variable PARMANA_WITNESS_URL: \"w.example\" is not an http:// or https:// URL",
        ),
        ("file:///etc/passwd", "is not an http:// or https:// URL"),
        (
            "https://user:secret@w.example/",
            "a witness URL carries no user or password",
        ),
        (
            "https://a.example https://A.example/",
            "\"https://A.example/\" is named twice",
        ),
        (&many, "names 33 witnesses, more than the 32 a server asks"),
    ] {
        let refused = deployment(root, None, &[(WITNESS_URL.env, value)])
            .witness_urls(&[])
            .unwrap_err();
        assert_eq!(refused.code, "cli.invalid_config", "{value:?}");
        assert!(
            refused.message.contains(says),
            "{value:?}: {}",
            refused.message
        );
    }
    std::fs::remove_file(root.join(CONFIG_FILE_NAME)).unwrap();
    let bare = deployment(root, None, &[]);
    assert!(bare.witness_urls(&[]).unwrap().is_none());
}
