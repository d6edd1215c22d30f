//! The documentation runs: the README's tour and docs/deploy.md ("deploy your own"), command by command in a shell, each exit code checked against the page.

use std::path::Path;
use std::process::Command;

use crate::common::repo_root;

/// The `sh` code blocks of `markdown`, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// One command of a block with the exit code the page promises (`# → exit N`, else 0).
struct Step {
    command: String,
    exit: i32,
}

fn steps(block: &str) -> Vec<Step> {
    block
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (command, exit) = match line.split_once("# → exit ") {
                Some((command, code)) => {
                    let digits: String = code.chars().take_while(char::is_ascii_digit).collect();
                    (command.trim_end(), digits.parse().unwrap())
                }
                None => (line, 0),
            };
            Step {
                command: command.to_owned(),
                exit,
            }
        })
        .collect()
}

/// Runs the steps in one shell (so `cd` and variables carry over) with `parmana` on the PATH,
/// and returns each step's exit code and the whole transcript.
fn run_steps(steps: &[Step], dir: &Path, prelude: &str) -> (Vec<i32>, String) {
    let mut script = format!("{prelude}\n");
    for (index, step) in steps.iter().enumerate() {
        script.push_str(&format!(
            "{}\necho \"@@step {index} exit $?\" >&2\n",
            step.command
        ));
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_parmana")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env("PATH", path);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PARMANA_") {
            command.env_remove(name);
        }
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let codes = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("@@step "))
        .map(|rest| rest.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    let transcript = format!(
        "--- stdout\n{}\n--- stderr\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    (codes, transcript)
}

fn check(steps: &[Step], codes: &[i32], transcript: &str) {
    assert_eq!(
        codes.len(),
        steps.len(),
        "not every step ran:\n{transcript}"
    );
    for (step, code) in steps.iter().zip(codes) {
        assert_eq!(
            *code, step.exit,
            "`{}` exited {code}, the page says {}:\n{transcript}",
            step.command, step.exit
        );
    }
}

#[test]
fn deploy_your_own_runs_as_written() {
    let page = std::fs::read_to_string(repo_root().join("docs/deploy.md")).unwrap();
    let all: Vec<Step> = sh_blocks(&page).iter().flat_map(|b| steps(b)).collect();
    assert!(all.len() > 20, "{} steps", all.len());
    // §6 calls the server with curl (.ci/run installs it).
    assert!(
        Command::new("curl").arg("--version").output().is_ok(),
        "docs/deploy.md §6 needs curl on the PATH"
    );
    // §6's server listens on a port the system picks, as the page writes it (a fixed one may be
    // taken).
    let served = all
        .iter()
        .filter(|step| step.command.contains("--listen 127.0.0.1:0"))
        .count();
    assert_eq!(served, 1, "§6 starts one server on 127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let (codes, transcript) = run_steps(&all, dir.path(), "");
    // §6's server's own log, for a failure's message.
    let serve_log = std::fs::read_to_string(dir.path().join("acme/serve.log")).unwrap_or_default();
    let transcript = format!("{transcript}\n--- acme/serve.log\n{serve_log}");
    check(&all, &codes, &transcript);
    // What the page says the auditor sees.
    for expected in [
        "superseded",
        "error[runtime.replay_detected]",
        "error[cli.verification_failed]",
        // §6: the server's 201 (its body), then its 409 for the same id.
        r#""execution_id":"pay-0004""#,
        "\n409\n",
    ] {
        assert!(transcript.contains(expected), "{expected}:\n{transcript}");
    }
}

#[test]
fn the_readme_tour_runs_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let tour = readme
        .split("### A short tour")
        .nth(1)
        .and_then(|rest| sh_blocks(rest).into_iter().next())
        .unwrap();
    let mut all = steps(&tour);
    // The tour's first line points at the release binary the main job built; here it is the
    // binary under test (on the PATH).
    assert!(all[0].command.starts_with("P="), "{}", all[0].command);
    all[0].command = "P=parmana".to_owned();
    // A private copy of the repository's deployment: the tour writes its store there.
    let repo = crate::common::temp_repo();
    let (codes, transcript) = run_steps(&all, repo.root(), "");
    check(&all, &codes, &transcript);
    for expected in [
        "valid: all",
        "error[runtime.replay_detected]",
        "error[trust.digest_mismatch]",
        "rule \"fraud\" (/rules/0): no match",
    ] {
        assert!(transcript.contains(expected), "{expected}:\n{transcript}");
    }
}
