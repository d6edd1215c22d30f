//! `cargo xtask`: repository automation that is plain Rust, not shell scripts.

mod bench_report;
mod cli_docs;
mod fixtures;
mod golden;
mod loadtest;
mod tidy;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("tidy") => tidy::run(&tidy::workspace_root()),
        Some("fixtures") => fixtures::run(&tidy::workspace_root()),
        Some("golden") => golden::run(&tidy::workspace_root()),
        Some("bench-report") => bench_report::run(&tidy::workspace_root(), &args[1..]),
        Some("cli-docs") => cli_docs::run(&tidy::workspace_root()),
        Some("loadtest") => loadtest::run(&tidy::workspace_root(), &args[1..]),
        _ => Err(
            "usage: cargo xtask <tidy|fixtures|golden|bench-report|cli-docs|loadtest>".to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
