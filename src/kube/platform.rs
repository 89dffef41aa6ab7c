//! The Astronomer platform in the cluster: the one Houston discovery (Houston's Deployment,
//! label `component=houston`, in `--platform-namespace` or in every namespace), the platform's
//! Helm release Secrets, and whether Houston runs with the feature on. What the Deployments say
//! (the platform, its mounts) and which Houston to choose are pure, in `core::platform`.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::Resource;

use crate::core::helm;
use crate::error::{Error, ErrorKind, Result};
use crate::kube::client::{Cluster, Scope};

pub(crate) use crate::core::names::{HOUSTON_SELECTOR, LOCAL_PRODUCTION_KEY};
pub(crate) use crate::core::platform::{
    choose_houston, mount_of, none_hint, releases_configmap_of, NoHouston, Platform,
};

/// What a command needs to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// The platform itself: its Houston Deployment and Helm release; anything else is an error
    /// (pin, unpin, enable, status, and show's catalog read).
    Platform,
    /// Its namespace only (`--platform-namespace`, else where Houston runs). Houston is looked up
    /// to check its wiring: a namespace given without one (or with several), or without the
    /// right to list them, is accepted with a note (import writes its ConfigMap there either way).
    Namespace,
}

/// What discovery found.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub(crate) namespace: String,
    /// Houston's Deployment, when it could be listed and chosen.
    pub(crate) houston: Option<Deployment>,
    /// With `Need::Platform`: the platform (namespace, Helm release, Houston).
    pub(crate) platform: Option<Platform>,
    /// Why Houston's wiring could not be checked (`Need::Namespace`).
    pub(crate) note: Option<String>,
}

/// The one Houston discovery: one list of Houston's Deployment (in `explicit`, or in every
/// namespace), one choice among what it lists (`core::platform::choose_houston`); how strict it
/// is depends on `need`. No Houston is `ErrorKind::NotFound`; a list that is refused keeps its
/// kind (`Forbidden`), so callers that report instead of failing (status) branch on the kind.
pub(crate) async fn discover(
    cluster: &Cluster,
    explicit: Option<&str>,
    need: Need,
) -> Result<Found> {
    if let (Need::Namespace, Some(ns)) = (need, explicit) {
        check_platform_namespace(cluster, ns).await?;
    }
    let houstons = match list_houstons(cluster, explicit).await {
        Ok(list) => list,
        Err(e) if e.kind == ErrorKind::Forbidden && need == Need::Namespace => {
            if let Some(ns) = explicit {
                return Ok(Found {
                    namespace: ns.to_string(),
                    houston: None,
                    platform: None,
                    note: Some(format!("may not list deployments in namespace {ns:?}, so Houston's wiring was not checked (grant `list` on deployments.apps to check it)")),
                });
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let chosen = choose_houston(houstons, explicit);
    match (need, chosen, explicit) {
        (Need::Platform, Ok(d), _) => {
            let p = Platform::of(d)?;
            Ok(Found {
                namespace: p.namespace.clone(),
                houston: Some(p.houston.clone()),
                platform: Some(p),
                note: None,
            })
        }
        (Need::Namespace, Ok(d), _) => {
            let namespace = d.metadata.namespace.clone().unwrap_or_default();
            tracing::info!(namespace, "platform namespace found from Houston's Deployment");
            Ok(Found {
                namespace,
                houston: Some(d),
                platform: None,
                note: None,
            })
        }
        (Need::Namespace, Err(why), Some(ns)) => Ok(Found {
            namespace: ns.to_string(),
            houston: None,
            platform: None,
            note: Some(match why {
                NoHouston::None => format!("no Houston Deployment (label {HOUSTON_SELECTOR}) in namespace {ns:?}: is it the platform namespace? Houston's wiring was not checked"),
                other => format!("{}: Houston's wiring was not checked", other.error(explicit).message),
            }),
        }),
        (_, Err(why), _) => Err(why.error(explicit)),
    }
}

/// Finds the platform (`Need::Platform`).
pub(crate) async fn find(cluster: &Cluster, explicit_namespace: Option<&str>) -> Result<Platform> {
    discover(cluster, explicit_namespace, Need::Platform)
        .await?
        .platform
        .ok_or_else(|| NoHouston::None.error(explicit_namespace))
}

/// The one list of Houston Deployments. A refused list across every namespace says to pass
/// `--platform-namespace`, which needs rights in one namespace only.
async fn list_houstons(cluster: &Cluster, explicit: Option<&str>) -> Result<Vec<Deployment>> {
    let scope = match explicit {
        Some(ns) => Scope::Namespace(ns.to_string()),
        None => Scope::All,
    };
    cluster
        .list::<Deployment>(&scope, HOUSTON_SELECTOR, "deployments.apps")
        .await
        .map_err(|e| {
            if explicit.is_none() && e.kind == ErrorKind::Forbidden {
                e.context("looking for the platform in every namespace")
                    .hint("pass --platform-namespace NAMESPACE (usually `astronomer`): listing Deployments in every namespace is not allowed")
            } else {
                e
            }
        })
}

/// A `--platform-namespace` that does not exist is an error (a list there is silently empty); a
/// user who may not read namespaces is not stopped (the reads that follow will tell).
async fn check_platform_namespace(cluster: &Cluster, ns: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    match namespaces.get(ns).await.map_err(|e| cluster.err(e, "get", "namespaces", None)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Err(Error::new(format!("platform namespace {ns:?} not found")).hint(
            format!("pass the namespace Houston runs in (`kubectl get deployments -A -l {HOUSTON_SELECTOR}`)"),
        ).kind(ErrorKind::NotFound)),
        Err(e) if e.kind == ErrorKind::Forbidden => Ok(()),
        Err(e) => Err(e),
    }
}

/// The Helm release Secrets of the platform (one list call, by label).
pub(crate) async fn release_secrets(
    cluster: &Cluster,
    namespace: &str,
    release: &str,
) -> Result<Vec<Secret>> {
    let path = Secret::url_path(&(), Some(namespace));
    let lp = ListParams::default().labels(&helm::selector(release));
    cluster
        .list_pages(&path, &lp, "secrets", Some)
        .await
        .map_err(|e| cluster.err(e, "list", "secrets", Some(namespace)))
}

/// Whether Houston runs with the digest feature on, read from `local-production.yaml` of the
/// platform's `<release>-houston-config` (both schemas, judged for the platform's chart version).
/// `None` when it cannot be told (no Houston found, no rights): callers then say nothing rather
/// than guess.
pub(crate) async fn houston_feature_enabled(
    cluster: &Cluster,
    explicit_namespace: Option<&str>,
) -> Option<bool> {
    use crate::core::values::{chart_major, FlagState, Target};
    let platform = find(cluster, explicit_namespace).await.ok()?;
    let cm = cluster
        .get_configmap(&platform.namespace, &platform.config_map())
        .await
        .ok()
        .flatten()?;
    let text = cm.data.as_ref()?.get(LOCAL_PRODUCTION_KEY)?;
    let tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    let major = platform
        .chart_version_from_label()
        .as_deref()
        .and_then(chart_major);
    FlagState::read(&tree, Target::LocalProduction).enabled(major)
}
