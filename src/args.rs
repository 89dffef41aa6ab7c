//! The flag groups several commands share, and their conversion into ready objects, once:
//! connection options for the API server, the namespace scope, the registry resolver, the Runtime
//! matcher, the write mode. Names no command: commands flatten these groups into their own `Args`;
//! nothing below `commands` sees a flag.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};

use crate::core::inventory::RuntimeMatcher;
use crate::error::Result;
use crate::kube::client::{ConnectOptions, Namespaces};
pub use crate::output::OutputFormat;
use crate::registry::{Mirror, PlatformSpec, Resolver};

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

impl GlobalArgs {
    /// How to reach the API server.
    pub fn connect(&self) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            request_timeout: self.request_timeout,
        }
    }

    /// `-n` / `-A` as given.
    pub fn namespaces(&self) -> Namespaces {
        Namespaces {
            namespace: self.namespace.clone(),
            all: self.all_namespaces,
        }
    }
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

impl RegistryArgs {
    /// The resolver options these flags ask for.
    pub fn options(&self, list_platforms: bool) -> crate::registry::Options {
        crate::registry::Options {
            ca_files: self.registry_ca.clone(),
            insecure: self.insecure_registry.clone(),
            mirrors: self.registry_mirror.clone(),
            concurrency: usize::from(self.concurrency),
            timeout: self.registry_timeout,
            retries: self.registry_retries,
            platform: self.platform.clone(),
            list_platforms,
            docker_config: true,
        }
    }

    /// The resolver, built once per run.
    pub fn resolver(&self, list_platforms: bool) -> Result<Resolver> {
        Resolver::new(self.options(list_platforms))
    }
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

impl RuntimeArgs {
    pub fn matcher(&self) -> RuntimeMatcher {
        RuntimeMatcher::new(&self.runtime_repository, self.all_images)
    }
}

/// Where the platform (Houston) runs, for every command that reads or writes it.
#[derive(Args, Debug, Clone, Default)]
pub struct PlatformArgs {
    /// Namespace of the platform (where Houston runs). Default: found by Houston's label component=houston
    #[arg(long, value_name = "NAMESPACE")]
    pub platform_namespace: Option<String>,
}

/// `--dry-run[=client|server]`, as kubectl spells it, for every command that writes.
#[derive(Args, Debug, Clone, Default)]
pub struct DryRunArgs {
    /// client: print what would change, send nothing; server: have the API server validate the writes, store nothing
    #[arg(long, value_enum, num_args = 0..=1, default_value_t = DryRun::None, default_missing_value = "client", require_equals = true, value_name = "MODE")]
    pub dry_run: DryRun,
}

/// How a command that patches workloads asks first and rehearses (pin, unpin).
#[derive(Args, Debug, Clone, Default)]
pub struct WriteArgs {
    /// Don't ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub dry: DryRunArgs,
}

/// `--dry-run[=client|server]`: a bare `--dry-run` means client.
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

pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
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
