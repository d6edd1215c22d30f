//! The listener's failures to accept a connection (the process out of open files): counted, logged once however often the accept loop retries, and the waiting client served once they pass.

use std::io::Write as _;
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{Served, deployment, metric_with};
use crate::limits_serve::{HEALTHZ, address, exchange, open_files_limits};

/// Sets the soft limit on open files of process `pid` to `soft`, keeping its hard limit `hard`
/// (`u64::MAX`: unlimited), with util-linux's `prlimit` (allowed on a process of one's own user).
fn set_open_files_limit(pid: &str, soft: u64, hard: u64) {
    let value = |limit: u64| {
        if limit == u64::MAX {
            "unlimited".to_owned()
        } else {
            limit.to_string()
        }
    };
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            pid,
            &format!("--nofile={}:{}", value(soft), value(hard)),
        ])
        .status()
        .expect("prlimit (util-linux) sets a running process's limits");
    assert!(status.success(), "prlimit --pid {pid} --nofile={soft}");
}

#[test]
fn a_listener_out_of_open_files_is_counted_logged_once_and_serves_again() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.clone();
    let pid = served.pid().to_string();
    let failures_before = metric_with(&served, token.as_deref(), "parmana_accept_failures_total");
    assert_eq!(failures_before, 0);
    let (soft, hard) = open_files_limits(&pid);
    // No more than the standard streams: the server's next accept fails (EMFILE), and so does
    // every retry, whatever else it holds open.
    set_open_files_limit(&pid, 3, hard);
    // The kernel completes the connection into the listen backlog; the request waits there.
    let mut waiting = TcpStream::connect(address(&served)).unwrap();
    waiting.write_all(HEALTHZ).unwrap();
    // About a dozen retries of the accept loop (one each 50 ms).
    std::thread::sleep(Duration::from_millis(700));
    set_open_files_limit(&pid, soft, hard);
    // The connection that waited is taken and answered.
    let answer = exchange(&mut waiting, b"");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{answer:?}: {}",
        served.stderr()
    );
    let failures = metric_with(&served, token.as_deref(), "parmana_accept_failures_total");
    assert!(failures >= 3, "{failures} failures counted");
    let stderr = served.stderr();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("cannot accept connections"))
        .collect();
    assert_eq!(lines.len(), 1, "one line for every retry: {stderr}");
    assert!(
        lines[0].contains("ERROR")
            && lines[0].contains("Too many open files")
            && lines[0].contains("failures=1"),
        "{}",
        lines[0]
    );
}
