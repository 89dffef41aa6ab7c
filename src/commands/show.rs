//! `kubectl astro-sha show`: for every Runtime container, the tag, the pinned digest, what the tag
//! points to now, and what the pods actually run.
//!
//! Plan/apply split: `report()` is pure (workloads + pods + resolutions in, rows out); `run()` does
//! the listing and the registry calls.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use clap::Args;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::args::{GlobalArgs, OutputFormat, RegistryArgs, RuntimeArgs};
use crate::core::inventory::{self, Role, Running, RuntimeMatcher, Workload};
use crate::error::{Error, Result, EXIT_NOT_OK};
use crate::kube::client::{airflow_selector, Cluster, Namespaces, Scope};
use crate::output::{self, Table};
use crate::registry::{ImageRef, RegistryError, Resolved, Resolver};

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  kubectl astro-sha show -A\n  kubectl astro-sha show quasaric-sun-1234 -o wide\n  kubectl astro-sha show -A --check && echo all pinned"
)]
pub struct ShowArgs {
    /// Release names of Airflow Deployments (default: all in scope; searched in every namespace when -n is not given)
    pub releases: Vec<String>,
    /// Exit 0 only if every Runtime container is pinned and running its pin; 1 otherwise; 2 on error
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pinned,
    /// Pinned, but the tag now points elsewhere.
    Drifted,
    TagOnly,
    /// Pods run something other than the spec's pin.
    RunningDiffers,
    Unresolved(String),
}

impl Status {
    pub fn label(&self) -> String {
        match self {
            Status::Pinned => "pinned".into(),
            Status::Drifted => "drifted".into(),
            Status::TagOnly => "tag-only".into(),
            Status::RunningDiffers => "running-differs".into(),
            Status::Unresolved(r) => format!("unresolved: {r}"),
        }
    }
    pub fn key(&self) -> &'static str {
        match self {
            Status::Pinned => "pinned",
            Status::Drifted => "drifted",
            Status::TagOnly => "tag-only",
            Status::RunningDiffers => "running-differs",
            Status::Unresolved(_) => "unresolved",
        }
    }
}

/// One container of one workload.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub release: String,
    pub workload: String,
    pub container: String,
    pub role: Role,
    pub image: String,
    pub tag: Option<String>,
    pub spec_digest: Option<String>,
    pub registry_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_source: Option<String>,
    pub running: Running,
    pub status: String,
    #[serde(skip)]
    pub state: Status,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub items: Vec<Row>,
    pub summary: BTreeMap<String, usize>,
}

/// The registry lookup for an image in a spec: the tag (what it points to now), never the pin.
pub fn lookup_ref(image: &ImageRef) -> Option<ImageRef> {
    image.tag()?;
    ImageRef::parse(image.without_digest()).ok()
}

/// Decides a container's state.
pub fn status(
    spec_digest: Option<&str>,
    registry: Option<&Result<Resolved, RegistryError>>,
    running: &Running,
) -> Status {
    let Some(pin) = spec_digest else {
        return match registry {
            Some(Err(e)) => Status::Unresolved(e.short()),
            _ => Status::TagOnly,
        };
    };
    match running {
        Running::Mixed(_) => return Status::RunningDiffers,
        Running::Digest(d) if d != pin => return Status::RunningDiffers,
        _ => {}
    }
    match registry {
        Some(Ok(r))
            if r.digest != pin
                && !r.platforms.iter().any(|p| p.digest == pin)
                && r.platform_digest.as_deref() != Some(pin) =>
        {
            Status::Drifted
        }
        Some(Err(e)) => Status::Unresolved(e.short()),
        _ => Status::Pinned,
    }
}

/// Pure: builds the report rows.
pub fn report(
    workloads: &[Workload],
    pods: &[Pod],
    matcher: &RuntimeMatcher,
    resolved: &HashMap<String, Result<Resolved, RegistryError>>,
) -> Report {
    let pod_refs: Vec<&Pod> = pods.iter().collect();
    let mut items = vec![];
    for w in workloads {
        for c in &w.containers {
            let parsed = ImageRef::parse(&c.image);
            let row_base = |state: Status,
                            tag: Option<String>,
                            spec: Option<String>,
                            reg: Option<&Resolved>,
                            running: Running| Row {
                namespace: w.namespace.clone(),
                release: w.release.clone(),
                workload: w.display_name(),
                container: c.container.clone(),
                role: c.role,
                image: c.image.clone(),
                tag,
                spec_digest: spec,
                registry_digest: reg.map(|r| r.digest.clone()),
                registry_source: reg.filter(|r| r.mirrored).map(|r| r.source.clone()),
                running,
                status: state.label(),
                state,
            };
            let img = match parsed {
                Ok(i) => i,
                Err(_) => {
                    if matcher.all_images() || matcher.looks_like_runtime(&c.image) {
                        items.push(row_base(
                            Status::Unresolved("invalid reference".into()),
                            None,
                            None,
                            None,
                            Running::Unknown,
                        ));
                    }
                    continue;
                }
            };
            if !matcher.is_runtime(&img) {
                continue;
            }
            let running = inventory::running(w, c, &pod_refs);
            let reg = lookup_ref(&img).and_then(|l| resolved.get(l.original()));
            let state = status(img.digest(), reg, &running);
            items.push(row_base(
                state,
                img.tag().map(str::to_string),
                img.digest().map(str::to_string),
                reg.and_then(|r| r.as_ref().ok()),
                running,
            ));
        }
    }
    let mut summary = BTreeMap::new();
    for r in &items {
        *summary.entry(r.state.key().to_string()).or_insert(0) += 1;
    }
    Report { items, summary }
}

