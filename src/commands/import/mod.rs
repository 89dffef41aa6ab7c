//! `kubectl astro-sha import`: step 2 of Astronomer's digest procedure without hand-editing — the
//! Runtime releases catalog, every selected tag resolved to its digest, stored in the ConfigMap
//! Houston mounts (or a file for GitOps).
//!
//! The command: flags → ready objects (`ImportOptions`, the resolver, the `Source`) → read the
//! source and the ConfigMap → the pure plan (`core::catalog_import`), resolving what it asks for →
//! write with optimistic concurrency (a 409 means someone else wrote in between, so their copy is
//! read again and the same plan re-run against it) → restart what mounts it → report.

mod report;
mod source;
mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::args::{parse_duration, DryRun, DryRunArgs, GlobalArgs, PlatformArgs, RegistryArgs};
use crate::core::catalog::{self, Catalog, DigestField, RuntimeVersion, Selection};
use crate::core::catalog_import::{
    self, catalog_changes, check_resolution, check_versions, existing_catalog, summary_line,
    Answers, ImportOptions, ImportPlan, MissingAllowed,
};
use crate::error::ExitStatus;
use crate::error::{Error, Result};
use crate::kube::client::Cluster;
use crate::kube::platform::{self, Need};
use crate::output;
use crate::registry::{ImageRef, Resolver};
use report::{list_missing, print_report, warn_moved, Written};
use source::{read_source, Source};
use store::{after_write, restart_targets, write_configmap, Destination, Stored};

pub(crate) const DEFAULT_SOURCE: &str = "https://updates.astronomer.io/astronomer-runtime";
pub(crate) use crate::core::names::{
    AIRFLOW2_REPOSITORY, AIRFLOW3_REPOSITORY, DEFAULT_RELEASES_CONFIGMAP as DEFAULT_CONFIGMAP,
};

const DIGEST_FIELD_HELP: &str = "Where each entry gets its digest: a dotted path relative to the entry, created if absent. \
The default `sha256` writes \"sha256\": \"sha256:<hex>\" beside the entry's metadata. Houston's reader of \
this field is closed source, so the place is this plugin's documented choice, not Astronomer's contract: \
if your Houston version reads another place, name it here (e.g. metadata.sha256). The ConfigMap's \
annotation astro-sha.astronomer.io/digest-field records the choice for later commands.";

