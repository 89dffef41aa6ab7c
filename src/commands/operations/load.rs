//! The read pipeline `show`, `status`, `pin` and `unpin` share: list the Airflow workloads in
//! scope, turn them into the model, and resolve their Runtime tags with the pull secrets they name.

use std::collections::{BTreeSet, HashMap};

use crate::core::inventory::{RuntimeMatcher, Snapshot, Workload};
use crate::core::pullsecrets::Resolutions;
use crate::core::resolution::group_failures;
use crate::core::state::lookup_ref;
use crate::error::{Error, Result};
use crate::kube::client::{Cluster, Namespaces, Scope};
use crate::output;
use crate::registry::{ImageRef, RegistryError, Resolved, Resolver, SourcedCredential};

/// Resolves each group's images with that group's pull-secret credentials (`resolve_as`), with
/// one progress bar and bounded concurrency across all groups. Requests are shared between
/// groups by the resolver's cache wherever the credential is the same. Warns once per distinct
/// failure, with the number of references it cost when several (a host's TLS failure).
async fn resolve_groups(
    resolver: &Resolver,
    groups: Vec<(Vec<SourcedCredential>, Vec<ImageRef>)>,
) -> Vec<HashMap<String, Result<Resolved, RegistryError>>> {
    let mut jobs: Vec<(usize, ImageRef)> = vec![];
    for (g, (_, images)) in groups.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for i in images {
            if let Some(l) = lookup_ref(i) {
                if seen.insert(l.original().to_string()) {
                    jobs.push((g, l));
                }
            }
        }
    }
    let pb = output::progress(jobs.len() as u64, "resolving tags");
    let results: Vec<Result<Resolved, RegistryError>> = {
        use futures::StreamExt;
        let mut out: Vec<Option<Result<Resolved, RegistryError>>> = vec![None; jobs.len()];
        let mut stream = futures::stream::iter(jobs.iter().enumerate())
            .map(|(i, (g, img))| {
                let creds = &groups[*g].0;
                // Each host bounds its own requests (registry::Host's gate), so the bound
                // holds across contexts resolving through this one resolver at once.
                async move { (i, resolver.resolve_as(img, creds).await) }
            })
            .buffer_unordered(resolver.concurrency());
        while let Some((i, r)) = stream.next().await {
            pb.inc(1);
            out[i] = Some(r);
        }
        out.into_iter().flatten().collect()
    };
    pb.finish_and_clear();
    let failed = jobs
        .iter()
        .zip(&results)
        .filter_map(|((_, img), res)| res.as_ref().err().map(|e| (img.original(), e)));
    for f in group_failures(failed) {
        eprintln!("warning: cannot resolve {}", output::safe(&f.message()));
        if let Some(h) = f.error.hint() {
            eprintln!("  hint: {}", output::safe(&h));
        }
    }
    let mut out: Vec<HashMap<String, Result<Resolved, RegistryError>>> =
        vec![HashMap::new(); groups.len()];
    for ((g, img), res) in jobs.into_iter().zip(results) {
        out[g].insert(img.original().to_string(), res);
    }
    resolver.stats.log("registry requests");
    out
}

/// Says which objects could not be read, so a missing row is never silent.
pub(crate) fn warn_problems(workloads: &[Workload]) {
    for w in workloads {
        if let Some(p) = &w.problem {
            eprintln!(
                "warning: {}",
                output::safe(&format!("{}/{}: {p}", w.namespace, w.display_name()))
            );
            eprintln!("  hint: fix the YAML (e.g. with kubectl edit configmap {} -n {}); its images are not shown", w.name, w.namespace);
        }
    }
}

/// Resolves the tags of every Runtime image of `workloads`, each with the credentials its own
/// pods would pull with (its pull secrets or its ServiceAccount's, in its namespace; see
/// `core::pullsecrets`), read with at most two list calls. Workloads whose credentials for every
/// host they use are the same form one group; the resolver shares requests between groups whose
/// credential for a host is the same. Shared by show, status and pin so all three see the same
/// registry answers.
pub(crate) async fn resolve_runtime(
    cluster: &Cluster,
    scope: &Scope,
    workloads: &[Workload],
    matcher: &RuntimeMatcher,
    registry: crate::registry::Options,
) -> Result<Resolutions> {
    let resolver = Resolver::new(registry)?;
    Ok(resolve_runtime_with(cluster, scope, workloads, matcher, &resolver).await)
}

/// [`resolve_runtime`] with a resolver the caller keeps: a run across several contexts passes
/// one, so a tag used on several platforms is asked once per credential (the resolver's cache
/// is keyed by location, tag and pull-secret credential; each context's workloads still bring
/// their own pull secrets).
pub(crate) async fn resolve_runtime_with(
    cluster: &Cluster,
    scope: &Scope,
    workloads: &[Workload],
    matcher: &RuntimeMatcher,
    resolver: &Resolver,
) -> Resolutions {
    let mut runtime: Vec<(&Workload, Vec<ImageRef>)> = vec![];
    for w in workloads {
        let images: Vec<ImageRef> = w
            .containers
            .iter()
            .filter_map(|c| ImageRef::parse(&c.image).ok())
            .filter(|i| matcher.is_runtime(i))
            .collect();
        if !images.is_empty() {
            runtime.push((w, images));
        }
    }
    let using: Vec<&Workload> = runtime.iter().map(|(w, _)| *w).collect();
    let secrets = cluster.pull_secrets(scope, &using).await;
    // Group by the credentials each image host would get: usually one group.
    let mut keys: Vec<Vec<(String, Vec<SourcedCredential>)>> = vec![];
    let mut groups: Vec<(Vec<&Workload>, Vec<ImageRef>)> = vec![];
    for (w, images) in runtime {
        let mut hosts: Vec<String> = images.iter().map(|i| resolver.credential_host(i)).collect();
        hosts.sort();
        hosts.dedup();
        let key: Vec<(String, Vec<SourcedCredential>)> = hosts
            .into_iter()
            .map(|h| {
                let c = secrets.candidates(w, &h);
                (h, c)
            })
            .collect();
        let i = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key.clone());
                groups.push((vec![], vec![]));
                keys.len() - 1
            }
        };
        groups[i].0.push(w);
        groups[i].1.extend(images);
    }
    // Per group, the candidates per host; resolve_as takes one list, so a group whose images
    // span hosts is split per host below.
    let mut jobs: Vec<(Vec<SourcedCredential>, Vec<ImageRef>)> = vec![];
    let mut owners: Vec<usize> = vec![];
    for (gi, (_, images)) in groups.iter().enumerate() {
        for (host, creds) in &keys[gi] {
            let on_host: Vec<ImageRef> = images
                .iter()
                .filter(|i| resolver.credential_host(i) == *host)
                .cloned()
                .collect();
            jobs.push((creds.clone(), on_host));
            owners.push(gi);
        }
    }
    let answers = resolve_groups(resolver, jobs).await;
    let mut merged: Vec<HashMap<String, Result<Resolved, RegistryError>>> =
        vec![HashMap::new(); groups.len()];
    for (gi, a) in owners.into_iter().zip(answers) {
        merged[gi].extend(a);
    }
    let mut out = Resolutions::default();
    for ((ws, _), results) in groups.into_iter().zip(merged) {
        out.add_group(ws, results);
    }
    out
}

/// Lists the Airflow workloads in scope; for named releases without `-n`, looks everywhere.
pub(crate) async fn list_workloads(
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
    let mut snap = cluster.fetch_airflow(&scope, releases).await?;
    let workloads = std::mem::take(&mut snap.workloads);
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