fn running_cell(r: &Running, wide: bool) -> String {
    match r {
        Running::Unknown => "-".into(),
        Running::Digest(d) if wide => d.clone(),
        Running::Digest(d) => output::short_digest(d),
        Running::Mixed(_) => "mixed".into(),
    }
}

pub fn render_table(rep: &Report, wide: bool, no_headers: bool, color: bool) -> String {
    let mut headers = vec![
        "NAMESPACE",
        "RELEASE",
        "WORKLOAD",
        "CONTAINER",
        "TAG",
        "SPEC DIGEST",
        "REGISTRY DIGEST",
        "RUNNING DIGEST",
        "STATUS",
    ];
    if wide {
        headers.extend(["IMAGE", "REGISTRY SOURCE"]);
    }
    let mut t = Table::new(headers);
    let d = |o: &Option<String>| match o {
        Some(x) if wide => x.clone(),
        Some(x) => output::short_digest(x),
        None => "-".into(),
    };
    for r in &rep.items {
        let container = match r.role {
            Role::Init => format!("{} (init)", r.container),
            Role::Container => r.container.clone(),
        };
        let mut row = vec![
            r.namespace.clone(),
            r.release.clone(),
            r.workload.clone(),
            container,
            r.tag.clone().unwrap_or_else(|| "-".into()),
            d(&r.spec_digest),
            d(&r.registry_digest),
            running_cell(&r.running, wide),
            output::paint_state(&r.status, color),
        ];
        if wide {
            row.push(r.image.clone());
            row.push(r.registry_source.clone().unwrap_or_else(|| "-".into()));
        }
        t.push(row);
    }
    t.render(no_headers)
}

/// Builds the resolver from the shared flags.
pub fn resolver(args: &RegistryArgs, list_platforms: bool) -> Result<Resolver> {
    Resolver::new(crate::registry::Options {
        ca_files: args.registry_ca.clone(),
        insecure: args.insecure_registry.clone(),
        mirrors: args.registry_mirror.clone(),
        concurrency: usize::from(args.concurrency),
        timeout: args.registry_timeout,
        retries: args.registry_retries,
        platform: args.platform.clone(),
        list_platforms,
        docker_config: true,
    })
}

/// Resolves the tags behind the given images (deduplicated), warning once per distinct failure.
pub async fn resolve_tags(
    resolver: &Resolver,
    images: impl IntoIterator<Item = ImageRef>,
) -> HashMap<String, Result<Resolved, RegistryError>> {
    let mut unique: Vec<ImageRef> = vec![];
    let mut seen = BTreeSet::new();
    for i in images {
        if let Some(l) = lookup_ref(&i) {
            if seen.insert(l.original().to_string()) {
                unique.push(l);
            }
        }
    }
    let pb = output::progress(unique.len() as u64, "resolving tags");
    let results = resolver.resolve_many(&unique, &pb).await;
    pb.finish_and_clear();
    let mut warned = BTreeSet::new();
    let mut out = HashMap::new();
    for (img, res) in unique.into_iter().zip(results) {
        if let Err(e) = &res {
            if warned.insert(e.to_string()) {
                eprintln!("warning: cannot resolve {img}: {e}");
                if let Some(h) = e.hint() {
                    eprintln!("  hint: {h}");
                }
            }
        }
        out.insert(img.original().to_string(), res);
    }
    tracing::info!(
        pings = resolver
            .stats
            .ping_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        tokens = resolver
            .stats
            .token_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        manifests = resolver
            .stats
            .manifest_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        "registry requests"
    );
    out
}

/// Says which objects could not be read, so a missing row is never silent.
pub fn warn_problems(workloads: &[Workload]) {
    for w in workloads {
        if let Some(p) = &w.problem {
            eprintln!("warning: {}/{}: {p}", w.namespace, w.display_name());
            eprintln!("  hint: fix the YAML (e.g. with kubectl edit configmap {} -n {}); its images are not shown", w.name, w.namespace);
        }
    }
}

