//! `kubectl astro-sha pin`: move a running Airflow Deployment's Runtime containers from tags to
//! digests, safely.
//!
//! `plan()` is pure: workloads + resolved digests in, object edits and a printable plan out. Any
//! problem in a release (an unresolvable tag, a template it cannot edit) fails the whole run before
//! anything is written. `run()` shows the plan, asks, checks RBAC, then applies release by release,
//! all or nothing (see `apply::apply_release`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::args::{
    DryRun, GlobalArgs, OutputFormat, PlatformArgs, RegistryArgs, RuntimeArgs, WriteArgs,
};
use crate::commands::show::lookup_ref;
use crate::core::inventory::{Kind, RuntimeMatcher, Workload, ORIGINAL_IMAGES_ANNOTATION};
use crate::error::{Error, ErrorKind, Result};
use crate::kube::apply::{self, ImageEdit, ObjectEdit, Recorded};
use crate::kube::client::Cluster;
use crate::output::{self, Table};
use crate::registry::{ImageRef, RegistryError, Resolved};

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  kubectl astro-sha pin quasaric-sun-1234\n  kubectl astro-sha pin --all -A --dry-run=client\n  kubectl astro-sha pin quasaric-sun-1234 --from-configmap --yes\n  kubectl astro-sha pin quasaric-sun-1234 --values-out pinned-values.yaml"
)]
pub struct PinArgs {
    /// Release names of the Airflow Deployments to pin
    pub releases: Vec<String>,
    /// Pin every Airflow Deployment in scope (-n NS or -A)
    #[arg(long, conflicts_with = "releases")]
    pub all: bool,
    /// Write repo@sha256:... instead of repo:tag@sha256:...
    #[arg(long)]
    pub drop_tag: bool,
    /// Re-pin containers whose tag has moved since they were pinned
    #[arg(long)]
    pub repin: bool,
    /// Take digests from the imported releases ConfigMap (the digests Houston uses) instead of the registry
    #[arg(long)]
    pub from_configmap: bool,
    /// Name of the releases ConfigMap, with --from-configmap
    #[arg(long, default_value = "astro-runtime-base-images")]
    pub configmap: String,
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Where each catalog entry holds its digest, dotted and relative to the entry (default: what import
    /// recorded in the ConfigMap's astro-sha.astronomer.io/digest-field annotation, else sha256)
    #[arg(long)]
    pub digest_field: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
    /// Write airflow chart values that pin the image (images.airflow.*) to FILE instead of patching; `{release}` in FILE is replaced per release
    #[arg(long, value_name = "FILE")]
    pub values_out: Option<PathBuf>,
    /// Skip the RBAC pre-check (SelfSubjectAccessReview) before writing
    #[arg(long)]
    pub skip_access_check: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// One line of the plan.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlanRow {
    pub namespace: String,
    pub release: String,
    pub workload: String,
    pub container: String,
    pub from: String,
    pub to: Option<String>,
    pub action: String,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub rows: Vec<PlanRow>,
    pub edits: Vec<ObjectEdit>,
    /// Problems that stop the run (per release).
    pub problems: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// Options for planning.
pub struct PlanOptions<'a> {
    pub drop_tag: bool,
    pub repin: bool,
    pub matcher: &'a RuntimeMatcher,
    /// Digests from the releases ConfigMap: image tag lookups by (is_airflow3, tag).
    pub configmap: Option<&'a CatalogDigests>,
}

/// Digests listed in the imported catalog, by generation and tag.
#[derive(Default, Debug)]
pub struct CatalogDigests {
    pub airflow2: HashMap<String, String>,
    pub airflow3: HashMap<String, String>,
}

impl CatalogDigests {
    /// Reads the catalog JSON; `field` is the dotted digest path inside each entry.
    pub fn from_catalog(json: &serde_json::Value, field: &str) -> Self {
        let read = |key: &str| -> HashMap<String, String> {
            json.get(key)
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.iter()
                        .filter_map(|(tag, entry)| {
                            let mut v = entry;
                            for part in field.split('.') {
                                v = v.get(part)?;
                            }
                            Some((tag.clone(), v.as_str()?.to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        CatalogDigests {
            airflow2: read("runtimeVersions"),
            airflow3: read("runtimeVersionsV3"),
        }
    }

    /// Airflow 3 Runtime lives in a repository named `runtime`; Airflow 2 in `astro-runtime`.
    pub fn lookup(&self, image: &ImageRef) -> Option<&String> {
        let tag = image.tag()?;
        let a3 = image.repository() == "runtime" || image.repository().ends_with("/runtime");
        if a3 {
            self.airflow3.get(tag).or_else(|| self.airflow2.get(tag))
        } else {
            self.airflow2.get(tag).or_else(|| self.airflow3.get(tag))
        }
    }
}

fn moved(pin: &str, r: &Resolved) -> bool {
    r.digest != pin
        && r.platform_digest.as_deref() != Some(pin)
        && !r.platforms.iter().any(|p| p.digest == pin)
}

/// Pure: the edits that pin the given workloads.
pub fn plan(
    workloads: &[Workload],
    resolved: &HashMap<String, Result<Resolved, RegistryError>>,
    opts: &PlanOptions,
) -> Plan {
    let mut out = Plan::default();
    let mut releases_with_runtime: HashSet<(String, String)> = HashSet::new();
    let mut releases: Vec<(String, String)> = vec![];
    for w in workloads {
        let key = (w.namespace.clone(), w.release.clone());
        if !releases.contains(&key) {
            releases.push(key.clone());
        }
        if let Some(problem) = &w.problem {
            out.problems.push((
                w.release.clone(),
                format!("{}: {problem}", w.display_name()),
            ));
            continue;
        }
        let mut records = apply::parse_records(w.annotations.get(ORIGINAL_IMAGES_ANNOTATION));
        let before_records = records.clone();
        let mut edits: Vec<ImageEdit> = vec![];
        for c in &w.containers {
            let img = match ImageRef::parse(&c.image) {
                Ok(img) => img,
                Err(e) => {
                    // A Runtime image with a broken reference: the release cannot be pinned
                    // whole, so it is not pinned at all (a partial pin would hide it).
                    if opts.matcher.looks_like_runtime(&c.image) {
                        releases_with_runtime.insert(key.clone());
                        out.problems.push((
                            w.release.clone(),
                            format!(
                                "{} container {}: {e}; fix the workload's image, then pin",
                                w.display_name(),
                                c.container
                            ),
                        ));
                    }
                    continue;
                }
            };
            if !opts.matcher.is_runtime(&img) {
                continue;
            }
            releases_with_runtime.insert(key.clone());
            let row = |to: Option<String>, action: String| PlanRow {
                namespace: w.namespace.clone(),
                release: w.release.clone(),
                workload: w.display_name(),
                container: c.container.clone(),
                from: c.image.clone(),
                to,
                action,
            };
            let registry = lookup_ref(&img).and_then(|l| resolved.get(l.original()));
            let from_cm = opts.configmap.and_then(|m| m.lookup(&img));
            let to = if let Some(pin) = img.digest() {
                match registry {
                    Some(Ok(r)) if moved(pin, r) => {
                        if opts.repin {
                            let new = r.pin_digest().to_string();
                            let to = img.pinned(&new, opts.drop_tag);
                            out.rows
                                .push(row(Some(to.clone()), "repin: tag moved".into()));
                            Some(to)
                        } else {
                            out.rows.push(row(
                                None,
                                format!(
                                    "kept: tag now points to {} (use --repin)",
                                    output::short_digest(r.pin_digest())
                                ),
                            ));
                            None
                        }
                    }
                    _ => {
                        out.rows.push(row(None, "unchanged: already pinned".into()));
                        None
                    }
                }
            } else {
                let reg_digest = match registry {
                    Some(Ok(r)) => Some(r.pin_digest().to_string()),
                    _ => None,
                };
                let digest = match (opts.configmap.is_some(), from_cm, &reg_digest) {
                    (true, Some(cm), reg) => {
                        if let Some(reg) = reg.as_ref().filter(|r| *r != cm) {
                            out.notes.push(format!(
                                "{} in {}/{}: the releases ConfigMap says {} but the registry says {}; using the ConfigMap's (Houston's)",
                                c.image, w.namespace, w.display_name(), cm, reg
                            ));
                        }
                        Some(cm.clone())
                    }
                    (true, None, _) => {
                        out.problems.push((w.release.clone(), format!("tag {} has no digest in the releases ConfigMap (run `kubectl astro-sha import` with this version selected, or pin from the registry without --from-configmap)", c.image)));
                        None
                    }
                    (false, _, Some(d)) => Some(d.clone()),
                    (false, _, None) => {
                        let why = match registry {
                            Some(Err(e)) => e.to_string(),
                            _ => "no tag to resolve".into(),
                        };
                        out.problems.push((
                            w.release.clone(),
                            format!("cannot resolve {}: {why}", c.image),
                        ));
                        None
                    }
                };
                digest.map(|d| {
                    let to = img.pinned(&d, opts.drop_tag);
                    out.rows.push(row(Some(to.clone()), "pin".into()));
                    to
                })
            };
            if let Some(to) = to {
                let rk = apply::record_key(c.role, &c.container);
                records
                    .entry(rk)
                    .and_modify(|r| r.pinned = to.clone())
                    .or_insert_with(|| Recorded {
                        original: c.image.clone(),
                        pinned: to.clone(),
                    });
                edits.push(ImageEdit {
                    container: c.container.clone(),
                    role: c.role,
                    index: c.index,
                    from: c.image.clone(),
                    to,
                });
            }
        }
        if edits.is_empty() {
            continue;
        }
        let template = match (&w.kind, &w.template_text) {
            (Kind::ConfigMap, Some(text)) => match apply::template_after(text, &edits) {
                Ok(pair) => Some(pair),
                Err(e) => {
                    out.problems
                        .push((w.release.clone(), format!("{}: {e}", w.display_name())));
                    continue;
                }
            },
            _ => None,
        };
        let old_ann = w.annotations.get(ORIGINAL_IMAGES_ANNOTATION).cloned();
        let new_ann = if records == before_records {
            old_ann.clone()
        } else {
            serde_json::to_string(&records).ok()
        };
        out.edits.push(ObjectEdit {
            kind: w.kind,
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            release: w.release.clone(),
            images: edits,
            template,
            annotation: (old_ann, new_ann),
            had_annotations: !w.annotations.is_empty(),
        });
    }
    for (ns, rel) in releases {
        if !releases_with_runtime.contains(&(ns.clone(), rel.clone())) {
            out.problems.push((rel.clone(), format!("release {rel} in namespace {ns} has no Runtime container (check --runtime-repository, or use --all-images)")));
        }
    }
    out
}

pub fn render_plan(rows: &[PlanRow], no_headers: bool, wide: bool) -> String {
    let mut headers = vec!["RELEASE", "WORKLOAD", "CONTAINER", "FROM", "TO", "ACTION"];
    if wide {
        headers.insert(0, "NAMESPACE");
    }
    let mut t = Table::new(headers);
    for r in rows {
        let mut row = vec![
            r.release.clone(),
            r.workload.clone(),
            r.container.clone(),
            r.from.clone(),
            r.to.clone().unwrap_or_else(|| "-".into()),
            r.action.clone(),
        ];
        if wide {
            row.insert(0, r.namespace.clone());
        }
        t.push(row);
    }
    t.render(no_headers)
}

/// Airflow chart values that pin the Runtime image of a release, for GitOps.
pub fn values_snippet(release: &str, image: &ImageRef, digest: &str) -> String {
    let repo = image.without_digest();
    let repo = match image.tag() {
        Some(t) => repo.strip_suffix(&format!(":{t}")).unwrap_or(repo),
        None => repo,
    };
    format!(
        "# Airflow chart values pinning the Astro Runtime image of release {release}.\n# Generated by kubectl astro-sha pin --values-out; merge into the release's values.\nimages:\n  airflow:\n    repository: {repo}\n    tag: \"{}\"\n    digest: \"{digest}\"\n",
        image.tag().unwrap_or("")
    )
}

/// Asks "proceed?" on a terminal; elsewhere proceeds (scripts pass --yes or pipe the plan).
pub fn confirm(prompt: &str, yes: bool) -> Result<bool> {
    if yes || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(true);
    }
    dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact()
        .map_err(|e| {
            Error::new(format!("cannot read the confirmation: {e}"))
                .hint("pass --yes to skip the question")
        })
}

/// Checks with SelfSubjectAccessReview that every object kind can be patched, before any write.
pub async fn access_check(cluster: &Cluster, edits: &[ObjectEdit]) -> Result<()> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    use kube::api::{Api, PostParams};
    let mut wanted: Vec<(String, Kind)> = edits
        .iter()
        .map(|e| (e.namespace.clone(), e.kind))
        .collect();
    wanted.sort();
    wanted.dedup();
    let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    for (ns, kind) in wanted {
        let (group, resource) = match kind {
            Kind::Deployment => ("apps", "deployments"),
            Kind::StatefulSet => ("apps", "statefulsets"),
            Kind::CronJob => ("batch", "cronjobs"),
            Kind::ConfigMap => ("", "configmaps"),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.clone()),
                    verb: Some("patch".into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(r) if r.status.as_ref().is_some_and(|s| !s.allowed) => {
                return Err(Error::new(format!("forbidden: cannot patch {} in namespace {ns:?}; nothing was changed", kind.resource()))
                    .hint(format!("ask for a Role granting `patch` on `{}` in {ns}; the README lists the Role `pin` needs", kind.resource()))
                    .kind(ErrorKind::Forbidden))
            }
            Ok(_) => {}
            // Servers that refuse the review itself: the writes will tell.
            Err(e) => tracing::info!(error = %e, "access review unavailable; skipping the pre-check"),
        }
    }
    Ok(())
}

pub async fn run(g: &GlobalArgs, args: &PinArgs) -> Result<u8> {
    if args.releases.is_empty() && !args.all {
        return Err(Error::new("no release given").hint("name releases (kubectl astro-sha pin quasaric-sun-1234) or pass --all with -n NS or -A"));
    }
    let cluster = Cluster::connect(&g.connect()).await?;
    let (scope, _snap, workloads) =
        crate::commands::show::load(&cluster, &g.namespaces(), &args.releases).await?;
    if workloads.is_empty() {
        return Err(Error::new("no Airflow Deployments found in scope")
            .hint("use -A to look in every namespace, or -n NAMESPACE"));
    }
    let matcher = RuntimeMatcher::new(&args.runtime.runtime_repository, args.runtime.all_images);
    let catalog = if args.from_configmap {
        Some(read_catalog(&cluster, args).await?)
    } else {
        None
    };
    let resolved = crate::commands::show::resolve_runtime(
        &cluster,
        &scope,
        &workloads,
        &matcher,
        &args.registry,
    )
    .await?;
    let p = plan(
        &workloads,
        &resolved,
        &PlanOptions {
            drop_tag: args.drop_tag,
            repin: args.repin,
            matcher: &matcher,
            configmap: catalog.as_ref(),
        },
    );

    for n in &p.notes {
        eprintln!("note: {n}");
    }
    if !p.problems.is_empty() {
        print_problems(&p.problems);
        return Err(Error::new(format!(
            "nothing was changed: {} problem(s) in the plan",
            p.problems.len()
        ))
        .hint("fix the problems above (or leave the release out) and run again"));
    }
    if let Some(path) = &args.values_out {
        return write_values(path, &p, &workloads, &resolved, &matcher, &catalog);
    }
    print_plan(g, &p.rows)?;
    if p.edits.is_empty() {
        eprintln!("Nothing to change: every Runtime container is already pinned.");
        return Ok(0);
    }
    if args.write.dry.dry_run == DryRun::Client {
        eprintln!(
            "Dry run (client): {} object(s) would change; nothing was sent.",
            p.edits.len()
        );
        return Ok(0);
    }
    if houston_off(&cluster, args.platform.platform_namespace.as_deref()).await {
        eprintln!("warning: Houston's customImageSha feature is not enabled: Houston's next update of these Deployments will put the tags back (show will report it).");
        eprintln!(
            "  hint: kubectl astro-sha enable --values <platform values.yaml>  (or --in-cluster)"
        );
    }
    if !confirm(&format!("Pin {} object(s)?", p.edits.len()), args.write.yes)? {
        eprintln!("Aborted; nothing was changed.");
        return Ok(crate::error::EXIT_NOT_OK);
    }
    if !args.skip_access_check {
        access_check(&cluster, &p.edits).await?;
    }
    pause_before_apply().await;
    apply_all(
        &cluster,
        g,
        &p.edits,
        args.write.dry.dry_run == DryRun::Server,
        "pinned",
    )
    .await
}

/// Prints each distinct problem once, with how many containers it affects.
pub fn print_problems(problems: &[(String, String)]) {
    let mut counted: Vec<(&(String, String), usize)> = vec![];
    for p in problems {
        match counted.iter_mut().find(|(q, _)| *q == p) {
            Some((_, n)) => *n += 1,
            None => counted.push((p, 1)),
        }
    }
    for ((rel, msg), n) in counted {
        let times = if n > 1 {
            format!(" ({n} containers)")
        } else {
            String::new()
        };
        eprintln!("error: release {rel}: {msg}{times}");
    }
}

/// Test seam: `ASTRO_SHA_PAUSE_BEFORE_APPLY_MS` holds the run between plan and apply, which is
/// the window a person sitting at the confirmation prompt opens. The integration tests use it to
/// prove that a writer acting in that window is never overwritten. It only ever waits.
pub async fn pause_before_apply() {
    if let Some(ms) = std::env::var("ASTRO_SHA_PAUSE_BEFORE_APPLY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        eprintln!("(pausing {ms} ms before applying, as ASTRO_SHA_PAUSE_BEFORE_APPLY_MS asks)");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

async fn houston_off(cluster: &Cluster, platform_namespace: Option<&str>) -> bool {
    crate::kube::platform::houston_feature_enabled(cluster, platform_namespace).await == Some(false)
}

pub fn print_plan(g: &GlobalArgs, rows: &[PlanRow]) -> Result<()> {
    match g.output {
        OutputFormat::Json | OutputFormat::Yaml => Ok(()),
        OutputFormat::Table | OutputFormat::Wide => output::print(&render_plan(
            rows,
            g.no_headers,
            g.output == OutputFormat::Wide,
        )),
    }
}

#[derive(Serialize)]
struct ApplyReport<'a> {
    edits: &'a [ObjectEdit],
    outcomes: Vec<apply::Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Applies edits release by release; stops at the first failed release.
pub async fn apply_all(
    cluster: &Cluster,
    g: &GlobalArgs,
    edits: &[ObjectEdit],
    server_dry_run: bool,
    word: &str,
) -> Result<u8> {
    let cron = if edits.iter().any(|e| e.kind == Kind::CronJob) {
        cluster.cronjob_resource().await?
    } else {
        None
    };
    let mut by_release: BTreeMap<(String, String), Vec<ObjectEdit>> = BTreeMap::new();
    for e in edits {
        by_release
            .entry((e.namespace.clone(), e.release.clone()))
            .or_default()
            .push(e.clone());
    }
    let word = if server_dry_run {
        format!("{word} (server dry run)")
    } else {
        word.to_string()
    };
    let mut outcomes = vec![];
    let mut failure = None;
    for ((ns, rel), list) in &by_release {
        let (o, err) =
            apply::apply_release(cluster, list, server_dry_run, cron.as_ref(), &word).await;
        outcomes.extend(o.clone());
        if let Some((obj, e)) = err {
            let mut t = Table::new(["NAMESPACE", "OBJECT", "RESULT"]);
            for x in &o {
                t.push(vec![
                    x.namespace.clone(),
                    x.object.clone(),
                    x.result.clone(),
                ]);
            }
            eprint!("{}", t.render(false));
            let msg = format!("release {rel} in namespace {ns}: {obj} {e}; the release's earlier writes were rolled back and later releases were not touched");
            failure = Some(match e {
                apply::ApplyError::Changed(_) => Error::new(msg).hint("someone changed the workload while the plan was shown; review with `kubectl astro-sha show` and run again"),
                apply::ApplyError::Gone => Error::new(msg).hint("the object was deleted during the run; run again to plan against the current state"),
                apply::ApplyError::Api(inner) => Error::new(msg).hint(inner.hint.unwrap_or_else(|| "see the error above".into())),
            });
            break;
        }
        eprintln!("release {rel} ({ns}): {} object(s) {word}", list.len());
    }
    if let Some(s) = output::structured(
        &ApplyReport {
            edits,
            outcomes,
            error: failure.as_ref().map(|f| f.message.clone()),
        },
        g.output,
    )? {
        output::print(&s)?;
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(0),
    }
}

async fn read_catalog(cluster: &Cluster, args: &PinArgs) -> Result<CatalogDigests> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let ns = crate::kube::platform::find(cluster, args.platform.platform_namespace.as_deref())
        .await?
        .namespace;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(cluster.client.clone(), &ns);
    let cm = api
        .get_opt(&args.configmap)
        .await
        .map_err(|e| cluster.err(e, "get", "configmaps", Some(&ns)))?
        .ok_or_else(|| {
            Error::new(format!("ConfigMap {ns}/{} not found", args.configmap))
                .hint("run `kubectl astro-sha import` first, or pass --configmap")
        })?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get("astro_runtime_releases.json"))
        .ok_or_else(|| {
            Error::new(format!(
                "ConfigMap {ns}/{} has no key astro_runtime_releases.json",
                args.configmap
            ))
            .hint("re-run `kubectl astro-sha import`")
        })?;
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        Error::new(format!(
            "ConfigMap {ns}/{}: catalog JSON does not parse: {e}",
            args.configmap
        ))
    })?;
    let recorded = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("astro-sha.astronomer.io/digest-field"))
        .cloned();
    let field = args
        .digest_field
        .clone()
        .or(recorded)
        .unwrap_or_else(|| "sha256".into());
    Ok(CatalogDigests::from_catalog(&json, &field))
}

fn write_values(
    path: &std::path::Path,
    p: &Plan,
    workloads: &[Workload],
    resolved: &HashMap<String, Result<Resolved, RegistryError>>,
    matcher: &RuntimeMatcher,
    catalog: &Option<CatalogDigests>,
) -> Result<u8> {
    let mut per_release: BTreeMap<String, (ImageRef, String)> = BTreeMap::new();
    for w in workloads {
        for c in &w.containers {
            let Ok(img) = ImageRef::parse(&c.image) else {
                continue;
            };
            if !matcher.is_runtime(&img) || per_release.contains_key(&w.release) {
                continue;
            }
            let digest = img
                .digest()
                .map(str::to_string)
                .or_else(|| catalog.as_ref().and_then(|c| c.lookup(&img)).cloned())
                .or_else(|| {
                    lookup_ref(&img)
                        .and_then(|l| resolved.get(l.original()))
                        .and_then(|r| r.as_ref().ok())
                        .map(|r| r.pin_digest().to_string())
                });
            if let Some(d) = digest {
                per_release.insert(w.release.clone(), (img, d));
            }
        }
    }
    let template = path.to_string_lossy().to_string();
    if per_release.len() > 1 && !template.contains("{release}") {
        return Err(Error::new(format!(
            "--values-out {template}: {} releases selected but one file given",
            per_release.len()
        ))
        .hint("put {release} in the path, e.g. --values-out 'values-{release}.yaml'"));
    }
    for (release, (img, digest)) in &per_release {
        let file = template.replace("{release}", release);
        std::fs::write(&file, values_snippet(release, img, digest))
            .map_err(|e| Error::new(format!("cannot write {file}: {e}")))?;
        eprintln!(
            "wrote {file} (release {release}: {})",
            output::short_digest(digest)
        );
    }
    let _ = p;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::inventory::{ContainerImage, Role};

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn wl(kind: Kind, images: &[(&str, Role, &str)]) -> Workload {
        Workload {
            kind,
            namespace: "ns".into(),
            name: "r-scheduler".into(),
            release: "r".into(),
            component: None,
            containers: images
                .iter()
                .enumerate()
                .map(|(i, (n, role, img))| ContainerImage {
                    container: n.to_string(),
                    role: *role,
                    index: i,
                    image: img.to_string(),
                })
                .collect(),
            pod_selector: Default::default(),
            annotations: Default::default(),
            pull_secrets: vec![],
            template_text: None,
            problem: None,
            resource_version: None,
        }
    }

    fn resolved(pairs: &[(&str, &str)]) -> HashMap<String, Result<Resolved, RegistryError>> {
        pairs
            .iter()
            .map(|(i, d)| {
                (
                    i.to_string(),
                    Ok(Resolved {
                        source: String::new(),
                        mirrored: false,
                        digest: d.to_string(),
                        media_type: String::new(),
                        platforms: vec![],
                        platform_digest: None,
                    }),
                )
            })
            .collect()
    }

    #[test]
    fn pins_runtime_only_and_records_originals() {
        let m = RuntimeMatcher::new(&[], false);
        let w = wl(
            Kind::Deployment,
            &[
                ("wait", Role::Init, "q.io/astronomer/astro-runtime:1.0.0"),
                ("statsd", Role::Container, "q.io/statsd:1"),
            ],
        );
        let r = resolved(&[("q.io/astronomer/astro-runtime:1.0.0", D1)]);
        let p = plan(
            &[w],
            &r,
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                configmap: None,
            },
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.edits.len(), 1);
        assert_eq!(p.edits[0].images.len(), 1);
        assert_eq!(
            p.edits[0].images[0].to,
            format!("q.io/astronomer/astro-runtime:1.0.0@{D1}")
        );
        let rec: apply::Records =
            serde_json::from_str(p.edits[0].annotation.1.as_ref().unwrap()).unwrap();
        assert_eq!(
            rec["init:wait"].original,
            "q.io/astronomer/astro-runtime:1.0.0"
        );
    }

