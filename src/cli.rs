//! The command line: `Cli` and the `Command` list. Flag groups shared by several commands live in
//! `args`; each command's own flags live beside its `run` in `commands/`.

use clap::{Parser, Subcommand};

use crate::args::GlobalArgs;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-astro_sha",
    bin_name = "kubectl astro-sha",
    version = crate::commands::version::SHORT,
    about = "Pin Astro Private Cloud Airflow Deployments to Astro Runtime image digests",
    long_about = "Pin Astro Private Cloud (Astronomer Software) Airflow Deployments to the immutable sha256 \
digests of their Astro Runtime images, and see at a glance what is pinned, drifted or tag-only.",
    after_help = "The workflow:
  kubectl astro-sha enable --values values.yaml     # 1. turn Houston's digest feature on
  kubectl astro-sha import                          # 2. Runtime catalog + digests for Houston
  kubectl astro-sha pin --all -A                    # 3. move running Deployments to digests now
  kubectl astro-sha show -A                         # tag vs digest vs what runs
  kubectl astro-sha status --check                  # exit 1 unless everything is pinned"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Turn Houston's custom-image-SHA feature on: in the platform's values file, or live in the cluster
    Enable(crate::commands::enable::EnableArgs),
    /// Import the Runtime releases catalog with every tag's digest into the ConfigMap Houston reads
    Import(Box<crate::commands::import::ImportArgs>),
    /// Pin the Runtime containers of Airflow Deployments to digests (tag kept for people)
    Pin(crate::commands::pin::PinArgs),
    /// Restore the images a pin replaced
    Unpin(crate::commands::unpin::UnpinArgs),
    /// Show every Runtime container of Airflow Deployments: tag, pinned digest, registry digest, running digest
    Show(crate::commands::show::ShowArgs),
    /// One screen: is the platform pinned? Feature flag, releases ConfigMap, Airflow Deployments by state
    Status(crate::commands::status::StatusArgs),
    /// Resolve image references to digests
    Resolve(crate::commands::resolve::ResolveArgs),
    /// Print the shell completion script for bash, zsh, fish or PowerShell
    #[command(after_long_help = crate::commands::completion::AFTER_LONG_HELP)]
    Completion(crate::commands::completion::CompletionArgs),
    /// Print the version and the git commit it was built from (-o json|yaml for scripts)
    Version,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::OutputFormat;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "k",
            "show",
            "-A",
            "-o",
            "json",
            "--context",
            "c",
            "--no-headers",
        ])
        .unwrap();
        assert!(cli.global.all_namespaces);
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.context.as_deref(), Some("c"));
    }

    #[test]
    fn completion_takes_a_known_shell() {
        let cli = Cli::try_parse_from(["k", "completion", "zsh"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Completion(crate::commands::completion::CompletionArgs {
                shell: clap_complete::Shell::Zsh
            })
        ));
        assert!(Cli::try_parse_from(["k", "completion", "tcsh"]).is_err());
        assert!(Cli::try_parse_from(["k", "completion"]).is_err());
    }
}
