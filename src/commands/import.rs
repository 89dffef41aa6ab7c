//! `kubectl astro-sha import`: step 2 of Astronomer's digest procedure without hand-editing — the
//! Runtime releases catalog, every selected tag resolved to its digest, stored in the ConfigMap
//! Houston mounts (or a file for GitOps).
//!
//! The command: flags → ready objects (`ImportOptions`, the resolver, the `Source`) → read the
//! source and the ConfigMap → the pure plan (`core::catalog_import`), resolving what it asks for →
//! write with optimistic concurrency (a 409 means someone else wrote in between, so their copy is
//! read again and the same plan re-run against it) → restart what mounts it → report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use serde::Serialize;

use crate::args::{
    parse_duration, DryRun, DryRunArgs, GlobalArgs, OutputFormat, PlatformArgs, RegistryArgs,
};
use crate::core::catalog::{self, Catalog, DigestField, RuntimeVersion, Selection};
use crate::core::catalog_import::{
    self, annotations, catalog_changes, check_resolution, check_versions, desired_configmap,
    existing_catalog, other_data_size, stored_catalog, summary_line, Answers, Change,
    DesiredConfigMap, ImportOptions, ImportPlan, Item, MissingAllowed, Summary,
};
use crate::error::ExitStatus;
use crate::error::{Error, ErrorKind, Result};
use crate::kube::client::Cluster;
use crate::kube::platform::{self, Need};
use crate::output::{self, Table};
use crate::registry::http::{read_limited, send_with_retries, ReadError, RetryPolicy};
use crate::registry::text::{redact_url, redact_urls_in};
use crate::registry::{ImageRef, RegistryError, Resolver};

pub(crate) const DEFAULT_SOURCE: &str = "https://updates.astronomer.io/astronomer-runtime";
pub(crate) use crate::core::names::{
    AIRFLOW2_REPOSITORY, AIRFLOW3_REPOSITORY, DEFAULT_RELEASES_CONFIGMAP as DEFAULT_CONFIGMAP,
};
use crate::core::rollout::Mounting;
use crate::kube::restart;
/// Writes attempted before giving up on a ConfigMap that keeps changing under us.
const MAX_WRITE_ATTEMPTS: usize = 5;

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
kubectl astro-sha import                                   # public catalog -> ConfigMap next to Houston\n  \
kubectl astro-sha import --dry-run=client                  # what would change\n  \
kubectl astro-sha import --channel stable --channel lts --min-version 12.0.0\n  \
kubectl astro-sha import --source releases.json --registry-mirror quay.io=mirror.corp:5000,astrocrpublic.azurecr.io=mirror.corp:5000\n  \
curl -s https://updates.astronomer.io/astronomer-runtime | kubectl astro-sha import --source - --platform-namespace astronomer\n  \
kubectl astro-sha import --output-file astro_runtime_releases.json   # GitOps: write the file, touch no cluster\n\n\
Version order (--min-version): Airflow 2 runtimes compare as MAJOR.MINOR.PATCH numerically, a pre-release \
(13.0.0-alpha1) before its release; Airflow 3 runtimes X.Y-N compare as Airflow X.Y, build N; every Airflow 3 \
runtime comes after every Airflow 2 runtime. So --min-version 12.0.0 keeps Airflow 2 runtimes from 12.0.0 \
and all Airflow 3 ones; --min-version 3.1-1 keeps only Airflow 3 runtimes from 3.1-1."
)]
pub(crate) struct ImportArgs {
    /// The releases catalog: an http(s) URL, a file, or - for stdin (air-gapped platforms)
    #[arg(long, default_value = DEFAULT_SOURCE, value_name = "URL|FILE|-")]
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

/// How a row's CHANGE is coloured.
fn tone(i: &Item) -> output::Tone {
    match i.change {
        Change::Unchanged => output::Tone::Settled,
        Change::New => output::Tone::Action,
        Change::Moved | Change::Missing => output::Tone::Broken,
    }
}

/// Where the catalog came from, for errors and the `source` annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Url(String),
    File(PathBuf),
    Stdin,
}