    #[test]
    fn already_pinned_is_a_noop_and_moved_tags_keep_their_pin() {
        let m = RuntimeMatcher::new(&[], false);
        let img = format!("q.io/astronomer/astro-runtime:1.0.0@{D1}");
        let w = wl(Kind::Deployment, &[("s", Role::Container, &img)]);
        let same = resolved(&[("q.io/astronomer/astro-runtime:1.0.0", D1)]);
        let p = plan(
            std::slice::from_ref(&w),
            &same,
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                configmap: None,
            },
        );
        assert!(p.edits.is_empty());
        assert_eq!(p.rows[0].action, "unchanged: already pinned");
        let moved_ = resolved(&[("q.io/astronomer/astro-runtime:1.0.0", D2)]);
        let p = plan(
            std::slice::from_ref(&w),
            &moved_,
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                configmap: None,
            },
        );
        assert!(p.edits.is_empty());
        assert!(p.rows[0].action.starts_with("kept"));
        let p = plan(
            &[w],
            &moved_,
            &PlanOptions {
                drop_tag: false,
                repin: true,
                matcher: &m,
                configmap: None,
            },
        );
        assert_eq!(
            p.edits[0].images[0].to,
            format!("q.io/astronomer/astro-runtime:1.0.0@{D2}")
        );
    }

    #[test]
    fn unresolvable_tag_is_a_problem_and_no_runtime_is_a_problem() {
        let m = RuntimeMatcher::new(&[], false);
        let w = wl(
            Kind::Deployment,
            &[("s", Role::Container, "q.io/astronomer/astro-runtime:9.9.9")],
        );
        let mut r = HashMap::new();
        r.insert(
            "q.io/astronomer/astro-runtime:9.9.9".to_string(),
            Err(RegistryError::NotFound {
                host: "q.io".into(),
                repository: "astronomer/astro-runtime".into(),
                reference: "9.9.9".into(),
            }),
        );
        let p = plan(
            &[w],
            &r,
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                configmap: None,
            },
        );
        assert_eq!(p.problems.len(), 1);
        assert!(p.edits.is_empty());
        let w = wl(
            Kind::Deployment,
            &[("statsd", Role::Container, "q.io/statsd:1")],
        );
        let p = plan(
            &[w],
            &HashMap::new(),
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                configmap: None,
            },
        );
        assert!(p.problems[0].1.contains("no Runtime container"));
    }

    #[test]
    fn a_broken_runtime_reference_stops_the_release() {
        let m = RuntimeMatcher::new(&[], false);
        let w = wl(
            Kind::Deployment,
            &[
                ("ok", Role::Container, "q.io/astronomer/astro-runtime:1.0.0"),
                (
                    "typo",
                    Role::Container,
                    "q.io/astronomer/Astro-Runtime:1.0.0",
                ),
                ("other", Role::Container, "q.io/Some/Thing:1"),
            ],
        );
        let r = resolved(&[("q.io/astronomer/astro-runtime:1.0.0", D1)]);
        let p = plan(
            &[w],
            &r,
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                configmap: None,
            },
        );
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert!(p.problems[0].1.contains("container typo"));
        assert!(p.problems[0].1.contains("Astro-Runtime"));
    }

    #[test]
    fn configmap_digests_win_and_disagreement_is_reported() {
        let m = RuntimeMatcher::new(&[], false);
        let w = wl(
            Kind::Deployment,
            &[("s", Role::Container, "q.io/astronomer/astro-runtime:1.0.0")],
        );
        let cat = CatalogDigests::from_catalog(
            &serde_json::json!({"runtimeVersions": {"1.0.0": {"sha256": D2}}}),
            "sha256",
        );
        let r = resolved(&[("q.io/astronomer/astro-runtime:1.0.0", D1)]);
        let p = plan(
            &[w],
            &r,
            &PlanOptions {
                drop_tag: true,
                repin: false,
                matcher: &m,
                configmap: Some(&cat),
            },
        );
        assert_eq!(
            p.edits[0].images[0].to,
            format!("q.io/astronomer/astro-runtime@{D2}")
        );
        assert_eq!(p.notes.len(), 1);
        let nested = CatalogDigests::from_catalog(
            &serde_json::json!({"runtimeVersionsV3": {"3.1-1": {"metadata": {"sha256": D1}}}}),
            "metadata.sha256",
        );
        assert_eq!(
            nested.lookup(&ImageRef::parse("x.io/runtime:3.1-1").unwrap()),
            Some(&D1.to_string())
        );
    }

    #[test]
    fn values_snippet_splits_repository_and_tag() {
        let s = values_snippet(
            "r",
            &ImageRef::parse("quay.io/astronomer/astro-runtime:12.1.0").unwrap(),
            D1,
        );
        assert!(s.contains("repository: quay.io/astronomer/astro-runtime\n"));
        assert!(s.contains("tag: \"12.1.0\""));
        assert!(s.contains(&format!("digest: \"{D1}\"")));
        let _: serde_yaml_ng::Value = serde_yaml_ng::from_str(&s).unwrap();
    }
}
