//! `kubectl astro-sha import`: step 2 of Astronomer's digest procedure without hand-editing — the
//! Runtime releases catalog, every selected tag resolved to its digest, stored in the ConfigMap
//! Houston mounts (or a file for GitOps).
//!
//! Plan/apply split: `plan()` is pure (source catalog + what the ConfigMap holds + registry
//! answers in, the catalog to write + one row per version out). `run()` reads the source and the
//! ConfigMap, resolves what the plan asks for, and writes with optimistic concurrency: a 409 means
//! someone else wrote in between, so their copy is read again and the same plan re-run against it.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use serde::Serialize;

use crate::args::{
    parse_duration, DryRun, DryRunArgs, GlobalArgs, OutputFormat, PlatformArgs, RegistryArgs,
};
use crate::core::catalog::{self, Catalog, DigestField, RuntimeVersion, Section, Selection, Skip};
use crate::error::ExitStatus;
use crate::error::{Error, ErrorKind, Result};
use crate::kube::client::Cluster;
use crate::kube::platform::{self, Need};
use crate::output::{self, Table};
use crate::registry::http::{read_limited, send_with_retries, ReadError, RetryPolicy};
use crate::registry::text::{redact_url, redact_urls_in};
use crate::registry::{ImageRef, RegistryError, Resolved, Resolver};

