//! Storing the plan in the releases ConfigMap (optimistic concurrency: a 409 re-reads, re-plans
//! and retries) and restarting what mounts it with subPath.

use k8s_openapi::api::core::v1::ConfigMap;

use super::{ImportArgs, Run};
use crate::args::DryRun;
use crate::core::catalog::Catalog;
use crate::core::catalog_import::{
    self, annotations, desired_configmap, existing_catalog, other_data_size, stored_catalog,
    DesiredConfigMap, ImportPlan, MissingAllowed,
};
use crate::core::rollout::Mounting;
use crate::error::{Error, ErrorKind, Result};
use crate::kube::client::Cluster;
use crate::kube::restart;

/// Writes attempted before giving up on a ConfigMap that keeps changing under us.
const MAX_WRITE_ATTEMPTS: usize = 5;

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

/// The releases ConfigMap being written.
pub(super) struct Destination<'a> {
    pub(super) cluster: &'a Cluster,
    pub(super) ns: &'a str,
    pub(super) name: &'a str,
    pub(super) target: &'a str,
}

/// What storing the plan came to.
pub(super) struct Stored {
    /// The plan as written: after a conflict, the one re-run against the other writer's copy.
    pub(super) plan: ImportPlan,
    /// Missing tags imported without a digest (--allow-missing), for the warning.
    pub(super) allowed: Option<MissingAllowed>,
    /// Whether the ConfigMap was written (not a dry run).
    pub(super) written: bool,
    /// Whether the catalog's content changed (what a restart depends on).
    pub(super) changed: bool,
}

/// Creates or replaces the ConfigMap; on a conflict (409) reads it again, merges and retries.
pub(super) async fn write_configmap(
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
pub(super) async fn restart_targets(
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
pub(super) async fn after_write(
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
