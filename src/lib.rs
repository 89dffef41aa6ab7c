//! `kubectl astro-sha` as a library: the module tree and the program's entry. The binary
//! (`src/main.rs`) calls [`main`], which parses the command line and dispatches to `commands`;
//! everything else is layered below it (see docs/architecture.md): `commands` → `args` → `kube`,
//! `registry`, `output` → `core` → `error`. No module is public: the one public item is `main`.

#![warn(unreachable_pub)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::commands::{completion, enable, import, pin, resolve, show, status, unpin, version};

mod args;
mod cli;
mod commands;
mod core;
mod error;
mod kube;
mod output;
mod registry;

/// What each kubectl log level (`-v=N`) shows; `ASTRO_SHA_LOG` (an `EnvFilter`) replaces it.
fn log_filter(level: u8) -> String {
    // The libraries that trace HTTP and TLS (connections, frames, handshakes): heard only at 9.
    const WIRE: &str = "hyper=info,hyper_util=info,h2=info,rustls=info,reqwest=info,tower=info";
    let requests = kube::request_log::TARGET;
    match level {
        // kube logs every failed request at ERROR, and reqwest's certificate verifier every
        // refused certificate; the command reports each failure once, with a hint
        0 => "warn,kube_client=off,rustls_platform_verifier=off".to_string(),
        1..=3 => format!("warn,kubectl_astro_sha=info,{requests}=off"),
        4..=5 => format!("info,kubectl_astro_sha=debug,{requests}=off"),
        // kubectl's 6: every API request, one line each
        6 => "info,kubectl_astro_sha=debug".to_string(),
        7..=8 => format!("debug,kubectl_astro_sha=trace,{WIRE}"),
        _ => "trace".to_string(),
    }
}

fn init_logging(level: u8) {
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASTRO_SHA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter(level)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        // from 7 on, other crates speak too: say which one
        .with_target(level >= 7)
        .try_init();
}

async fn dispatch(cli: Cli) -> error::Result<error::ExitStatus> {
    let g = &cli.global;
    match &cli.command {
        Command::Resolve(a) => resolve::run(g, a).await,
        Command::Show(a) => show::run(g, a).await,
        Command::Pin(a) => pin::run(g, a).await,
        Command::Unpin(a) => unpin::run(g, a).await,
        Command::Enable(a) => enable::run(g, a).await,
        Command::Status(a) => status::run(g, a).await,
        Command::Import(a) => import::run(g, a).await,
        Command::Completion(a) => {
            output::print_bytes(&completion::script(a.shell, Cli::command()))?;
            Ok(error::ExitStatus::Success)
        }
        Command::Version => version::run(g),
    }
}

/// Cobra's completion protocol, spoken before clap parses anything: the words being completed
/// are usually not a valid command line yet (`show --outp`), and global flags among them must not
/// be taken as ours. Reached as `kubectl-astro_sha __complete WORDS...` (the shell shim) or as
/// `kubectl_complete-astro_sha WORDS...` (the binary linked under the name kubectl looks for).
fn cobra_completion_request() -> Option<Vec<std::ffi::OsString>> {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    if completion::invoked_as_kubectl_complete(&argv0) {
        return Some(args.collect());
    }
    let rest: Vec<_> = args.collect();
    match rest.first() {
        Some(first) if first == completion::COBRA_COMPLETE_ARG => Some(rest[1..].to_vec()),
        _ => None,
    }
}

/// The whole program: `src/main.rs` only calls this, so every module below stays private to the
/// crate and the compiler reports what nothing uses.
pub fn main() -> ExitCode {
    if let Some(words) = cobra_completion_request() {
        return match output::print(&completion::cobra(&words, Cli::command())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.code())
            }
        };
    }
    let argv = args::kubectl_argv(std::env::args_os());
    // No arguments at all: the help, on stdout, exit 0 (as kubectl); clap would print it to
    // stderr with exit 2 as a missing subcommand.
    if argv.len() <= 1 {
        let help = Cli::command().render_help().to_string();
        return match output::print(&help) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => ExitCode::from(e.code()),
        };
    }
    let cli = Cli::parse_from(argv);
    init_logging(cli.global.verbosity());
    if let Err(e) = cli.check_flags() {
        eprintln!("error: {e}");
        return ExitCode::from(e.code());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(error::EXIT_ERROR);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) => {
            // The message may quote what the cluster, a registry or a file said.
            if e.kind.is_error() {
                eprintln!("error: {}", output::safe(&e.to_string()));
            } else {
                eprintln!("{}", output::safe(&e.to_string()));
            }
            ExitCode::from(e.code())
        }
    }
}