#[derive(Args, Debug, Clone)]
#[command(
    long_about = "Download the Astro Runtime releases catalog, resolve every selected Runtime tag to its sha256 digest, \
and store the enriched catalog in the ConfigMap Houston mounts (data key astro_runtime_releases.json in the \
platform namespace), or in a file with --output-file.\n\n\
Airflow 2 runtimes (runtimeVersions) are looked up at quay.io/astronomer/astro-runtime:<version>, Airflow 3 \
runtimes (runtimeVersionsV3) at astrocrpublic.azurecr.io/runtime:<version>; --registry-mirror (or the \
repository flags) points both at an air-gapped mirror.\n\n\
A digest already recorded (in the ConfigMap, or in the source) that differs from what the registry says now \
means the tag was re-pushed: the recorded digest is kept, the version is reported as `moved` and the run exits 1, \
unless --accept-moved. Versions the ConfigMap holds but the source lacks are kept. A tag missing from the \
registry is listed and nothing is written (exit 1) unless --allow-missing.\n\n\
Exit status: 0 done; 1 something moved or is missing; 2 error (nothing written).",
    after_help = "Examples:\n  \
# The public catalog into the ConfigMap next to Houston\n  \
kubectl astro-sha import\n\n  \
# What would change\n  \
kubectl astro-sha import --dry-run=client\n\n  \
kubectl astro-sha import --channel stable --channel lts --min-version 12.0.0\n\n  \
# Air-gapped: a catalog file, and the registry mirror of both repositories\n  \
kubectl astro-sha import --source releases.json \\\n    \
--registry-mirror quay.io=mirror.corp:5000 \\\n    \
--registry-mirror astrocrpublic.azurecr.io=mirror.corp:5000\n\n  \
# The catalog on stdin\n  \
curl -s https://updates.astronomer.io/astronomer-runtime |\n    \
kubectl astro-sha import --source - --platform-namespace astronomer\n\n  \
# GitOps: write the file, touch no cluster\n  \
kubectl astro-sha import --output-file astro_runtime_releases.json\n\n\
Version order (--min-version): Airflow 2 runtimes compare as MAJOR.MINOR.PATCH numerically, a pre-release \
(13.0.0-alpha1) before its release; Airflow 3 runtimes X.Y-N compare as Airflow X.Y, build N; every Airflow 3 \
runtime comes after every Airflow 2 runtime. So --min-version 12.0.0 keeps Airflow 2 runtimes from 12.0.0 \
and all Airflow 3 ones; --min-version 3.1-1 keeps only Airflow 3 runtimes from 3.1-1."
)]
pub(crate) struct ImportArgs {
    /// The releases catalog: an http(s) URL, a file, or - for stdin (air-gapped platforms)
    #[arg(long, default_value = DEFAULT_SOURCE, value_name = "URL|FILE|-")]
    #[arg(value_hint = clap::ValueHint::FilePath)]
    pub(crate) source: String,
    /// Timeout for each request to a source URL
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) source_timeout: Duration,
    /// Retries for a source URL on 429/5xx, timeouts and connection failures (with backoff)
    #[arg(long, default_value_t = 3)]
    pub(crate) source_retries: u32,
    /// Name of the ConfigMap Houston reads (astronomer.houston.runtimeReleasesConfigMapName)
    #[arg(long, default_value = DEFAULT_CONFIGMAP, value_name = "NAME")]
    pub(crate) configmap: String,
    #[command(flatten)]
    pub(crate) platform: PlatformArgs,
    /// Import only this channel (stable, lts, deprecated, alpha, beta, ...); repeatable
    #[arg(long = "channel", value_name = "CHANNEL", value_delimiter = ',')]
    pub(crate) channels: Vec<String>,
    /// Import only versions at or after this one (13.0.0 or 3.1-1; see the order below)
    #[arg(long, value_parser = RuntimeVersion::parse, value_name = "VERSION")]
    pub(crate) min_version: Option<RuntimeVersion>,
    /// Import only these versions (comma-separated, repeatable); each must be in the catalog
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub(crate) versions: Vec<String>,
    /// Also import versions marked yanked (metadata.yanked: true)
    #[arg(long)]
    pub(crate) include_yanked: bool,
    #[arg(long, default_value = "sha256", value_parser = DigestField::parse, value_name = "PATH", long_help = DIGEST_FIELD_HELP, help = "Where each entry gets its digest, as a dotted path (default: sha256 at entry level)")]
    pub(crate) digest_field: DigestField,
    /// Resolve only versions that have no digest yet; recorded digests are kept without asking the registry
    #[arg(long)]
    pub(crate) only_missing: bool,
    /// Write the registry's digest for versions whose tag moved (default: keep the recorded digest, exit 1)
    #[arg(long)]
    pub(crate) accept_moved: bool,
    /// Import even when some tags are missing from the registry (they stay without a digest)
    #[arg(long)]
    pub(crate) allow_missing: bool,
    #[command(flatten)]
    pub(crate) dry: DryRunArgs,
    /// Don't restart what mounts the ConfigMap after a change; print the command that does
    #[arg(long)]
    pub(crate) no_restart: bool,
    /// Don't ask before writing the ConfigMap (required when stdin or stderr is not a terminal)
    #[arg(short = 'y', long)]
    pub(crate) yes: bool,
    /// Write the enriched catalog to FILE (pretty JSON) instead of the ConfigMap; no cluster is contacted
    #[arg(long, value_name = "FILE")]
    pub(crate) output_file: Option<PathBuf>,
    /// Repository of Airflow 2 runtimes (runtimeVersions)
    #[arg(long, default_value = AIRFLOW2_REPOSITORY, value_name = "REPO")]
    pub(crate) airflow2_repository: String,
    /// Repository of Airflow 3 runtimes (runtimeVersionsV3)
    #[arg(long, default_value = AIRFLOW3_REPOSITORY, value_name = "REPO")]
    pub(crate) airflow3_repository: String,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// Plans, resolving whatever the plan asks for, until it asks for nothing more.
