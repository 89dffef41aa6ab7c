//! The one restart helper: finds the workloads of a namespace whose pod template mounts a
//! ConfigMap and rolls them as `kubectl rollout restart` does (a new `restartedAt` annotation on
//! the pod template). `import` uses it for the releases ConfigMap and `enable --in-cluster` for
//! `<release>-houston-config`: both are mounted with `subPath`, which the kubelet never refreshes.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, Patch};

use crate::core::inventory::Kind;
use crate::core::rollout::{restart_patch, Mounting};
use crate::error::{Error, ErrorKind, Result};
use crate::kube::apply::may_patch;
use crate::kube::client::{Cluster, Scope};

/// Lists Deployments, StatefulSets and CronJobs of `ns` (three list calls; CronJobs only when
/// the server serves them) and picks those that mount `configmap`. Not being allowed to list
/// CronJobs costs only their names (they restart by themselves on their next run).
pub(crate) async fn mounting(cluster: &Cluster, ns: &str, configmap: &str) -> Result<Mounting> {
    let scope = Scope::Namespace(ns.to_string());
    // Both awaited to the end: the error reported is the Deployments' before the StatefulSets',
    // the same on every run (not whichever answered first).
    let (deployments, statefulsets) = tokio::join!(
        cluster.list::<Deployment>(&scope, "", "deployments.apps"),
        cluster.list::<StatefulSet>(&scope, "", "statefulsets.apps"),
    );
    let (deployments, statefulsets) = (deployments?, statefulsets?);
    let cronjobs = match cluster.cronjob_resource().await {
        Ok(Some(ar)) => cluster
            .list_cronjobs(&scope, "", &ar)
            .await
            .inspect_err(
                |e| tracing::info!(error = %e.message, "cannot list CronJobs; not naming them"),
            )
            .unwrap_or_default(),
        _ => vec![],
    };
    Ok(Mounting::find(
        &deployments,
        &statefulsets,
        &cronjobs,
        configmap,
    ))
}

/// Asks the API server (SelfSubjectAccessReview) whether `patch` is allowed on each kind the
/// restart needs, so a missing right stops the run before anything is written. A server that
/// refuses the review itself is not an answer: the writes will tell.
pub(crate) async fn check_rights(cluster: &Cluster, ns: &str, m: &Mounting) -> Result<()> {
    for (kind, needed) in [
        (Kind::Deployment, !m.deployments.is_empty()),
        (Kind::StatefulSet, !m.statefulsets.is_empty()),
    ] {
        if needed && !may_patch(cluster, Some(ns), kind).await {
            let resource = kind.resource();
            return Err(Error::new(format!(
                "forbidden: cannot patch {resource} in namespace {ns:?}, which the restart after the write needs; nothing was written"
            ))
            .hint(format!(
                "ask for `patch` on deployments and statefulsets in {ns} (README, RBAC), or pass --no-restart and restart them yourself"
            ))
            .kind(ErrorKind::Forbidden));
        }
    }
    Ok(())
}

/// Rolls every Deployment and StatefulSet in `m`, in order; returns `kind/name` of each. `what`
/// names the change that was written, for the error when a restart fails after it.
pub(crate) async fn restart(
    cluster: &Cluster,
    ns: &str,
    m: &Mounting,
    what: &str,
) -> Result<Vec<String>> {
    let now = k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second);
    let patch = restart_patch(&now.map(|t| t.to_string()).unwrap_or_default());
    let pp = crate::kube::client::patch_params(false);
    let mut done = vec![];
    for name in &m.deployments {
        let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
        api.patch(name, &pp, &Patch::Merge(&patch))
            .await
            .map_err(|e| restart_failed(cluster, e, "deployments.apps", ns, name, what, &done))?;
        done.push(format!("deployment/{name}"));
    }
    for name in &m.statefulsets {
        let api: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), ns);
        api.patch(name, &pp, &Patch::Merge(&patch))
            .await
            .map_err(|e| restart_failed(cluster, e, "statefulsets.apps", ns, name, what, &done))?;
        done.push(format!("statefulset/{name}"));
    }
    Ok(done)
}

fn restart_failed(
    cluster: &Cluster,
    e: kube::Error,
    resource: &str,
    ns: &str,
    name: &str,
    what: &str,
    done: &[String],
) -> Error {
    let kind = resource
        .split('.')
        .next()
        .unwrap_or(resource)
        .trim_end_matches('s');
    let restarted = if done.is_empty() {
        String::new()
    } else {
        format!(" (restarted: {})", done.join(", "))
    };
    cluster
        .err(e, "patch", resource, Some(ns))
        .context(format!(
            "{what} was written, but restarting {kind}/{name} failed{restarted}"
        ))
        .hint(format!(
            "restart it yourself: kubectl -n {ns} rollout restart {kind}/{name}"
        ))
}