pub(crate) const DEFAULT_SOURCE: &str = "https://updates.astronomer.io/astronomer-runtime";
pub(crate) use crate::core::names::{
    AIRFLOW2_REPOSITORY, AIRFLOW3_REPOSITORY, DEFAULT_RELEASES_CONFIGMAP as DEFAULT_CONFIGMAP,
};
/// Houston's Deployment carries this label in every platform chart version.
use crate::core::names::{
    CATALOG_CHANGED_AT_ANNOTATION, DIGESTS_ANNOTATION, DIGEST_FIELD_ANNOTATION,
    IMPORTED_AT_ANNOTATION, MANAGED_BY, SOURCE_ANNOTATION, VERSIONS_ANNOTATION,
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

/// What happened to one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Change {
    New,
    Unchanged,
    /// The recorded digest differs from the registry's: the tag was re-pushed.
    Moved,
    Missing,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Item {
    pub(crate) version: String,
    pub(crate) airflow: u8,
    pub(crate) channel: Option<String>,
    pub(crate) image: String,
    /// What the catalog holds for this version after the run.
    pub(crate) digest: Option<String>,
    /// What was recorded before (ConfigMap, else source).
    pub(crate) previous: Option<String>,
    /// What the registry says now (not looked up with --only-missing for recorded versions).
    pub(crate) registry: Option<String>,
    /// The reference actually looked up, when a mirror applied (`registrySource`, as in `show`:
    /// an image reference, not a time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) registry_source: Option<String>,
    pub(crate) change: Change,
    /// For `moved`: whether the registry's digest was written (--accept-moved).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// The full registry error, for the stderr listing.
    #[serde(skip)]
    pub(crate) error: Option<RegistryError>,
}

impl Item {
    pub(crate) fn label(&self) -> String {
        match self.change {
            Change::New => "new".into(),
            Change::Unchanged => "unchanged".into(),
            Change::Moved if self.accepted => "moved: accepted".into(),
            Change::Moved => "moved".into(),
            Change::Missing => format!(
                "missing: {}",
                self.reason.as_deref().unwrap_or("not resolved")
            ),
        }
    }

    /// How the row's label is coloured.
    pub(crate) fn tone(&self) -> output::Tone {
        match self.change {
            Change::Unchanged => output::Tone::Settled,
            Change::New => output::Tone::Action,
            Change::Moved | Change::Missing => output::Tone::Broken,
        }
    }

    /// A registry failure that is not "this tag is not there" (auth, TLS, timeout...): the run
    /// cannot tell whether the tag exists, so it never writes, even with --allow-missing.
    pub(crate) fn fatal(&self) -> bool {
        matches!(&self.error, Some(e) if !matches!(e, RegistryError::NotFound { .. } | RegistryError::NoPlatform { .. } | RegistryError::Invalid(_)))
    }
}

/// Everything `plan` needs besides the documents.
#[derive(Clone, Debug)]
pub(crate) struct PlanOptions {
    pub(crate) selection: Selection,
    pub(crate) field: DigestField,
    pub(crate) airflow2_repository: String,
    pub(crate) airflow3_repository: String,
    pub(crate) only_missing: bool,
    pub(crate) accept_moved: bool,
}

impl PlanOptions {
    fn repository(&self, s: Section) -> &str {
        match s {
            Section::Airflow2 => &self.airflow2_repository,
            Section::Airflow3 => &self.airflow3_repository,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) catalog: Catalog,
    pub(crate) items: Vec<Item>,
    /// Lookups this plan needs and `resolved` did not have: resolve them and plan again.
    pub(crate) needs: Vec<ImageRef>,
    /// Source versions left out by the filters.
    pub(crate) filtered: usize,
    /// Versions only the ConfigMap holds (kept as they are).
    pub(crate) kept: usize,
}

impl Plan {
    pub(crate) fn count(&self, c: Change) -> usize {
        self.items.iter().filter(|i| i.change == c).count()
    }
    pub(crate) fn moved_kept(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.change == Change::Moved && !i.accepted)
            .count()
    }
}

/// Pure: decides every selected version's digest and builds the catalog to write.
/// `existing` is the ConfigMap's catalog (or `None`); `resolved` maps an image reference
/// (`repo:tag`, as in `Item::image`) to the registry's answer.
pub(crate) fn plan(
    source: &Catalog,
    existing: Option<&Catalog>,
    opts: &PlanOptions,
    resolved: &HashMap<String, std::result::Result<Resolved, RegistryError>>,
) -> Result<Plan> {
    let mut items = vec![];
    let mut needs = vec![];
    let mut ours = HashMap::new();
    let mut filtered = 0;
    let field = &opts.field;
    for (section, tag, entry) in source.entries() {
        if opts.selection.check(section, tag, entry).is_some() {
            filtered += 1;
            continue;
        }
        let at = |what: &str, e: String| {
            Error::new(format!("{what}: {}.{tag:?}: {e}", section.key())).hint(format!(
                "fix that field, or record digests elsewhere with --digest-field (now {field})"
            ))
        };
        let theirs = existing.and_then(|c| c.entry(section, tag));
        let previous = match theirs.map(|e| field.get(e)).transpose() {
            Ok(Some(Some(d))) => Some(d),
            Ok(_) => field
                .get(entry)
                .map_err(|e| at("in the source catalog", e))?,
            Err(e) => return Err(at("in the ConfigMap's catalog", e)),
        };
        let image = format!("{}:{tag}", opts.repository(section));
        let mut item = Item {
            version: tag.to_string(),
            airflow: section.airflow(),
            channel: catalog::channel(entry).map(str::to_string),
            image: image.clone(),
            digest: previous.clone(),
            previous: previous.clone(),
            registry: None,
            registry_source: None,
            change: Change::Unchanged,
            accepted: false,
            reason: None,
            error: None,
        };
        if !(opts.only_missing && previous.is_some()) {
            if let Some(need) = judge(&mut item, &image, previous.as_deref(), opts, resolved) {
                needs.push(need);
            }
        }
        let mut e = entry.clone();
        if let Some(d) = &item.digest {
            field
                .set(&mut e, d)
                .map_err(|err| at("in the source catalog", err))?;
        }
        ours.insert((section, tag.to_string()), e);
        items.push(item);
    }
    let kept = existing
        .map(|c| {
            c.entries()
                .filter(|(s, t, _)| source.entry(*s, t).is_none())
                .count()
        })
        .unwrap_or(0);
    Ok(Plan {
        catalog: catalog::merge(source, &ours, existing),
        items,
        needs,
        filtered,
        kept,
    })
}

/// The registry's verdict on one catalog version: new, unchanged, moved (accepted or kept) or
/// missing. Returns the reference still to resolve when there is no answer for it yet.
fn judge(
    item: &mut Item,
    image: &str,
    previous: Option<&str>,
    opts: &PlanOptions,
    resolved: &HashMap<String, std::result::Result<Resolved, RegistryError>>,
) -> Option<ImageRef> {
    let mut need = None;
    match ImageRef::parse(image) {
        Err(e) => {
            item.change = Change::Missing;
            item.reason = Some("invalid tag".into());
            item.error = Some(RegistryError::Invalid(e));
        }
        Ok(r) => match resolved.get(r.original()) {
            None => {
                need = Some(r);
                item.change = Change::Missing;
            }
            Some(Ok(res)) => {
                let now = res.pin_digest().to_string();
                item.registry = Some(now.clone());
                item.registry_source = res.mirrored.then(|| res.source.clone());
                match previous {
                    None => {
                        item.change = Change::New;
                        item.digest = Some(now);
                    }
                    Some(p) if p == now => item.change = Change::Unchanged,
                    Some(_) => {
                        item.change = Change::Moved;
                        if opts.accept_moved {
                            item.accepted = true;
                            item.digest = Some(now);
                        }
                    }
                }
            }
            Some(Err(e)) => {
                item.change = Change::Missing;
                item.reason = Some(e.short());
                item.error = Some(e.clone());
            }
        },
    }
    need
}

/// Checks --versions against the catalog before anything is fetched or written.
pub(crate) fn check_versions(source: &Catalog, sel: &Selection) -> Result<Vec<String>> {
    let mut warnings = vec![];
    let present: BTreeSet<&str> = source.entries().map(|(_, t, _)| t).collect();
    let unknown: Vec<&str> = sel
        .versions
        .iter()
        .map(String::as_str)
        .filter(|v| !present.contains(v))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::new(format!(
            "--versions: {} not in the catalog",
            unknown.join(", ")
        ))
        .hint("version keys are exact, e.g. 13.9.0 (Airflow 2) or 3.1-2 (Airflow 3); list them with `jq '.runtimeVersions, .runtimeVersionsV3 | keys'` on the catalog"));
    }
    let mut selected = 0;
    let mut unparsable = vec![];
    for (s, t, e) in source.entries() {
        match sel.check(s, t, e) {
            None => selected += 1,
            Some(Skip::UnparsableVersion) => unparsable.push(t.to_string()),
            Some(why) if sel.versions.contains(t) => warnings.push(format!(
                "--versions names {t}, but it is left out: {}",
                match why {
                    Skip::Yanked => "it is yanked (add --include-yanked)",
                    Skip::Channel => "its channel is not among --channel",
                    Skip::OlderThanMin => "it is older than --min-version",
                    _ => "filtered",
                }
            )),
            Some(_) => {}
        }
    }
    if !unparsable.is_empty() {
        warnings.push(format!(
            "left out because --min-version cannot order them: {}",
            unparsable.join(", ")
        ));
    }
    if selected == 0 {
        return Err(
            Error::new("no version of the catalog matches the filters; nothing to import")
                .hint("loosen --channel/--min-version/--versions, or add --include-yanked"),
        );
    }
    Ok(warnings)
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