impl Source {
    pub(crate) fn parse(s: &str) -> Source {
        if s == "-" {
            Source::Stdin
        } else if s.starts_with("http://") || s.starts_with("https://") {
            Source::Url(s.to_string())
        } else {
            Source::File(PathBuf::from(s))
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Url(u) => redact_url(u),
            Source::File(p) => format!("file {}", p.display()),
            Source::Stdin => "stdin".into(),
        }
    }

    /// The annotation value: the URL or path as given, or `stdin`.
    pub(crate) fn annotation(&self) -> String {
        match self {
            Source::Url(u) => redact_url(u),
            Source::File(p) => p.display().to_string(),
            Source::Stdin => "stdin".into(),
        }
    }
}

/// The catalog source is over [`catalog::MAX_SOURCE_BYTES`]: the read stopped there.
fn too_large(what: &str, limit: usize) -> Error {
    Error::new(format!(
        "{what}: the catalog is larger than {} MiB; the read stopped there and nothing was imported",
        limit >> 20
    ))
}

/// Reads at most `limit` bytes (plus one, to tell "exactly the limit" from "more").
fn read_bounded(r: impl std::io::Read, limit: usize) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut text = String::new();
    r.take(limit as u64 + 1).read_to_string(&mut text)?;
    Ok((text.len() <= limit).then_some(text))
}

async fn read_source(src: &Source, args: &ImportArgs, resolver: &Resolver) -> Result<String> {
    let limit = catalog::MAX_SOURCE_BYTES;
    match src {
        Source::Stdin => tokio::task::spawn_blocking(move || read_bounded(std::io::stdin(), limit))
            .await
            .map_err(|e| Error::new(format!("reading the catalog from stdin: {e}")))?
            .map_err(|e| Error::new(format!("reading the catalog from stdin: {e}")))?
            .ok_or_else(|| too_large("stdin", limit)),
        Source::File(p) => {
            let fail = |e: std::io::Error| {
                Error::new(format!("cannot read catalog file {}: {e}", p.display()))
                    .hint("check the --source path; `-` reads the catalog from stdin")
            };
            let path = p.clone();
            tokio::task::spawn_blocking(move || {
                std::fs::File::open(&path).and_then(|f| read_bounded(f, limit))
            })
            .await
            .map_err(|e| Error::new(format!("cannot read catalog file {}: {e}", p.display())))?
            .map_err(fail)?
            .ok_or_else(|| too_large(&format!("catalog file {}", p.display()), limit))
        }
        Source::Url(u) => fetch_url(u, args, resolver).await,
    }
}

/// Downloads the catalog with the registry's client rules (`Resolver::download_client`): the
/// roots of --registry-ca (read once, strictly, by the resolver), proxies as docker chooses them,
/// certificate verification, redirects never from HTTPS to plain HTTP; --source-timeout bounds
/// each attempt.
async fn fetch_url(url: &str, args: &ImportArgs, resolver: &Resolver) -> Result<String> {
    let shown = redact_url(url);
    let client = resolver.download_client(args.source_timeout)?;
    let offline = "on an air-gapped platform, download the catalog elsewhere and pass --source FILE (or - for stdin)";
    // The one retry loop (registry::http): 429/5xx, transport errors and cut bodies are retried
    // with backoff, Retry-After honoured; TLS failures and refused redirects are not.
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| shown.clone());
    let policy = RetryPolicy {
        retries: args.source_retries,
        timeout: args.source_timeout,
    };
    let tries = |attempts: u32| {
        if attempts > 1 {
            format!(" (after {attempts} attempts)")
        } else {
            String::new()
        }
    };
    let (resp, attempts) = match send_with_retries(&host, policy, None, || client.get(url)).await {
        Ok(sent) => sent,
        Err(RegistryError::Timeout { attempts, .. }) => {
            return Err(Error::new(format!(
                "GET {shown}: no answer within {:#}{}",
                jiff::SignedDuration::try_from(args.source_timeout).unwrap_or_default(),
                tries(attempts)
            ))
            .hint(format!("raise --source-timeout; {offline}")))
        }
        Err(e) => {
            return Err(Error::new(format!("GET {shown}: {e}")).hint(format!(
                "check the network path (HTTPS_PROXY is honoured); {offline}"
            )))
        }
    };
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::new(format!(
            "GET {shown}: the server answered HTTP {status}{}",
            tries(attempts)
        ))
        .hint(format!("check the --source URL; {offline}")));
    }
    // Bounded: the read stops at the limit, whatever the server announces or streams.
    let body = read_limited(resp, catalog::MAX_SOURCE_BYTES)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge { limit } => {
                too_large(&shown, limit).hint(format!("check the --source URL; {offline}"))
            }
            ReadError::Transport(e) => Error::new(format!(
                "GET {shown}: reading the body: {}",
                redact_urls_in(&crate::error::error_chain(&e))
            ))
            .hint(format!("retry; {offline}")),
        })?;
    String::from_utf8(body).map_err(|e| {
        Error::new(format!("GET {shown}: the catalog is not UTF-8 text ({e})"))
            .hint(format!("check the --source URL; {offline}"))
    })
}

