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
  # 1. Turn Houston's digest feature on
  kubectl astro-sha enable --values values.yaml
  # 2. The Runtime catalog with digests, for Houston
  kubectl astro-sha import
  # 3. Move running Deployments to digests now
  kubectl astro-sha pin --all -A
  # Tag vs digest vs what runs; exit 1 unless everything is pinned
  kubectl astro-sha show -A
  kubectl astro-sha status --check",
    mut_subcommands = usage_as_in_help
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

/// Fixes a command's usage line to the one its `--help` shows. clap writes the flags it saw into
/// the usage line of an error, and counts a value taken from an environment variable as seen:
/// `ASTRO_SHA_INSECURE_REGISTRY=… kubectl astro-sha resolve` (no image) said
/// `Usage: kubectl astro-sha resolve --insecure-registry <HOST> <IMAGE>...`, a flag never typed.
/// Runs before the global flags are added to each command, so one stands in for them here.
fn usage_as_in_help(cmd: clap::Command) -> clap::Command {
    let mut shown = cmd
        .clone()
        .bin_name(format!("kubectl astro-sha {}", cmd.get_name()))
        .arg(clap::Arg::new("global flags").long("global-flags"));
    let usage = shown.render_usage().ansi().to_string();
    // "Usage:" (styled as a heading), then the line itself
    let line = usage
        .split_once("Usage:")
        .map_or(usage.as_str(), |(_, rest)| rest);
    let line = line.trim_start_matches("\x1b[0m").trim_start().to_string();
    cmd.override_usage(line)
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

    /// Each command's help rendered at `width` columns, long (`--help`) and short (`-h`).
    fn helps(width: usize) -> Vec<(String, String)> {
        let mut root = Cli::command().term_width(width);
        root.build();
        let mut out = vec![
            ("".to_string(), root.render_long_help().to_string()),
            ("".to_string(), root.render_help().to_string()),
        ];
        let names: Vec<String> = root
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        for name in names {
            let sc = root.find_subcommand_mut(&name).expect("subcommand");
            out.push((name.clone(), sc.render_long_help().to_string()));
            out.push((name, sc.render_help().to_string()));
        }
        out
    }

    /// The help sections ("Options", "Cluster options", ...) in order, each with its lines.
    fn sections(help: &str) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = vec![];
        for line in help.lines() {
            match line.strip_suffix(':') {
                Some(h) if !h.starts_with(' ') && !h.contains(' ') || h.ends_with(" options") => {
                    out.push((h.to_string(), vec![]))
                }
                _ => {
                    if let Some((_, lines)) = out.last_mut() {
                        lines.push(line.to_string())
                    }
                }
            }
        }
        out
    }

    /// The section whose option lines name `flag`.
    fn section_of(help: &str, flag: &str) -> Option<String> {
        sections(help).into_iter().find_map(|(h, lines)| {
            lines
                .iter()
                .any(|l| {
                    let l = l.trim_start();
                    l.starts_with(&format!("{flag} "))
                        || l == flag
                        || l.split(", ")
                            .nth(1)
                            .is_some_and(|f| f == flag || f.starts_with(&format!("{flag} ")))
                })
                .then_some(h)
        })
    }

    #[test]
    fn help_shows_the_commands_own_flags_first_and_the_shared_ones_under_headings() {
        let want = [
            ("--kubeconfig", "Cluster options"),
            ("--namespace", "Cluster options"),
            ("--token", "Cluster options"),
            ("--as-uid", "Cluster options"),
            ("--platform-namespace", "Cluster options"),
            ("--contexts", "Cluster options"),
            ("--registry-ca", "Registry options"),
            ("--registry-timeout", "Registry options"),
            ("--runtime-repository", "Runtime image options"),
            ("--output", "Output options"),
            ("--verbose...", "Output options"),
        ];
        for (name, help) in helps(100) {
            let s = sections(&help);
            // the command's own flags come first, under clap's plain "Options"
            let first = s
                .iter()
                .map(|(h, _)| h.as_str())
                .find(|h| h.ends_with("ptions"));
            if name != "help" {
                assert_eq!(first, Some("Options"), "{name}:\n{help}");
            }
            for (flag, heading) in want {
                if let Some(h) = section_of(&help, flag) {
                    assert_eq!(h, heading, "{name}: {flag}\n{help}");
                }
            }
            if name == "pin" {
                for own in ["--all", "--drop-tag", "--yes", "--dry-run[=<MODE>]"] {
                    assert_eq!(section_of(&help, own).as_deref(), Some("Options"), "{own}");
                }
                assert_eq!(
                    section_of(&help, "--kubeconfig").as_deref(),
                    Some("Cluster options"),
                    "{help}"
                );
            }
        }
    }

    #[test]
    fn examples_never_wrap_inside_a_command_line_at_80_columns() {
        let mut root = Cli::command();
        root.build();
        let mut texts: Vec<String> = vec![];
        for c in std::iter::once(&root).chain(root.get_subcommands()) {
            texts.extend(c.get_after_help().map(|t| t.to_string()));
            texts.extend(c.get_after_long_help().map(|t| t.to_string()));
        }
        // indented lines: the examples (commands, their comments and continuations)
        let examples: Vec<&str> = texts
            .iter()
            .flat_map(|t| t.lines())
            .filter(|l| l.starts_with("  ") && !l.trim().is_empty())
            .collect();
        assert!(examples.len() > 30, "{examples:?}");
        let rendered: Vec<String> = helps(80).into_iter().map(|(_, h)| h).collect();
        for line in examples {
            assert!(
                rendered
                    .iter()
                    .any(|h| h.lines().any(|l| l.trim_end() == line.trim_end())),
                "wraps at 80 columns ({} characters): {line}",
                line.chars().count()
            );
        }
    }

    #[test]
    fn the_usage_line_is_the_helps() {
        let mut root = Cli::command();
        root.build();
        let pin = root.find_subcommand_mut("pin").expect("pin");
        assert_eq!(
            pin.render_usage().to_string(),
            "Usage: kubectl astro-sha pin [OPTIONS] [RELEASES]..."
        );
        let e = Cli::try_parse_from(["k", "pin", "--all", "r1"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("\nUsage: kubectl astro-sha pin [OPTIONS] [RELEASES]...\n"),
            "{e}"
        );
        let e = Cli::try_parse_from(["k", "resolve"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("\nUsage: kubectl astro-sha resolve [OPTIONS] <IMAGE>...\n"),
            "{e}"
        );
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
