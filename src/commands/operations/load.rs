//! The read pipeline `show`, `status`, `pin` and `unpin` share: list the Airflow workloads in
//! scope, turn them into the model, and resolve their Runtime tags with the pull secrets they name.

use std::collections::{BTreeSet, HashMap};

use crate::core::inventory::{self, RuntimeMatcher, Snapshot, Workload};
use crate::core::state::lookup_ref;
use crate::error::{Error, Result};
use crate::kube::client::{airflow_selector, Cluster, Namespaces, Scope};
use crate::output;
use crate::registry::{ImageRef, RegistryError, Resolved, Resolver};

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
    registry: crate::registry::Options,
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
    let resolver = Resolver::new(registry)?.with_pull_secrets(creds);
    Ok(resolve_tags(&resolver, images).await)
}

/// Lists the Airflow workloads in scope; for named releases without `-n`, looks everywhere.
pub async fn load(
    cluster: &Cluster,
    g: &Namespaces,
    releases: &[String],
) -> Result<(Scope, Snapshot, Vec<Workload>)> {
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