async fn plan_resolved(
    resolver: &Resolver,
    source: &Catalog,
    existing: Option<&Catalog>,
    opts: &ImportOptions,
    resolved: &mut Answers,
) -> Result<ImportPlan> {
    loop {
        let p = catalog_import::plan(source, existing, opts, resolved)?;
        if p.needs.is_empty() {
            return Ok(p);
        }
        let pb = output::progress(p.needs.len() as u64, "resolving Runtime tags");
        let results = resolver.resolve_many(&p.needs, &pb).await;
        pb.finish_and_clear();
        for (img, r) in p.needs.iter().zip(results) {
            resolved.insert(img.original().to_string(), r);
        }
        resolver.stats.log("registry requests so far");
    }
}

/// The plan options the flags ask for, checked before any network access.
fn plan_options(args: &ImportArgs) -> Result<ImportOptions> {
    if args.output_file.is_some() && args.dry.dry_run == DryRun::Server {
        return Err(Error::new(
            "--dry-run=server needs the cluster, but --output-file touches none",
        )
        .hint("use --dry-run=client to preview the file's content, or drop --output-file"));
    }
    for (flag, repo) in [
        ("--airflow2-repository", &args.airflow2_repository),
        ("--airflow3-repository", &args.airflow3_repository),
    ] {
        ImageRef::parse(&format!("{repo}:tag")).map_err(|e| {
            Error::new(format!("{flag} {repo:?}: {e}"))
                .hint("write it as registry/path, e.g. quay.io/astronomer/astro-runtime")
        })?;
    }
    Ok(ImportOptions {
        selection: Selection {
            channels: args.channels.clone(),
            min_version: args.min_version.clone(),
            versions: args.versions.iter().cloned().collect(),
            include_yanked: args.include_yanked,
        },
        field: args.digest_field.clone(),
        airflow2_repository: args.airflow2_repository.clone(),
        airflow3_repository: args.airflow3_repository.clone(),
        only_missing: args.only_missing,
        accept_moved: args.accept_moved,
    })
}

/// What one import run works from: the flags, the source catalog, the resolver and its answers.
struct Run<'a> {
    g: &'a GlobalArgs,
    args: &'a ImportArgs,
    opts: ImportOptions,
    resolver: Resolver,
    source: Source,
    src: Catalog,
    resolved: Answers,
}

impl Run<'_> {
    /// Plans against `existing`, resolving what is not resolved yet.
    async fn plan(&mut self, existing: Option<&Catalog>) -> Result<ImportPlan> {
        plan_resolved(
            &self.resolver,
            &self.src,
            existing,
            &self.opts,
            &mut self.resolved,
        )
        .await
    }

    fn report(
        &self,
        p: &ImportPlan,
        target: &str,
        written: bool,
        restarted: &[String],
    ) -> Result<()> {
        print_report(
            self.g,
            p,
            &Written {
                source: &self.source,
                target,
                dry_run: self.args.dry.dry_run,
                written,
                field: &self.opts.field,
                restarted,
            },
        )
    }

    /// `check_resolution`, printing the report and the missing tags when it refuses.
    fn check(&self, p: &ImportPlan, target: &str) -> Result<Option<MissingAllowed>> {
        check_resolution(p, self.args.allow_missing, target).inspect_err(|_| {
            if let Err(e) = self.report(p, target, false, &[]) {
                eprintln!("error: {e}");
            }
            list_missing(p);
        })
    }
}