async fn read_source(src: &Source, args: &ImportArgs) -> Result<String> {
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
        Source::Url(u) => fetch_url(u, args).await,
    }
}

async fn fetch_url(url: &str, args: &ImportArgs) -> Result<String> {
    let shown = redact_url(url);
    let mut builder = crate::registry::proxy::with_proxies(
        reqwest::Client::builder()
            .user_agent(crate::core::names::USER_AGENT)
            .connect_timeout(args.source_timeout)
            .timeout(args.source_timeout)
            .redirect(reqwest::redirect::Policy::limited(5)),
    )?;
    for path in &args.registry.registry_ca {
        if let Ok(pem) = std::fs::read(path) {
            if let Ok(certs) = reqwest::Certificate::from_pem_bundle(&pem) {
                for c in certs {
                    builder = builder.add_root_certificate(c);
                }
            }
        }
    }
    let client = builder
        .build()
        .map_err(|e| Error::new(format!("cannot build the HTTP client: {e}")))?;
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

/// The catalog a ConfigMap holds, `None` when it has none yet. Malformed content stops the run:
/// overwriting it would lose whatever the person who wrote it meant.
fn existing_catalog(cm: Option<&ConfigMap>, ns: &str, name: &str) -> Result<Option<Catalog>> {
    let Some(text) = cm
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get(catalog::DATA_KEY))
    else {
        return Ok(None);
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    Catalog::parse(
        text,
        &format!("configmap {ns}/{name} key {}", catalog::DATA_KEY),
        false,
    )
    .map(Some)
    .map_err(|e| {
        Error::new(format!("{}; nothing was written", e.message)).hint(format!(
            "fix it (`kubectl -n {ns} edit configmap {name}`) or remove the key to import from scratch"
        ))
    })
}

/// Size of the ConfigMap's data other than our key (the limit is for the whole object's data).
fn other_data_size(cm: Option<&ConfigMap>) -> usize {
    let Some(cm) = cm else { return 0 };
    let data: usize = cm
        .data
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != catalog::DATA_KEY)
        .map(|(_, v)| v.len())
        .sum();
    let binary: usize = cm
        .binary_data
        .iter()
        .flatten()
        .map(|(_, v)| v.0.len())
        .sum();
    data + binary
}

/// The payload to store: pretty when it fits, compact when only that fits, else refused.
pub(crate) fn payload(cat: &Catalog, other: usize) -> Result<String> {
    let pretty = cat.to_pretty();
    if pretty.len() + other <= catalog::CONFIGMAP_LIMIT {
        return Ok(pretty);
    }
    let compact = cat.to_compact();
    catalog::check_size(compact.len(), other)?;
    tracing::info!(
        pretty = pretty.len(),
        compact = compact.len(),
        "storing the catalog compact: pretty-printed it exceeds the ConfigMap limit"
    );
    Ok(compact)
}

fn count_digests(cat: &Catalog, field: &DigestField) -> usize {
    cat.entries()
        .filter(|(_, _, e)| matches!(field.get(e), Ok(Some(_))))
        .count()
}

/// The object to send: the one read (for its resourceVersion, other keys, labels and
/// annotations) with our key, label and annotations set; or a new one.
fn desired_configmap(
    current: Option<&ConfigMap>,
    ns: &str,
    name: &str,
    payload: String,
    annotations: &[(String, String)],
) -> (ConfigMap, Option<String>) {
    let mut cm = current.cloned().unwrap_or_else(|| ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            ..Default::default()
        },
        ..Default::default()
    });
    cm.metadata.managed_fields = None;
    let mut warning = None;
    let labels = cm.metadata.labels.get_or_insert_with(Default::default);
    match labels.get("app.kubernetes.io/managed-by") {
        Some(owner) if owner != MANAGED_BY => {
            warning = Some(format!(
                "ConfigMap {ns}/{name} is labelled app.kubernetes.io/managed-by={owner}; its label is left alone, and {owner} may overwrite this import on its next sync"
            ));
        }
        _ => {
            labels.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
        }
    }
    let ann = cm.metadata.annotations.get_or_insert_with(Default::default);
    for (k, v) in annotations {
        ann.insert(k.clone(), v.clone());
    }
    cm.data
        .get_or_insert_with(Default::default)
        .insert(catalog::DATA_KEY.to_string(), payload);
    (cm, warning)
}

