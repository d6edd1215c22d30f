//! The `parmana` binary: parses the command line and dispatches to one module per command group.

mod canon_cmd;
mod exit;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Parmana: a deterministic governance runtime that decides under signed policy and signs every decision.
#[derive(Debug, Parser)]
#[command(name = "parmana", version, about, long_about = None)]
struct Cli {
    /// How errors are written on stderr: one human-readable line, or one JSON object `{code, message}`.
    #[arg(long, value_enum, global = true, default_value_t = report::Format::Human)]
    format: report::Format,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the RFC 8785 canonical bytes of a JSON document (no trailing newline).
    Canon(canon_cmd::CanonArgs),
    /// Print the `sha256:` digest of the canonical bytes of a JSON document.
    Digest(canon_cmd::DigestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Canon(args) => canon_cmd::canon(&args, cli.format),
        Command::Digest(args) => canon_cmd::digest(&args, cli.format),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.reported {
                report::print_failure(&failure, cli.format);
            }
            failure.exit_code()
        }
    }
}