pub(crate) async fn run(g: &GlobalArgs, args: &ImportArgs) -> Result<ExitStatus> {
    // Everything that can be checked without the network is checked first.
    let opts = plan_options(args)?;
    // Built first: it reads --registry-ca (a bad file is an error), and the source download
    // uses its client rules.
    let resolver = args.registry.resolver(false)?;
    let source = Source::parse(&args.source);
    let text = read_source(&source, args, &resolver).await?;
    let src = Catalog::parse(&text, &source.describe(), true)?;
    for w in check_versions(&src, &opts.selection)? {
        eprintln!("warning: {w}");
    }
    let mut run = Run {
        g,
        args,
        opts,
        resolver,
        source,
        src,
        resolved: HashMap::new(),
    };
    match &args.output_file {
        Some(path) => to_file(&mut run, path).await,
        None => to_configmap(&mut run).await,
    }
}

/// `--output-file`: the enriched catalog to a file; no cluster is contacted.
async fn to_file(run: &mut Run<'_>, path: &Path) -> Result<ExitStatus> {
    let target = format!("file {}", path.display());
    let p = run.plan(None).await?;
    let allowed = run.check(&p, &target)?;
    let content = p.catalog.to_pretty();
    if let Err(e) = catalog::check_size(content.len(), 0) {
        eprintln!(
            "warning: {} (the file is written anyway; a ConfigMap would refuse it)",
            e.message
        );
    }
    let dry = run.args.dry.dry_run == DryRun::Client;
    // A new file is the output asked for; replacing an existing one is a write to the user's file.
    if !dry && path.exists() {
        let question = format!("Replace the existing {target}?");
        if !output::confirm_unshown(&question, run.args.yes)? {
            return Err(Error::declined(format!(
                "Aborted; {target} was not written."
            )));
        }
    }
    if !dry {
        output::write_atomically(path, &content, output::Replacing::Whole)?;
    }
    run.report(&p, &target, !dry, &[])?;
    list_missing(&p);
    if let Some(w) = allowed {
        eprintln!("warning: {w}");
    }
    warn_moved(&p);
    let prefix = if dry {
        "dry run (client): would import "
    } else {
        "imported "
    };
    eprintln!("{}", summary_line(&p, &target, prefix));
    Ok(ExitStatus::not_ok_if(p.moved_kept() > 0))
}

/// The catalog into the releases ConfigMap in the platform namespace.
async fn to_configmap(run: &mut Run<'_>) -> Result<ExitStatus> {
    let (g, args) = (run.g, run.args);
    let cluster = Cluster::connect(&g.connect()).await?;
    let ns_flag = args
        .platform
        .platform_namespace
        .as_deref()
        .or(g.namespace.as_deref());
    let platform = platform::discover(&cluster, ns_flag, Need::Namespace).await?;
    let ns = platform.namespace.as_str();
    let name = args.configmap.as_str();
    let target = format!("configmap {ns}/{name}");

    let current = cluster.get_configmap(ns, name).await?;
    if let Some(keys) = current.as_ref().and_then(|c| c.data.as_ref()) {
        if !keys.contains_key(catalog::DATA_KEY) && !keys.is_empty() {
            let list: Vec<&str> = keys.keys().map(String::as_str).collect();
            eprintln!(
                "warning: {target} has keys [{}] but not {}, the key Houston's chart mounts (subPath); adding it, leaving the others as they are",
                list.join(", "),
                catalog::DATA_KEY
            );
        }
    }
    let existing = existing_catalog(current.as_ref(), ns, name)?;
    let p = run.plan(existing.as_ref()).await?;
    let allowed = run.check(&p, &target)?;
    // Who must restart after a change (subPath mounts), known and allowed before any write.
    let mounting = restart_targets(&cluster, ns, name, args).await?;
    let dest = Destination {
        cluster: &cluster,
        ns,
        name,
        target: &target,
    };
    let stored = if args.dry.dry_run != DryRun::Client {
        if args.dry.dry_run == DryRun::None {
            confirm_write(&p, &target, args.yes)?;
        }
        write_configmap(run, &dest, current, p, allowed).await?
    } else {
        Stored {
            changed: catalog_changes(current.as_ref(), &p)?,
            plan: p,
            allowed,
            written: false,
        }
    };
    let restarted = after_write(&cluster, &dest, args, mounting.as_ref(), stored.changed).await?;

    let p = &stored.plan;
    run.report(p, &target, stored.written, &restarted)?;
    list_missing(p);
    if let Some(w) = stored.allowed {
        eprintln!("warning: {w}");
    }
    warn_moved(p);
    warn_unmounted(&platform, ns, name);
    let prefix = match args.dry.dry_run {
        DryRun::None => "imported ",
        DryRun::Client => "dry run (client): would import ",
        DryRun::Server => "dry run (server, accepted by the API server): would import ",
    };
    eprintln!("{}", summary_line(p, &target, prefix));
    Ok(ExitStatus::not_ok_if(p.moved_kept() > 0))
}

