//! The `parmana` binary: parses the command line and dispatches to one module per command group.

mod authoring_cmd;
mod canon_cmd;
mod cli_docs_cmd;
mod common;
mod config;
mod config_cmd;
mod execute_cmd;
mod exit;
mod init_cmd;
mod ledger_cmd;
mod log_cmd;
mod policy_cmd;
mod recover_cmd;
mod report;
mod revoke;
mod serve_cmd;
mod show_cmd;
mod store;
mod verify_cmd;
mod verify_lines;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

/// Parmana: a deterministic governance runtime that decides under signed policy and signs every decision.
///
/// Settings come from flags, then `PARMANA_*` variables, then `parmana.toml` (found in the
/// current directory or above it, like Cargo.toml), then the repository layout (`policies/`,
/// `trust/root.pub`, `trust/trust-root.json`, `release-manifest.json`,
/// `trust/keys/attestation.pem`). `parmana config` shows what is in force and why.
#[derive(Debug, Parser)]
#[command(name = "parmana", version, about, long_about, after_help = exit::EXIT_CODES_HELP)]
struct Cli {
    /// Output format: `human` (readable lines and tables) or `json` (one JSON object per
    /// report, and errors as `{"code","message"}` on stderr). What a command produces as an
    /// artifact is printed as it is in either: an attestation (JSON already), a signed
    /// checkpoint or cosigned note, a proof (`log checkpoint`, `log prove`, `log witness`,
    /// `log cosign`: C2SP text, as verifiers read it).
    #[arg(long, value_enum, global = true, default_value_t = report::Format::Human)]
    format: report::Format,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Execute signals under a signed policy, exactly once per execution id, and print the signed attestation.
    Execute(execute_cmd::ExecuteArgs),
    /// Verify an attestation offline: one line per check; exit 0 only if every check passes.
    Verify(verify_cmd::VerifyArgs),
    /// Check, evaluate, explain and test policy files, without signing anything.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Write the RFC 8785 canonical bytes of a JSON document (no trailing newline).
    Canon(canon_cmd::CanonArgs),
    /// Print the `sha256:` digest of the canonical bytes of a JSON document.
    Digest(canon_cmd::DigestArgs),
    /// Generate an Ed25519 key pair: PKCS#8 PEM private key and SPKI PEM public key.
    Keygen(authoring_cmd::KeygenArgs),
    /// Author the trust root: create version 1, or rotate to the next version.
    #[command(subcommand)]
    Trust(authoring_cmd::TrustCommand),
    /// Sign policy bundles, or import bundles of the original TypeScript tooling.
    #[command(subcommand)]
    Bundle(authoring_cmd::BundleCommand),
    /// Sign the release manifest that lists the bundles allowed to execute.
    #[command(subcommand)]
    Release(authoring_cmd::ReleaseCommand),
    /// Complete executions that were claimed but not completed (after a crash), byte-identically.
    Recover(recover_cmd::RecoverArgs),
    /// Print the stored attestation of an execution id (or say it is pending or unknown).
    Show(show_cmd::ShowArgs),
    /// Verify the replay store's tamper-evident ledger of completed executions.
    #[command(subcommand)]
    Ledger(ledger_cmd::LedgerCommand),
    /// The transparency log over the ledger: signed checkpoints, offline inclusion proofs of
    /// executions, consistency with older checkpoints (docs/transparency-log.md).
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
    /// Run the runtime as an HTTP service: executions, evaluations, verification, AuthZEN 1.0,
    /// health, status and metrics (docs/server.md).
    Serve(serve_cmd::ServeArgs),
    /// Print the effective deployment settings (flags, PARMANA_* variables, parmana.toml,
    /// defaults) and where each came from.
    Config(config_cmd::ConfigArgs),
    /// Scaffold a deployment: keys, trust root, an example policy with tests, a release manifest
    /// and `parmana.toml` — then print the commands to a verified attestation.
    Init(init_cmd::InitArgs),
    /// Print a shell completion script (bash, zsh, fish) on stdout.
    Completions(cli_docs_cmd::CompletionsArgs),
    /// Write shell completions and man pages into a directory (what `cargo xtask cli-docs` runs).
    #[command(hide = true)]
    GenerateCliDocs(cli_docs_cmd::GenerateArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let result = match &cli.command {
        Command::Execute(args) => execute_cmd::execute(args, cli.format),
        Command::Verify(args) => verify_cmd::verify(args, cli.format),
        Command::Policy(command) => policy_cmd::run(command, cli.format),
        Command::Canon(args) => canon_cmd::canon(args, cli.format),
        Command::Digest(args) => canon_cmd::digest(args, cli.format),
        Command::Keygen(args) => authoring_cmd::keygen(args, cli.format),
        Command::Trust(command) => authoring_cmd::trust(command, cli.format),
        Command::Bundle(command) => authoring_cmd::bundle(command, cli.format),
        Command::Release(command) => authoring_cmd::release(command, cli.format),
        Command::Ledger(command) => ledger_cmd::ledger(command, cli.format),
        Command::Log(command) => log_cmd::log(command, cli.format),
        Command::Recover(args) => recover_cmd::recover_command(args, cli.format),
        Command::Show(args) => show_cmd::show(args),
        Command::Serve(args) => serve_cmd::serve(args),
        Command::Config(args) => config_cmd::config(args, cli.format),
        Command::Init(args) => init_cmd::init(args, cli.format),
        Command::Completions(args) => cli_docs_cmd::completions(args),
        Command::GenerateCliDocs(args) => cli_docs_cmd::generate(args),
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

/// Reports a command line clap refused (or `--help`/`--version`, which are not errors). With
/// `--format json` anywhere on the line, the error is `{"code":"cli.usage","message"}` on stderr
/// like every other error; otherwise clap's own text. Exit 2 either way.
fn usage_error(error: &clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let json = json_requested(std::env::args_os().skip(1));
    // A command missing its subcommand: its help (exit 2), or with `--format json` the error
    // every other usage error is.
    if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand && !json {
        let _ = error.print();
        return ExitCode::from(exit::ExitClass::Usage.code());
    }
    if json {
        if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            let failure = report::Failure::new(
                "cli.usage",
                "a subcommand is required (see --help)",
                exit::ExitClass::Usage,
            );
            report::print_failure(&failure, report::Format::Json);
            return failure.exit_code();
        }
        // clap's text up to its usage line, on one line: the error and its tip.
        let rendered = error.render().to_string();
        let message = rendered
            .split("\nUsage:")
            .next()
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .trim_start_matches("error: ")
            .to_owned();
        let failure = report::Failure::new("cli.usage", message, exit::ExitClass::Usage);
        report::print_failure(&failure, report::Format::Json);
        return failure.exit_code();
    }
    let _ = error.print();
    ExitCode::from(exit::ExitClass::Usage.code())
}

/// Whether the raw arguments ask for `--format json` (`--format json` or `--format=json`).
fn json_requested(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let mut previous_was_format = false;
    for arg in args {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            return false;
        }
        if (previous_was_format && arg == "json") || arg == "--format=json" {
            return true;
        }
        previous_was_format = arg == "--format";
    }
    false
}
