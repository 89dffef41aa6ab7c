//! The command line: `Cli` and the `Command` list. Flag groups shared by several commands live in
//! `args`; each command's own flags live beside its `run` in `commands/`.

use clap::{Parser, Subcommand};

use crate::args::{GlobalArgs, OutputFormat};
use crate::error::{Error, Result};

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
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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

impl Command {
    /// The name it is called by.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Enable(_) => "enable",
            Command::Import(_) => "import",
            Command::Pin(_) => "pin",
            Command::Unpin(_) => "unpin",
            Command::Show(_) => "show",
            Command::Status(_) => "status",
            Command::Resolve(_) => "resolve",
            Command::Completion(_) => "completion",
            Command::Version => "version",
        }
    }

    /// The `-o` formats it prints (`table` is the default). A table with more columns under
    /// `-o wide` only where there is one.
    pub(crate) fn formats(&self) -> &'static [OutputFormat] {
        use OutputFormat::*;
        match self {
            Command::Show(_)
            | Command::Pin(_)
            | Command::Unpin(_)
            | Command::Import(_)
            | Command::Resolve(_)
            | Command::Status(_) => &[Table, Wide, Json, Yaml],
            Command::Enable(_) | Command::Version => &[Table, Json, Yaml],
            Command::Completion(_) => &[Table],
        }
    }

    /// Whether it prints a table with a header row (what `--no-headers` drops).
    pub(crate) fn has_headers(&self) -> bool {
        !matches!(
            self,
            Command::Enable(_) | Command::Version | Command::Completion(_)
        )
    }

    /// Whether `-n` / `-A` mean anything to it.
    pub(crate) fn uses_namespaces(&self) -> bool {
        !matches!(
            self,
            Command::Version | Command::Completion(_) | Command::Resolve(_)
        )
    }
}

impl Cli {
    /// Refuses the shared flags that would do nothing for this command (`version -o wide`,
    /// `enable --no-headers`, `resolve -A`), rather than ignore them: a flag
    /// that is silently ignored reads as a flag that worked. Exit 2, before anything is read.
    pub(crate) fn check_flags(&self) -> Result<()> {
        let (c, g) = (&self.command, &self.global);
        let cmd = format!("`kubectl astro-sha {}`", c.name());
        let names = |f: &[OutputFormat]| {
            f.iter()
                .filter_map(clap::ValueEnum::to_possible_value)
                .map(|v| v.get_name().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !c.formats().contains(&g.output) {
            let name = clap::ValueEnum::to_possible_value(&g.output)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default();
            return Err(Error::new(format!(
                "-o {name}: {cmd} has no {name} output; its formats: {}",
                names(c.formats())
            ))
            .hint(format!("drop -o {name}, or use one of those")));
        }
        if g.no_headers && !c.has_headers() {
            return Err(Error::new(format!("--no-headers: {cmd} prints no table"))
                .hint("drop --no-headers"));
        }
        if !c.uses_namespaces() && (g.namespace.is_some() || g.all_namespaces) {
            let flag = if g.all_namespaces { "-A" } else { "-n" };
            return Err(Error::new(format!("{flag}: {cmd} reads no namespace"))
                .hint(format!("drop {flag}")));
        }
        Ok(())
    }
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
    fn flags_that_would_do_nothing_are_refused() {
        let check = |args: &[&str]| {
            let argv = std::iter::once("k").chain(args.iter().copied());
            Cli::try_parse_from(argv).unwrap().check_flags()
        };
        for bad in [
            &["version", "-o", "wide"][..],
            &["enable", "--print", "-o", "wide"],
            &["enable", "--print", "--no-headers"],
            &["version", "--no-headers"],
            &["completion", "bash", "-o", "json"],
            &["resolve", "x", "-A"],
            &["version", "-n", "ns"],
        ] {
            let e = check(bad).expect_err(&format!("{bad:?}"));
            assert_eq!(e.code(), crate::error::EXIT_ERROR);
            assert!(
                e.message
                    .contains(&format!("kubectl astro-sha {}`", bad[0])),
                "{}",
                e.message
            );
        }
        let e = check(&["version", "-o", "wide"]).unwrap_err();
        assert_eq!(
            e.message,
            "-o wide: `kubectl astro-sha version` has no wide output; its formats: table, json, yaml"
        );
        for good in [
            &["version", "-o", "json"][..],
            &["status", "-o", "yaml", "--no-headers"],
            &["show", "-o", "wide", "-A", "--no-headers"],
            &["enable", "--print", "-o", "json"],
            &["pin", "--all", "-o", "wide"],
            &["completion", "zsh"],
        ] {
            assert!(check(good).is_ok(), "{good:?}");
        }
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