/// The one confirmation (see `output::confirm`) before the ConfigMap is written.
fn confirm_write(p: &ImportPlan, target: &str, yes: bool) -> Result<()> {
    let question = format!(
        "Write the catalog ({}) to {target}?",
        output::count(p.catalog.len(), "Runtime version", "Runtime versions")
    );
    if output::confirm_unshown(&question, yes)? {
        Ok(())
    } else {
        Err(Error::declined(format!(
            "Aborted; {target} was not written."
        )))
    }
}

/// Says when Houston does not mount the ConfigMap (or why that could not be checked).
fn warn_unmounted(platform: &platform::Found, ns: &str, name: &str) {
    match (&platform.houston, &platform.note) {
        (Some(h), _) if !platform::mount_of(h, name).mounted() => {
            let hname = h.metadata.name.as_deref().unwrap_or("houston");
            eprintln!("warning: Houston (deployment {ns}/{hname}) does not mount configmap {name}, so it does not use these digests yet");
            eprintln!("  hint: run `kubectl astro-sha enable --values <platform values.yaml>` (sets astronomer.houston.runtimeReleasesConfigMapName={name} and the feature flag) and upgrade the platform, or `kubectl astro-sha enable --in-cluster`");
        }
        (None, Some(note)) => eprintln!("note: {note}"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;

    fn mounts_configmap(d: &Deployment, name: &str) -> bool {
        platform::mount_of(d, name).mounted()
    }

    fn houston(ns: &str, volumes: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "astronomer-houston", "namespace": ns},
            "spec": {"selector": {}, "template": {"spec": {"containers": [], "volumes": volumes}}}
        }))
        .unwrap()
    }

    #[test]
    fn houston_wiring_and_discovery() {
        let plain = houston(
            "astronomer",
            serde_json::json!([{"name": "v", "configMap": {"name": "astro-runtime-base-images"}}]),
        );
        let projected = houston(
            "astronomer",
            serde_json::json!([{"name": "v", "projected": {"sources": [{"configMap": {"name": "astro-runtime-base-images"}}]}}]),
        );
        let other = houston(
            "astronomer",
            serde_json::json!([{"name": "v", "configMap": {"name": "astronomer-houston-config"}}]),
        );
        assert!(mounts_configmap(&plain, DEFAULT_CONFIGMAP));
        assert!(mounts_configmap(&projected, DEFAULT_CONFIGMAP));
        assert!(!mounts_configmap(&other, DEFAULT_CONFIGMAP));
        assert!(!mounts_configmap(
            &houston("a", serde_json::json!(null)),
            DEFAULT_CONFIGMAP
        ));

        // The choice of Houston is core::platform's (one_choice_for_every_command).
    }
}