/// [`catalog_import::payload`], logging when only the compact form fits.
fn payload(cat: &Catalog, other: usize) -> Result<String> {
    let p = catalog_import::payload(cat, other)?;
    if let Some(pretty) = p.compacted_from {
        tracing::info!(
            pretty,
            compact = p.text.len(),
            "storing the catalog compact: pretty-printed it exceeds the ConfigMap limit"
        );
    }
    Ok(p.text)
}

fn now_rfc3339() -> String {
    // RFC 3339 in UTC, whole seconds: 2026-11-30T23:45:12Z
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    source: String,
    target: String,
    dry_run: DryRun,
    written: bool,
    digest_field: String,
    /// `deployment/x`, `statefulset/y`: restarted after the write, because they mount the
    /// ConfigMap with subPath and would keep the old catalog.
    restarted: &'a [String],
    items: &'a [Item],
    summary: Summary,
}

fn render_table(items: &[Item], wide: bool, no_headers: bool, color: bool) -> String {
    let mut headers = vec!["VERSION", "AIRFLOW", "CHANNEL", "IMAGE", "DIGEST", "CHANGE"];
    if wide {
        headers.extend(["PREVIOUS", "REGISTRY DIGEST", "REGISTRY SOURCE"]);
    }
    // The IMAGE names the repository once (the tag is the VERSION), so the default table fits
    // 160 columns for real references; a narrow terminal shortens the image, never a version,
    // a digest or a change.
    let mut t = Table::new(headers).keep_whole(&[
        "VERSION",
        "DIGEST",
        "CHANGE",
        "PREVIOUS",
        "REGISTRY DIGEST",
        "REGISTRY SOURCE",
    ]);
    let d = |o: &Option<String>| match o {
        Some(x) if wide => x.clone(),
        Some(x) => output::short_digest(x),
        None => "-".into(),
    };
    for i in items {
        let mut row = vec![
            i.version.clone(),
            i.airflow.to_string(),
            i.channel.clone().unwrap_or_else(|| "-".into()),
            i.image.clone(),
            d(&i.digest),
            output::paint(&i.label(), tone(i), color),
        ];
        if wide {
            row.push(d(&i.previous));
            row.push(d(&i.registry));
            row.push(i.registry_source.clone().unwrap_or_else(|| "-".into()));
        }
        t.push(row);
    }
    t.render(no_headers)
}

/// What was written where, for the report.
struct Written<'a> {
    source: &'a Source,
    target: &'a str,
    dry_run: DryRun,
    written: bool,
    field: &'a DigestField,
    restarted: &'a [String],
}

fn print_report(g: &GlobalArgs, p: &ImportPlan, w: &Written<'_>) -> Result<()> {
    let rep = Report {
        source: w.source.annotation(),
        target: w.target.to_string(),
        dry_run: w.dry_run,
        written: w.written,
        digest_field: w.field.to_string(),
        restarted: w.restarted,
        items: &p.items,
        summary: p.summary(),
    };
    match output::structured(&rep, g.output)? {
        Some(s) => output::print(&s),
        None => output::print(&render_table(
            &p.items,
            g.output == OutputFormat::Wide,
            g.no_headers,
            output::color_enabled(),
        )),
    }
}