/// Resolves the tags of every Runtime image of `workloads`, with the credentials of the pull
/// secrets they name (one list call). Shared by show, status and pin so all three see the same
/// registry answers.
pub async fn resolve_runtime(
    cluster: &Cluster,
    scope: &Scope,
    workloads: &[Workload],
    matcher: &RuntimeMatcher,
    registry: &RegistryArgs,
) -> Result<HashMap<String, Result<Resolved, RegistryError>>> {
    let mut images = vec![];
    let mut secrets = BTreeSet::new();
    for w in workloads {
        for c in &w.containers {
            if let Ok(i) = ImageRef::parse(&c.image) {
                if matcher.is_runtime(&i) {
                    images.push(i);
                    for s in &w.pull_secrets {
                        secrets.insert((w.namespace.clone(), s.clone()));
                    }
                }
            }
        }
    }
    let creds = cluster.pull_secrets(scope, &secrets).await;
    let resolver = resolver(registry, false)?.with_pull_secrets(creds);
    Ok(resolve_tags(&resolver, images).await)
}

/// Lists the Airflow workloads in scope; for named releases without `-n`, looks everywhere.
pub async fn load(
    cluster: &Cluster,
    g: &Namespaces,
    releases: &[String],
) -> Result<(Scope, crate::kube::client::Snapshot, Vec<Workload>)> {
    let scope = if !releases.is_empty() && g.namespace.is_none() {
        Scope::All
    } else {
        cluster.scope(g)
    };
    cluster.check_namespace(&scope).await?;
    let snap = cluster
        .fetch_airflow(&scope, &airflow_selector(releases))
        .await?;
    let workloads = inventory::workloads(&snap);
    let found: BTreeSet<&str> = workloads.iter().map(|w| w.release.as_str()).collect();
    let missing: Vec<&String> = releases
        .iter()
        .filter(|r| !found.contains(r.as_str()))
        .collect();
    if !missing.is_empty() {
        let where_ = scope
            .namespace()
            .map(|n| format!("namespace {n:?}"))
            .unwrap_or_else(|| "any namespace".into());
        return Err(Error::new(format!(
            "no Airflow Deployment with release {} in {where_}",
            missing.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")
        ))
        .hint("list releases with `kubectl astro-sha show -A`; release names look like quasaric-sun-1234"));
    }
    Ok((scope, snap, workloads))
}

pub async fn run(g: &GlobalArgs, args: &ShowArgs) -> Result<u8> {
    let cluster = Cluster::connect(&g.connect()).await?;
    let (scope, snap, workloads) = load(&cluster, &g.namespaces(), &args.releases).await?;
    warn_problems(&workloads);
    let matcher = RuntimeMatcher::new(&args.runtime.runtime_repository, args.runtime.all_images);
    let resolved = resolve_runtime(&cluster, &scope, &workloads, &matcher, &args.registry).await?;
    let rep = report(&workloads, &snap.pods, &matcher, &resolved);

    match output::structured(&rep, g.output)? {
        Some(s) => output::print(&s)?,
        None if rep.items.is_empty() => {
            let where_ = scope
                .namespace()
                .map(|n| format!("namespace {n:?}"))
                .unwrap_or_else(|| "any namespace".into());
            eprintln!("No Runtime containers found in {where_} (Airflow workloads are found by label tier=airflow; try -A, or --all-images).");
        }
        None => output::print(&render_table(
            &rep,
            g.output == OutputFormat::Wide,
            g.no_headers,
            output::color_enabled(),
        ))?,
    }
    if args.check {
        let bad = rep
            .items
            .iter()
            .filter(|r| r.state != Status::Pinned)
            .count();
        if bad > 0 || rep.items.is_empty() {
            eprintln!(
                "check failed: {bad} of {} Runtime containers are not pinned and running their pin",
                rep.items.len()
            );
            return Ok(EXIT_NOT_OK);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(d: &str) -> Result<Resolved, RegistryError> {
        Ok(Resolved {
            source: String::new(),
            mirrored: false,
            digest: d.into(),
            media_type: String::new(),
            platforms: vec![],
            platform_digest: None,
        })
    }

    #[test]
    fn states() {
        let a = "sha256:a";
        let b = "sha256:b";
        assert_eq!(
            status(None, Some(&res(a)), &Running::Unknown),
            Status::TagOnly
        );
        assert_eq!(
            status(Some(a), Some(&res(a)), &Running::Digest(a.into())),
            Status::Pinned
        );
        assert_eq!(
            status(Some(a), Some(&res(b)), &Running::Digest(a.into())),
            Status::Drifted
        );
        assert_eq!(
            status(Some(a), Some(&res(a)), &Running::Digest(b.into())),
            Status::RunningDiffers
        );
        assert_eq!(
            status(
                Some(a),
                Some(&res(a)),
                &Running::Mixed(vec![a.into(), b.into()])
            ),
            Status::RunningDiffers
        );
        let nf = Err(RegistryError::NotFound {
            host: "h".into(),
            repository: "r".into(),
            reference: "t".into(),
        });
        assert_eq!(
            status(None, Some(&nf), &Running::Unknown),
            Status::Unresolved("not found".into())
        );
        assert_eq!(
            status(Some(a), None, &Running::Unknown),
            Status::Pinned,
            "digest-only reference without tag"
        );
    }
}