fn now_rfc3339() -> String {
    // RFC 3339 in UTC, whole seconds: 2026-11-30T23:45:12Z
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

fn annotations(source: &Source, cat: &Catalog, field: &DigestField) -> Vec<(String, String)> {
    vec![
        (SOURCE_ANNOTATION.into(), source.annotation()),
        (IMPORTED_AT_ANNOTATION.into(), now_rfc3339()),
        (VERSIONS_ANNOTATION.into(), cat.len().to_string()),
        (
            DIGESTS_ANNOTATION.into(),
            count_digests(cat, field).to_string(),
        ),
        (DIGEST_FIELD_ANNOTATION.into(), field.to_string()),
    ]
}

/// Plans, resolving whatever the plan asks for, until it asks for nothing more.
async fn plan_resolved(
    resolver: &Resolver,
    source: &Catalog,
    existing: Option<&Catalog>,
    opts: &PlanOptions,
    resolved: &mut HashMap<String, std::result::Result<Resolved, RegistryError>>,
) -> Result<Plan> {
    loop {
        let p = plan(source, existing, opts, resolved)?;
        if p.needs.is_empty() {
            return Ok(p);
        }
        let pb = output::progress(p.needs.len() as u64, "resolving Runtime tags");
        let results = resolver.resolve_many(&p.needs, &pb).await;
        pb.finish_and_clear();
        for (img, r) in p.needs.iter().zip(results) {
            resolved.insert(img.original().to_string(), r);
        }
        tracing::info!(
            manifests = resolver
                .stats
                .manifest_requests
                .load(std::sync::atomic::Ordering::Relaxed),
            tokens = resolver
                .stats
                .token_requests
                .load(std::sync::atomic::Ordering::Relaxed),
            "registry requests so far"
        );
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    versions: usize,
    new: usize,
    unchanged: usize,
    moved: usize,
    missing: usize,
    filtered: usize,
    kept: usize,
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
            output::paint(&i.label(), i.tone(), color),
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

fn print_report(g: &GlobalArgs, p: &Plan, w: &Written<'_>) -> Result<()> {
    let rep = Report {
        source: w.source.annotation(),
        target: w.target.to_string(),
        dry_run: w.dry_run,
        written: w.written,
        digest_field: w.field.to_string(),
        restarted: w.restarted,
        items: &p.items,
        summary: Summary {
            versions: p.items.len(),
            new: p.count(Change::New),
            unchanged: p.count(Change::Unchanged),
            moved: p.count(Change::Moved),
            missing: p.count(Change::Missing),
            filtered: p.filtered,
            kept: p.kept,
        },
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

fn summary_line(p: &Plan, target: &str, prefix: &str) -> String {
    let mut extra = vec![];
    if p.filtered > 0 {
        extra.push(format!("{} filtered out", p.filtered));
    }
    if p.kept > 0 {
        extra.push(format!("{} kept that the source lacks", p.kept));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" ({})", extra.join(", "))
    };
    let moved = p.count(Change::Moved);
    let accepted = if moved > 0 && p.moved_kept() == 0 {
        " (accepted)"
    } else {
        ""
    };
    format!(
        "{prefix}{}: {} new, {} unchanged, {moved} moved{accepted}, {} missing -> {target}{extra}",
        output::count(p.items.len(), "version", "versions"),
        p.count(Change::New),
        p.count(Change::Unchanged),
        p.count(Change::Missing),
    )
}

/// Prints every version whose tag did not resolve, with the registry's own words.
fn list_missing(p: &Plan) {
    for i in p.items.iter().filter(|i| i.change == Change::Missing) {
        match &i.error {
            Some(e) => eprintln!("missing: {} ({e})", i.image),
            None => eprintln!("missing: {}", i.image),
        }
    }
}

/// Whether the plan may be written: `Err` when nothing may be (missing tags without
/// --allow-missing exit 1; registry failures that are not "no such tag" exit 2, whatever the
/// flags); `Ok(Some(warning))` when missing tags are allowed.
fn check_resolution(p: &Plan, allow_missing: bool, target: &str) -> Result<Option<String>> {
    let missing: Vec<&Item> = p
        .items
        .iter()
        .filter(|i| i.change == Change::Missing)
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    let fatal: Vec<&&Item> = missing.iter().filter(|i| i.fatal()).collect();
    if let Some(first) = fatal.first() {
        let mut err = Error::new(format!(
            "{} of {} tags could not be looked up (not a missing tag: {}); nothing written to {target}",
            fatal.len(),
            p.items.len(),
            first.reason.as_deref().unwrap_or("error")
        ));
        if let Some(h) = first.error.as_ref().and_then(RegistryError::hint) {
            err = err.hint(h);
        }
        return Err(err);
    }
    if allow_missing {
        return Ok(Some(format!(
            "{} from the registry; imported without a digest (--allow-missing)",
            match missing.len() {
                1 => "1 tag is missing".to_string(),
                n => format!("{n} tags are missing"),
            }
        )));
    }
    Err(Error::not_ok(format!(
        "{} of {} {} from the registry (listed above); nothing written to {target}",
        missing.len(),
        output::count(p.items.len(), "tag", "tags"),
        if missing.len() == 1 { "is missing" } else { "are missing" }
    ))
    .hint("mirror those tags, leave them out with --channel/--min-version/--versions, or pass --allow-missing to import the rest without their digests"))
}

fn warn_moved(p: &Plan) {
    let moved: Vec<&Item> = p
        .items
        .iter()
        .filter(|i| i.change == Change::Moved)
        .collect();
    for i in &moved {
        eprintln!(
            "moved: {} was {}, the registry now says {}{}",
            i.image,
            i.previous.as_deref().unwrap_or("-"),
            i.registry.as_deref().unwrap_or("-"),
            if i.accepted {
                " (accepted)"
            } else {
                " (kept the recorded digest)"
            }
        );
    }
    if p.moved_kept() > 0 {
        eprintln!("warning: {} tags were re-pushed since their digest was recorded; the recorded digests are kept. Check the new images, then re-run with --accept-moved to take them", p.moved_kept());
    }
}

/// The plan options the flags ask for, checked before any network access.
fn plan_options(args: &ImportArgs) -> Result<PlanOptions> {
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
    Ok(PlanOptions {
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
    opts: PlanOptions,
    resolver: Resolver,
    source: Source,
    src: Catalog,
    resolved: HashMap<String, std::result::Result<Resolved, RegistryError>>,
}

impl Run<'_> {
    /// Plans against `existing`, resolving what is not resolved yet.
    async fn plan(&mut self, existing: Option<&Catalog>) -> Result<Plan> {
        plan_resolved(
            &self.resolver,
            &self.src,
            existing,
            &self.opts,
            &mut self.resolved,
        )
        .await
    }

    fn report(&self, p: &Plan, target: &str, written: bool, restarted: &[String]) -> Result<()> {
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
    fn check(&self, p: &Plan, target: &str) -> Result<Option<String>> {
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
    // Built first: it checks --registry-ca, which the source download trusts too.
    let resolver = args.registry.resolver(false)?;
    let source = Source::parse(&args.source);
    let text = read_source(&source, args).await?;
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
    let (p, allowed, written, changed) = if args.dry.dry_run != DryRun::Client {
        if args.dry.dry_run == DryRun::None {
            confirm_write(&p, &target, args.yes)?;
        }
        write_configmap(run, &dest, current, p, allowed).await?
    } else {
        let changed = catalog_changes(current.as_ref(), &p)?;
        (p, allowed, false, changed)
    };
    let restarted = after_write(&cluster, &dest, args, mounting.as_ref(), changed).await?;

    run.report(&p, &target, written, &restarted)?;
    list_missing(&p);
    if let Some(w) = allowed {
        eprintln!("warning: {w}");
    }
    warn_moved(&p);
    warn_unmounted(&platform, ns, name);
    let prefix = match args.dry.dry_run {
        DryRun::None => "imported ",
        DryRun::Client => "dry run (client): would import ",
        DryRun::Server => "dry run (server, accepted by the API server): would import ",
    };
    eprintln!("{}", summary_line(&p, &target, prefix));
    Ok(ExitStatus::not_ok_if(p.moved_kept() > 0))
}

/// The one confirmation (see `output::confirm`) before the ConfigMap is written.
fn confirm_write(p: &Plan, target: &str, yes: bool) -> Result<()> {
    let question = format!(
        "Write the catalog ({} Runtime version(s)) to {target}?",
        p.catalog.len()
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

/// Creates or replaces the ConfigMap; on a conflict (409) reads it again, merges and retries.
/// Returns the plan that was written, its allowance warning, whether it was stored, and whether
/// the catalog's content changed (what a restart depends on).
async fn write_configmap(
    run: &mut Run<'_>,
    d: &Destination<'_>,
    mut current: Option<ConfigMap>,
    mut p: Plan,
    mut allowed: Option<String>,
) -> Result<(Plan, Option<String>, bool, bool)> {
    let dry_run = run.args.dry.dry_run;
    let mut body = payload(&p.catalog, other_data_size(current.as_ref()))?;
    let (ns, name, target) = (d.ns, d.name, d.target);
    let mut attempt = 1;
    loop {
        let changed = stored_catalog(current.as_ref()) != Some(body.as_str());
        let mut ann = annotations(&run.source, &p.catalog, &run.opts.field);
        if changed {
            ann.push((CATALOG_CHANGED_AT_ANNOTATION.into(), now_rfc3339()));
        }
        let (cm, label_warning) = desired_configmap(current.as_ref(), ns, name, body, &ann);
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
                return Ok((p, allowed, dry_run == DryRun::None, changed));
            }
            Err(e) if e.kind == ErrorKind::Conflict && attempt < MAX_WRITE_ATTEMPTS => {
                attempt += 1;
                tracing::info!(attempt, "ConfigMap changed since it was read (409); reading it again and merging");
                eprintln!("note: {target} changed while this import ran; merging with the new content");
                current = d.cluster.get_configmap(ns, name).await?;
                let existing = existing_catalog(current.as_ref(), ns, name)?;
                p = run.plan(existing.as_ref()).await?;
                allowed = run.check(&p, target)?;
                body = payload(&p.catalog, other_data_size(current.as_ref()))?;
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

/// The catalog text a ConfigMap holds now.
fn stored_catalog(cm: Option<&ConfigMap>) -> Option<&str> {
    cm.and_then(|c| c.data.as_ref())
        .and_then(|d| d.get(catalog::DATA_KEY))
        .map(String::as_str)
}

/// Whether writing this plan would change the stored catalog (for a client-side dry run).
fn catalog_changes(current: Option<&ConfigMap>, p: &Plan) -> Result<bool> {
    let body = payload(&p.catalog, other_data_size(current))?;
    Ok(stored_catalog(current) != Some(body.as_str()))
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
    use k8s_openapi::api::apps::v1::Deployment;

    fn mounts_configmap(d: &Deployment, name: &str) -> bool {
        platform::mount_of(d, name).mounted()
    }
    use pretty_assertions::assert_eq;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn found(digest: &str) -> std::result::Result<Resolved, RegistryError> {
        Ok(Resolved {
            source: String::new(),
            mirrored: false,
            digest: digest.into(),
            media_type: String::new(),
            platforms: vec![],
            platform_digest: None,
        })
    }

    fn not_found() -> std::result::Result<Resolved, RegistryError> {
        Err(RegistryError::NotFound {
            host: "quay.io".into(),
            repository: "astronomer/astro-runtime".into(),
            reference: "x".into(),
        })
    }

    fn opts() -> PlanOptions {
        PlanOptions {
            selection: Selection::default(),
            field: DigestField::default(),
            airflow2_repository: AIRFLOW2_REPOSITORY.into(),
            airflow3_repository: AIRFLOW3_REPOSITORY.into(),
            only_missing: false,
            accept_moved: false,
        }
    }

    const SOURCE: &str = r#"{
  "version": "1.0",
  "runtimeVersions": {
    "13.1.0": {"metadata": {"channel": "stable"}, "x-extra": {"k": [1, 2]}},
    "13.2.0": {"metadata": {"channel": "stable"}},
    "13.3.0": {"metadata": {"channel": "stable"}},
    "13.4.0": {"metadata": {"channel": "stable"}}
  },
  "runtimeVersionsV3": {
    "3.1-2": {"metadata": {"channel": "stable"}}
  }
}"#;

    fn a2(tag: &str) -> String {
        format!("{AIRFLOW2_REPOSITORY}:{tag}")
    }

    fn src() -> Catalog {
        Catalog::parse(SOURCE, "test", true).unwrap()
    }

    fn existing() -> Catalog {
        Catalog::parse(
            &format!(
                r#"{{"runtimeVersions": {{
                    "13.1.0": {{"metadata": {{"channel": "stable"}}, "sha256": "{a}"}},
                    "13.2.0": {{"metadata": {{"channel": "stable"}}, "sha256": "{b}"}},
                    "9.9.9": {{"metadata": {{"channel": "hand-added"}}}}
                }}}}"#,
                a = d('a'),
                b = d('b')
            ),
            "cm",
            false,
        )
        .unwrap()
    }

    fn all_found() -> HashMap<String, std::result::Result<Resolved, RegistryError>> {
        HashMap::from([
            (a2("13.1.0"), found(&d('a'))),
            (a2("13.2.0"), found(&d('c'))), // was b: moved
            (a2("13.3.0"), found(&d('3'))),
            (a2("13.4.0"), not_found()),
            (format!("{AIRFLOW3_REPOSITORY}:3.1-2"), found(&d('e'))),
        ])
    }

    fn changes(p: &Plan) -> Vec<(String, String)> {
        p.items
            .iter()
            .map(|i| (i.version.clone(), i.label()))
            .collect()
    }

    #[test]
    fn first_plan_asks_for_every_selected_tag() {
        let p = plan(&src(), None, &opts(), &HashMap::new()).unwrap();
        let needs: Vec<&str> = p.needs.iter().map(ImageRef::original).collect();
        assert_eq!(
            needs,
            [
                a2("13.1.0"),
                a2("13.2.0"),
                a2("13.3.0"),
                a2("13.4.0"),
                "astrocrpublic.azurecr.io/runtime:3.1-2".into()
            ]
        );
    }

    #[test]
    fn classification_new_unchanged_moved_missing() {
        let ex = existing();
        let p = plan(&src(), Some(&ex), &opts(), &all_found()).unwrap();
        assert!(p.needs.is_empty());
        assert_eq!(
            changes(&p),
            [
                ("13.1.0".into(), "unchanged".into()),
                ("13.2.0".into(), "moved".into()),
                ("13.3.0".into(), "new".into()),
                ("13.4.0".into(), "missing: not found".into()),
                ("3.1-2".into(), "new".into()),
            ]
        );
        let rv = |t: &str| p.catalog.entry(Section::Airflow2, t).unwrap().clone();
        assert_eq!(
            rv("13.2.0")["sha256"],
            d('b'),
            "moved: the recorded digest is kept"
        );
        assert_eq!(rv("13.3.0")["sha256"], d('3'));
        assert!(
            !rv("13.4.0").contains_key("sha256"),
            "missing: written without a digest"
        );
        assert_eq!(rv("13.1.0")["x-extra"]["k"][1], 2, "unknown fields kept");
        assert_eq!(
            p.catalog.entry(Section::Airflow3, "3.1-2").unwrap()["sha256"],
            d('e')
        );
        assert!(
            p.catalog.entry(Section::Airflow2, "9.9.9").is_some(),
            "hand-added kept"
        );
        assert_eq!(p.kept, 1);
        assert_eq!(p.moved_kept(), 1);
        assert!(!p.items[3].fatal(), "a missing tag is not a fatal error");
    }

    #[test]
    fn accept_moved_writes_the_registry_digest() {
        let ex = existing();
        let o = PlanOptions {
            accept_moved: true,
            ..opts()
        };
        let p = plan(&src(), Some(&ex), &o, &all_found()).unwrap();
        assert_eq!(p.items[1].label(), "moved: accepted");
        assert_eq!(p.moved_kept(), 0);
        assert_eq!(
            p.catalog.entry(Section::Airflow2, "13.2.0").unwrap()["sha256"],
            d('c')
        );
    }

    #[test]
    fn a_digest_in_the_source_counts_as_recorded() {
        let s = Catalog::parse(
            &format!(
                r#"{{"runtimeVersions": {{"13.2.0": {{"sha256": "{}"}}}}}}"#,
                d('b')
            ),
            "s",
            true,
        )
        .unwrap();
        let p = plan(&s, None, &opts(), &all_found()).unwrap();
        assert_eq!(p.items[0].label(), "moved");
        assert_eq!(p.items[0].previous, Some(d('b')));
    }

    #[test]
    fn only_missing_resolves_only_entries_without_digest() {
        let ex = existing();
        let o = PlanOptions {
            only_missing: true,
            ..opts()
        };
        let p = plan(&src(), Some(&ex), &o, &HashMap::new()).unwrap();
        let needs: Vec<&str> = p.needs.iter().map(ImageRef::original).collect();
        assert_eq!(
            needs,
            [
                a2("13.3.0"),
                a2("13.4.0"),
                "astrocrpublic.azurecr.io/runtime:3.1-2".into()
            ]
        );
        let p = plan(&src(), Some(&ex), &o, &all_found()).unwrap();
        assert_eq!(
            p.items[1].label(),
            "unchanged",
            "not looked up, so not moved"
        );
        assert_eq!(p.items[1].registry, None);
    }

    #[test]
    fn nested_digest_field() {
        let o = PlanOptions {
            field: DigestField::parse("metadata.sha256").unwrap(),
            ..opts()
        };
        let p = plan(&src(), None, &o, &all_found()).unwrap();
        let e = p.catalog.entry(Section::Airflow2, "13.1.0").unwrap();
        assert_eq!(e["metadata"]["sha256"], d('a'));
        assert_eq!(e["metadata"]["channel"], "stable");
        assert!(!e.contains_key("sha256"));
    }

    #[test]
    fn bad_recorded_digest_is_an_error_naming_the_entry() {
        let ex = Catalog::parse(
            r#"{"runtimeVersions": {"13.1.0": {"sha256": "latest"}}}"#,
            "cm",
            false,
        )
        .unwrap();
        let e = plan(&src(), Some(&ex), &opts(), &all_found()).unwrap_err();
        assert!(
            e.message
                .contains("in the ConfigMap's catalog: runtimeVersions.\"13.1.0\""),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("--digest-field"));
    }

    #[test]
    fn repositories_are_overridable() {
        let o = PlanOptions {
            airflow2_repository: "127.0.0.1:5002/astronomer/astro-runtime".into(),
            airflow3_repository: "mirror.corp/runtime".into(),
            ..opts()
        };
        let p = plan(&src(), None, &o, &HashMap::new()).unwrap();
        assert_eq!(
            p.needs[0].original(),
            "127.0.0.1:5002/astronomer/astro-runtime:13.1.0"
        );
        assert_eq!(p.needs[4].original(), "mirror.corp/runtime:3.1-2");
    }

    /// What a 409 does: the same plan, run again against the ConfigMap as the other writer left
    /// it, keeps their entries and compares against their digests.
    #[test]
    fn conflict_remerge_keeps_the_other_writers_entries() {
        let first = plan(&src(), Some(&existing()), &opts(), &all_found()).unwrap();
        // Meanwhile another writer added a version and recorded a digest for one of ours.
        let theirs = Catalog::parse(
            &format!(
                r#"{{"runtimeVersions": {{
                    "13.1.0": {{"metadata": {{"channel": "stable"}}, "sha256": "{a}"}},
                    "13.2.0": {{"metadata": {{"channel": "stable"}}, "sha256": "{b}"}},
                    "13.3.0": {{"metadata": {{"channel": "stable"}}, "sha256": "{f}"}},
                    "9.9.9": {{"metadata": {{"channel": "hand-added"}}}},
                    "77.0.0": {{"metadata": {{"channel": "concurrent"}}, "sha256": "{a}"}}
                }}, "x-their-note": "hi"}}"#,
                a = d('a'),
                b = d('b'),
                f = d('f'),
            ),
            "cm",
            false,
        )
        .unwrap();
        let again = plan(&src(), Some(&theirs), &opts(), &all_found()).unwrap();
        assert!(first.catalog.entry(Section::Airflow2, "77.0.0").is_none());
        assert_eq!(
            again.catalog.entry(Section::Airflow2, "77.0.0").unwrap()["sha256"],
            d('a'),
            "their entry survives the re-merge"
        );
        assert!(again.catalog.entry(Section::Airflow2, "9.9.9").is_some());
        assert_eq!(
            again.items[2].label(),
            "moved",
            "compared against their digest now"
        );
        assert_eq!(
            again.catalog.entry(Section::Airflow2, "13.3.0").unwrap()["sha256"],
            d('f')
        );
        assert_eq!(again.kept, 2);
        let text = again.catalog.to_pretty();
        assert!(text.contains("x-their-note"));
    }

    #[test]
    fn filters_and_counts() {
        let o = PlanOptions {
            selection: Selection {
                versions: ["13.3.0".to_string()].into(),
                ..Default::default()
            },
            ..opts()
        };
        let ex = existing();
        let p = plan(&src(), Some(&ex), &o, &all_found()).unwrap();
        assert_eq!(changes(&p), [("13.3.0".into(), "new".into())]);
        assert_eq!(p.filtered, 4);
        // Filtered-out versions the ConfigMap holds are left as they are.
        let e = p.catalog.entry(Section::Airflow2, "13.2.0").unwrap();
        assert_eq!(e["sha256"], d('b'));
        assert!(p.catalog.entry(Section::Airflow2, "13.4.0").is_none());
    }

    #[test]
    fn versions_flag_is_checked_against_the_catalog() {
        let sel = Selection {
            versions: ["13.3.0".to_string(), "99.0.0".to_string()].into(),
            ..Default::default()
        };
        let e = check_versions(&src(), &sel).unwrap_err();
        assert!(
            e.message.contains("99.0.0 not in the catalog"),
            "{}",
            e.message
        );
        let sel = Selection {
            channels: vec!["nope".into()],
            ..Default::default()
        };
        assert!(check_versions(&src(), &sel)
            .unwrap_err()
            .message
            .contains("no version"));
    }

    #[test]
    fn resolution_outcomes() {
        let ex = existing();
        let p = plan(&src(), Some(&ex), &opts(), &all_found()).unwrap();
        let e = check_resolution(&p, false, "configmap a/b").unwrap_err();
        assert_eq!(e.code(), crate::error::EXIT_NOT_OK);
        assert!(
            e.message.contains("1 of 5 tags is missing"),
            "{}",
            e.message
        );
        assert!(check_resolution(&p, true, "x")
            .unwrap()
            .unwrap()
            .contains("1 tag is missing"));
        let mut r = all_found();
        r.insert(
            a2("13.4.0"),
            Err(RegistryError::Timeout {
                host: "quay.io".into(),
                secs: 20,
                attempts: 4,
            }),
        );
        let p = plan(&src(), Some(&ex), &opts(), &r).unwrap();
        let e = check_resolution(&p, true, "x").unwrap_err();
        assert_eq!(
            e.code(),
            crate::error::EXIT_ERROR,
            "a timeout is never allowed"
        );
        assert!(e.hint.unwrap().contains("--registry-timeout"));
    }

    #[test]
    fn payload_is_pretty_then_compact_then_refused() {
        let p = plan(&src(), None, &opts(), &all_found()).unwrap();
        assert!(payload(&p.catalog, 0).unwrap().contains("\n  \"version\""));
        let pretty = p.catalog.to_pretty().len();
        let compact = p.catalog.to_compact().len();
        let other = catalog::CONFIGMAP_LIMIT - (pretty + compact) / 2;
        assert!(!payload(&p.catalog, other).unwrap().contains('\n'));
        let e = payload(&p.catalog, catalog::CONFIGMAP_LIMIT).unwrap_err();
        assert!(e.message.contains("nothing was written"));
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

    #[test]
    fn desired_configmap_keeps_theirs_and_respects_other_owners() {
        let current: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n", "namespace": "ns", "resourceVersion": "42",
                         "labels": {"team": "x"}, "annotations": {"keep": "me"}},
            "data": {"other.txt": "hello", "astro_runtime_releases.json": "{}"}
        }))
        .unwrap();
        let ann = vec![(
            "astro-sha.astronomer.io/source".to_string(),
            "s".to_string(),
        )];
        let (cm, warn) = desired_configmap(Some(&current), "ns", "n", "NEW".into(), &ann);
        assert!(warn.is_none());
        assert_eq!(
            cm.metadata.resource_version.as_deref(),
            Some("42"),
            "optimistic concurrency"
        );
        let data = cm.data.unwrap();
        assert_eq!(data["other.txt"], "hello");
        assert_eq!(data[catalog::DATA_KEY], "NEW");
        let labels = cm.metadata.labels.unwrap();
        assert_eq!(labels["team"], "x");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "astro-sha");
        assert_eq!(cm.metadata.annotations.unwrap()["keep"], "me");
        assert_eq!(other_data_size(Some(&current)), 5);

        let helm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n", "labels": {"app.kubernetes.io/managed-by": "Helm"}}
        }))
        .unwrap();
        let (cm, warn) = desired_configmap(Some(&helm), "ns", "n", "x".into(), &ann);
        assert!(warn.unwrap().contains("managed-by=Helm"));
        assert_eq!(
            cm.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
            "Helm"
        );

        let (cm, _) = desired_configmap(None, "ns", "n", "x".into(), &ann);
        assert_eq!(cm.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(cm.metadata.resource_version, None);
    }

    #[test]
    fn existing_configmap_content() {
        let cm = |data: serde_json::Value| -> ConfigMap {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "n"}, "data": data}))
                .unwrap()
        };
        assert!(existing_catalog(None, "ns", "n").unwrap().is_none());
        assert!(existing_catalog(
            Some(&cm(serde_json::json!({"astro_runtime_releases.json": " "}))),
            "ns",
            "n"
        )
        .unwrap()
        .is_none());
        let e = existing_catalog(
            Some(&cm(
                serde_json::json!({"astro_runtime_releases.json": "{oops"}),
            )),
            "ns",
            "n",
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("configmap ns/n key astro_runtime_releases.json is not valid JSON"),
            "{}",
            e.message
        );
        assert!(e.message.contains("nothing was written"));
    }

    #[test]
    fn summary_reads_as_specified() {
        let ex = existing();
        let p = plan(&src(), Some(&ex), &opts(), &all_found()).unwrap();
        assert_eq!(
            summary_line(&p, "configmap astronomer/astro-runtime-base-images", "imported "),
            "imported 5 versions: 2 new, 1 unchanged, 1 moved, 1 missing -> configmap astronomer/astro-runtime-base-images (1 kept that the source lacks)"
        );
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