/// Prints every version whose tag did not resolve, with the registry's own words.
fn list_missing(p: &ImportPlan) {
    for i in p.items.iter().filter(|i| i.change == Change::Missing) {
        match &i.error {
            Some(e) => eprintln!("missing: {} ({e})", i.image),
            None => eprintln!("missing: {}", i.image),
        }
    }
}

/// Prints every moved version, and the warning when their recorded digests were kept.
fn warn_moved(p: &ImportPlan) {
    for line in catalog_import::moved_lines(p) {
        eprintln!("{line}");
    }
    if let Some(w) = catalog_import::moved_kept_warning(p) {
        eprintln!("warning: {w}");
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

/// The releases ConfigMap being written.
struct Destination<'a> {
    cluster: &'a Cluster,
    ns: &'a str,
    name: &'a str,
    target: &'a str,
}

/// What storing the plan came to.
struct Stored {
    /// The plan as written: after a conflict, the one re-run against the other writer's copy.
    plan: ImportPlan,
    /// Missing tags imported without a digest (--allow-missing), for the warning.
    allowed: Option<MissingAllowed>,
    /// Whether the ConfigMap was written (not a dry run).
    written: bool,
    /// Whether the catalog's content changed (what a restart depends on).
    changed: bool,
}

/// Creates or replaces the ConfigMap; on a conflict (409) reads it again, merges and retries.
async fn write_configmap(
    run: &mut Run<'_>,
    d: &Destination<'_>,
    mut current: Option<ConfigMap>,
    mut plan: ImportPlan,
    mut allowed: Option<MissingAllowed>,
) -> Result<Stored> {
    let dry_run = run.args.dry.dry_run;
    let mut body = payload(&plan.catalog, other_data_size(current.as_ref()))?;
    let (ns, name, target) = (d.ns, d.name, d.target);
    let mut attempt = 1;
    loop {
        let changed = stored_catalog(current.as_ref()) != Some(body.as_str());
        let ann = annotations(
            &run.source.annotation(),
            &now_rfc3339(),
            &plan.catalog,
            &run.opts.field,
            changed,
        );
        let DesiredConfigMap {
            object: cm,
            label_warning,
        } = desired_configmap(current.as_ref(), ns, name, body, &ann);
        let server_dry_run = dry_run == DryRun::Server;
        let res = match &current {
            None => d.cluster.create_configmap(ns, &cm, server_dry_run).await,
            Some(_) => d.cluster.replace_configmap(ns, &cm, server_dry_run).await,
        };
        match res {
            Ok(_) => {
                if let Some(w) = label_warning {
                    eprintln!("warning: {w}");
                }
                return Ok(Stored {
                    plan,
                    allowed,
                    written: dry_run == DryRun::None,
                    changed,
                });
            }
            Err(e) if e.kind == ErrorKind::Conflict && attempt < MAX_WRITE_ATTEMPTS => {
                attempt += 1;
                tracing::info!(attempt, "ConfigMap changed since it was read (409); reading it again and merging");
                eprintln!("note: {target} changed while this import ran; merging with the new content");
                current = d.cluster.get_configmap(ns, name).await?;
                let existing = existing_catalog(current.as_ref(), ns, name)?;
                plan = run.plan(existing.as_ref()).await?;
                allowed = run.check(&plan, target)?;
                body = payload(&plan.catalog, other_data_size(current.as_ref()))?;
            }
            Err(e) if e.kind == ErrorKind::Conflict => {
                return Err(Error::new(format!(
                    "{target} kept changing while this import ran ({attempt} conflicts); nothing written"
                ))
                .hint("another writer is updating it continuously; re-run when it is done"))
            }
            Err(e) => return Err(e),
        }
    }
}

/// What mounts the ConfigMap, read before any write. Without `--no-restart`, not being able to
/// tell (or to patch what mounts it) stops the run here: writing a catalog Houston never reads
/// would be the silent failure this avoids. With `--no-restart` it only costs the exact command.
async fn restart_targets(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    args: &ImportArgs,
) -> Result<Option<Mounting>> {
    match restart::mounting(cluster, ns, name).await {
        Ok(m) => {
            if !args.no_restart && args.dry.dry_run == DryRun::None {
                restart::check_rights(cluster, ns, &m).await?;
            }
            Ok(Some(m))
        }
        Err(e) if args.no_restart => {
            eprintln!(
                "warning: cannot tell what mounts configmap {ns}/{name} ({}); restart whatever mounts it yourself after this import",
                e.message
            );
            Ok(None)
        }
        Err(e) => Err(e
            .context(format!(
                "finding what mounts configmap {ns}/{name} (to restart it after the import); nothing was written"
            ))
            .hint("grant `list` on deployments and statefulsets in the platform namespace (README, RBAC), or pass --no-restart and restart Houston yourself")),
    }
}

/// After the write: restarts what mounts the ConfigMap when the catalog changed, or says what
/// would be restarted (dry run), or prints the command (`--no-restart`). Returns what restarted.
async fn after_write(
    cluster: &Cluster,
    d: &Destination<'_>,
    args: &ImportArgs,
    mounting: Option<&Mounting>,
    changed: bool,
) -> Result<Vec<String>> {
    let Some(m) = mounting else { return Ok(vec![]) };
    let dry = args.dry.dry_run != DryRun::None;
    if !changed {
        eprintln!(
            "the catalog in {} {}: nothing {} restarted",
            d.target,
            if dry {
                "would not change"
            } else {
                "did not change"
            },
            if dry { "would be" } else { "was" }
        );
        return Ok(vec![]);
    }
    for c in m.cronjob_names() {
        eprintln!(
            "{c} mounts {} too and reads the new catalog on its next run",
            d.target
        );
    }
    let Some(command) = m.command(d.ns) else {
        eprintln!(
            "no Deployment or StatefulSet in namespace {} mounts {}: nothing to restart",
            d.ns, d.name
        );
        return Ok(vec![]);
    };
    let workloads = m.workloads().join(", ");
    if dry {
        eprintln!("dry run: would restart {workloads} (they mount {} with subPath, which a running pod never re-reads)", d.target);
        return Ok(vec![]);
    }
    if args.no_restart {
        eprintln!("not restarted (--no-restart): {workloads} keep serving the old catalog until they restart. Run:\n  {command}");
        return Ok(vec![]);
    }
    let restarted = restart::restart(cluster, d.ns, m, d.target).await?;
    eprintln!(
        "restarted {} (they mount {} with subPath, which a running pod never re-reads)",
        restarted.join(", "),
        d.target
    );
    Ok(restarted)
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
    use crate::kube::platform::choose_platform;
    use k8s_openapi::api::apps::v1::Deployment;
    use pretty_assertions::assert_eq;

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

        assert_eq!(
            choose_platform(std::slice::from_ref(&other)).unwrap().0,
            "astronomer"
        );
        assert!(choose_platform(&[])
            .unwrap_err()
            .hint
            .unwrap()
            .contains("--platform-namespace"));
        let e = choose_platform(&[other, houston("second", serde_json::json!([]))]).unwrap_err();
        assert!(e.message.contains("astronomer, second"), "{}", e.message);
    }

    #[test]
    fn sources() {
        assert_eq!(Source::parse("-"), Source::Stdin);
        assert_eq!(
            Source::parse("https://x/y"),
            Source::Url("https://x/y".into())
        );
        assert_eq!(Source::parse("./c.json"), Source::File("./c.json".into()));
        assert_eq!(
            Source::parse("https://u:secret@mirror.corp/cat.json").annotation(),
            "https://mirror.corp/cat.json"
        );
        // A signed download URL's query is a credential: never in an annotation or an error.
        assert_eq!(
            Source::parse("https://mirror.corp/cat.json?X-Amz-Signature=s3cret&X-Amz-Credential=k")
                .annotation(),
            "https://mirror.corp/cat.json"
        );
    }
}
