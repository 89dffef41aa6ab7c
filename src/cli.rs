//! Command-line surface. Global flags mirror kubectl's so muscle memory carries over; registry
//! flags are shared by every command that resolves tags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::registry::{Mirror, PlatformSpec};

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-astro_sha",
    bin_name = "kubectl astro-sha",
    version = crate::version::SHORT,
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

#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, which may list several files, or ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Namespace to look in (default: the context's namespace)
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Look in every namespace
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// Timeout for each API server request, e.g. 30s or 1m
    #[arg(long, global = true, value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Option<Duration>,
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Don't print table headers
    #[arg(long, global = true)]
    pub no_headers: bool,
    /// Log to stderr: -v info, -vv debug, -vvv trace
    #[arg(short = 'v', long = "verbose", global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Wide,
    Json,
    Yaml,
}

/// How to reach registries.
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Extra CA certificate (PEM) to trust for registries; repeatable
    #[arg(
        long = "registry-ca",
        value_name = "FILE",
        env = "ASTRO_SHA_REGISTRY_CA",
        value_delimiter = ','
    )]
    pub registry_ca: Vec<PathBuf>,
    /// Allow plain HTTP or an unverified certificate for this registry host only; repeatable
    #[arg(
        long = "insecure-registry",
        value_name = "HOST",
        env = "ASTRO_SHA_INSECURE_REGISTRY",
        value_delimiter = ','
    )]
    pub insecure_registry: Vec<String>,
    /// Resolve images under SRC against DST (air-gapped mirrors), e.g. quay.io=mirror.corp:5000; repeatable
    #[arg(long = "registry-mirror", value_name = "SRC=DST", env = "ASTRO_SHA_REGISTRY_MIRROR", value_delimiter = ',', value_parser = Mirror::parse)]
    pub registry_mirror: Vec<Mirror>,
    /// Resolve the manifest of this platform inside multi-arch tags (os/arch[/variant]) instead of the index
    #[arg(long, value_parser = PlatformSpec::parse, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<PlatformSpec>,
    /// Registry requests in flight at once
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Timeout for each registry request
    #[arg(long = "registry-timeout", default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    pub registry_timeout: Duration,
    /// Retries for 429/500/502/503/504, transport errors and cut-short bodies (with backoff, honouring Retry-After)
    #[arg(long = "registry-retries", default_value_t = 3)]
    pub registry_retries: u32,
}

/// Which images count as the Astro Runtime.
#[derive(Args, Debug, Clone, Default)]
pub struct RuntimeArgs {
    /// Repository that holds the Runtime image (registry/path); repeatable. Default: quay.io/astronomer/astro-runtime,
    /// astrocrpublic.azurecr.io/runtime and any repository whose path ends in astro-runtime or /runtime
    #[arg(
        long = "runtime-repository",
        value_name = "REPO",
        env = "ASTRO_SHA_RUNTIME_REPOSITORY",
        value_delimiter = ','
    )]
    pub runtime_repository: Vec<String>,
    /// Consider every image, not only the Runtime
    #[arg(long)]
    pub all_images: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Turn Houston's custom-image-SHA feature on: in the platform's values file, or live in the cluster
    Enable(crate::enable::EnableArgs),
    /// Import the Runtime releases catalog with every tag's digest into the ConfigMap Houston reads
    Import(Box<crate::import::ImportArgs>),
    /// Pin the Runtime containers of Airflow Deployments to digests (tag kept for people)
    Pin(crate::pin::PinArgs),
    /// Restore the images a pin replaced
    Unpin(crate::unpin::UnpinArgs),
    /// Show every Runtime container of Airflow Deployments: tag, pinned digest, registry digest, running digest
    Show(crate::show::ShowArgs),
    /// One screen: is the platform pinned? Feature flag, releases ConfigMap, Airflow Deployments by state
    Status(crate::status::StatusArgs),
    /// Resolve image references to digests
    Resolve(crate::resolve::ResolveArgs),
    /// Print the shell completion script for bash, zsh, fish or PowerShell
    #[command(after_long_help = crate::completion::AFTER_LONG_HELP)]
    Completion(crate::completion::CompletionArgs),
    /// Print the version and the git commit it was built from (-o json|yaml for scripts)
    Version,
}

/// How a command that patches workloads asks first and rehearses (pin, unpin).
#[derive(Args, Debug, Clone, Default)]
pub struct WriteArgs {
    /// Don't ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// client: print the plan only; server: send server-side dry-run writes
    #[arg(long, value_enum, num_args = 0..=1, default_value_t = DryRun::None, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,
}

/// `--dry-run[=client|server]`, as kubectl spells it: a bare `--dry-run` means client.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DryRun {
    #[default]
    None,
    /// Compute and print what would change; send nothing
    Client,
    /// Send the writes with dryRun=All: the API server validates and admits them, stores nothing
    Server,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration like 30s or 2m: {e}"))?;
    Duration::try_from(d).map_err(|_| format!("{s:?} is negative: give a duration like 30s or 2m"))
}

#[cfg(test)]
mod tests {
    use super::*;
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
            Command::Completion(crate::completion::CompletionArgs {
                shell: clap_complete::Shell::Zsh
            })
        ));
        assert!(Cli::try_parse_from(["k", "completion", "tcsh"]).is_err());
        assert!(Cli::try_parse_from(["k", "completion"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
        // humantime's spellings that users and docs use, now parsed by jiff's friendly format
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2 mins").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("-5s").is_err());
    }
}
