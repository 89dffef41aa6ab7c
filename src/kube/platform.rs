//! The Astronomer platform in the cluster: which namespace and Helm release it is (found from
//! Houston's Deployment), its Houston config ConfigMap, its Helm release, and what Houston's pod
//! spec mounts. Pure pickers are separate from the reads so they are tested on fixtures.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::Resource;
use serde::Serialize;
use std::collections::BTreeSet;

use crate::core::helm;
use crate::error::{Error, ErrorKind, Result};
use crate::kube::client::{Cluster, Scope};

pub(crate) use crate::core::names::{HOUSTON_SELECTOR, LOCAL_PRODUCTION_KEY, RELEASES_DATA_KEY};

#[derive(Clone, Debug)]
pub(crate) struct Platform {
    pub(crate) namespace: String,
    /// The platform's Helm release name (`astronomer` usually).
    pub(crate) release: String,
    pub(crate) houston: Deployment,
}

impl Platform {
    pub(crate) fn houston_name(&self) -> String {
        self.houston.metadata.name.clone().unwrap_or_default()
    }

    pub(crate) fn config_map(&self) -> String {
        format!("{}-houston-config", self.release)
    }

    /// `chart: astronomer-0.37.4` on Houston's Deployment: the platform chart version, for when
    /// the Helm release Secret cannot be read.
    pub(crate) fn chart_version_from_label(&self) -> Option<String> {
        let chart = self.houston.metadata.labels.as_ref()?.get("chart")?;
        // `astronomer-2.1.0-rc.1`: the version starts at the first digit that follows a `-`.
        let start = chart
            .char_indices()
            .find(|(i, c)| *i > 0 && c.is_ascii_digit() && chart[..*i].ends_with('-'))
            .map(|(i, _)| i)?;
        Some(chart[start..].to_string())
    }
}

/// Chooses the platform among listed Houston Deployments. Pure.
pub(crate) fn pick(
    houstons: Vec<Deployment>,
    explicit_namespace: Option<&str>,
) -> Result<Platform> {
    let where_ = match explicit_namespace {
        Some(ns) => format!("in namespace {ns:?}"),
        None => "in any namespace".into(),
    };
    let mut found: Vec<Deployment> = houstons
        .into_iter()
        .filter(|d| explicit_namespace.is_none_or(|ns| d.metadata.namespace.as_deref() == Some(ns)))
        .collect();
    if found.is_empty() {
        return Err(Error::new(format!(
            "no platform found: no Houston Deployment (label {HOUSTON_SELECTOR}) {where_}"
        ))
        .hint(match explicit_namespace {
            // it was passed: saying "pass --platform-namespace" again would not help
            Some(_) => format!("check the namespace: `kubectl get deployments -A -l {HOUSTON_SELECTOR}` shows where Houston runs"),
            None => "pass --platform-namespace NAMESPACE (where Astronomer's Houston runs, usually `astronomer`)".into(),
        }));
    }
    if found.len() > 1 {
        let mut names: Vec<String> = found
            .iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    d.metadata.namespace.clone().unwrap_or_default(),
                    d.metadata.name.clone().unwrap_or_default()
                )
            })
            .collect();
        names.sort();
        // In one namespace, prefer the conventional `<release>-houston`.
        if explicit_namespace.is_some() {
            if let Some(i) = found.iter().position(|d| {
                let name = d.metadata.name.clone().unwrap_or_default();
                release_of(d).is_some_and(|r| name == format!("{r}-houston"))
            }) {
                let d = found.swap_remove(i);
                return platform_of(d);
            }
        }
        return Err(Error::new(format!(
            "several Houston Deployments found {where_}: {}",
            names.join(", ")
        ))
        .hint("pass --platform-namespace NAMESPACE to choose the platform"));
    }
    platform_of(found.remove(0))
}

fn release_of(d: &Deployment) -> Option<String> {
    d.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("release"))
        .cloned()
        .or_else(|| {
            d.metadata
                .name
                .as_deref()
                .and_then(|n| n.strip_suffix("-houston"))
                .map(str::to_string)
        })
}

fn platform_of(d: Deployment) -> Result<Platform> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let release = release_of(&d).ok_or_else(|| {
        Error::new(format!(
            "cannot tell the platform release of Houston Deployment {name}: no `release` label"
        ))
        .hint("the platform chart labels Houston with release=<platform release>")
    })?;
    Ok(Platform {
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        release,
        houston: d,
    })
}

/// What a command needs to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// The platform itself: its Houston Deployment and Helm release; anything else is an error
    /// (pin, unpin, enable, status).
    Platform,
    /// Its namespace only (`--platform-namespace`, else where Houston runs). Houston is looked up
    /// to check its wiring: a namespace without one, or without the right to list it, is
    /// accepted with a note (import writes its ConfigMap there either way).
    Namespace,
}

/// What discovery found.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub(crate) namespace: String,
    /// Houston's Deployment, when it could be listed.
    pub(crate) houston: Option<Deployment>,
    /// With `Need::Platform`: the platform (namespace, Helm release, Houston).
    pub(crate) platform: Option<Platform>,
    /// Why Houston's wiring could not be checked (`Need::Namespace`).
    pub(crate) note: Option<String>,
}

/// The one Houston discovery: Houston's Deployment (label `component=houston`) in
/// `--platform-namespace`, or in every namespace; how strict it is depends on `need`.
pub(crate) async fn discover(
    cluster: &Cluster,
    explicit: Option<&str>,
    need: Need,
) -> Result<Found> {
    match need {
        Need::Platform => {
            let p = find_platform(cluster, explicit).await?;
            Ok(Found {
                namespace: p.namespace.clone(),
                houston: Some(p.houston.clone()),
                platform: Some(p),
                note: None,
            })
        }
        Need::Namespace => find_namespace(cluster, explicit).await,
    }
}

/// Finds the platform (`Need::Platform`).
pub(crate) async fn find(cluster: &Cluster, explicit_namespace: Option<&str>) -> Result<Platform> {
    discover(cluster, explicit_namespace, Need::Platform)
        .await?
        .platform
        .ok_or_else(|| Error::new("no platform found").hint("pass --platform-namespace NAMESPACE"))
}

async fn find_platform(cluster: &Cluster, explicit_namespace: Option<&str>) -> Result<Platform> {
    let scope = match explicit_namespace {
        Some(ns) => Scope::Namespace(ns.to_string()),
        None => Scope::All,
    };
    let houstons = cluster
        .list::<Deployment>(&scope, HOUSTON_SELECTOR, "deployments.apps")
        .await
        .map_err(|e| {
            if explicit_namespace.is_none() && e.kind == ErrorKind::Forbidden {
                e.context("looking for the platform in every namespace")
                    .hint("pass --platform-namespace NAMESPACE (usually `astronomer`): listing Deployments in every namespace is not allowed")
            } else {
                e
            }
        })?;
    pick(houstons, explicit_namespace)
}

async fn find_namespace(cluster: &Cluster, ns: Option<&str>) -> Result<Found> {
    let lp = ListParams::default().labels(HOUSTON_SELECTOR);
    let Some(ns) = ns else {
        let path = Deployment::url_path(&(), None);
        let list = cluster.list_pages(&path, &lp, "deployments.apps", Some).await.map_err(|e| {
            let err = cluster.err(e, "list", "deployments.apps", None);
            let hint = err.hint.clone().unwrap_or_default();
            err.hint(format!(
                "{hint}; or pass --platform-namespace NS to skip the cluster-wide search for Houston"
            ))
        })?;
        let (namespace, houston) = choose_platform(&list)?;
        tracing::info!(
            namespace,
            "platform namespace found from Houston's Deployment"
        );
        return Ok(Found {
            namespace,
            houston: Some(houston),
            note: None,
            platform: None,
        });
    };
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    match namespaces.get(ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(Error::new(format!("platform namespace {ns:?} not found")).hint(
                format!("pass the namespace Houston runs in (`kubectl get deployments -A -l {HOUSTON_SELECTOR}`)"),
            ))
        }
        // May not read namespaces: the ConfigMap calls below will tell.
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        Err(e) => return Err(cluster.err(e, "get", "namespaces", None)),
    }
    let path = Deployment::url_path(&(), Some(ns));
    match cluster
        .list_pages(&path, &lp, "deployments.apps", Some)
        .await
    {
        Ok(list) => {
            let mut items: Vec<Deployment> = list;
            items.sort_by_key(|d| d.metadata.name.clone());
            let houston = items.into_iter().next();
            let note = houston.is_none().then(|| {
                format!("no Houston Deployment (label {HOUSTON_SELECTOR}) in namespace {ns:?}: is it the platform namespace? Houston's wiring was not checked")
            });
            Ok(Found {
                namespace: ns.to_string(),
                houston,
                note,
                platform: None,
            })
        }
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(Found {
            namespace: ns.to_string(),
            houston: None,
            platform: None,
            note: Some(format!("may not list deployments in namespace {ns:?}, so Houston's wiring was not checked (grant `list` on deployments.apps to check it)")),
        }),
        Err(e) => Err(cluster.err(e, "list", "deployments.apps", Some(ns))),
    }
}

/// Picks the platform namespace from Houston Deployments listed across namespaces.
pub(crate) fn choose_platform(houstons: &[Deployment]) -> Result<(String, Deployment)> {
    let namespaces: BTreeSet<&str> = houstons
        .iter()
        .filter_map(|d| d.metadata.namespace.as_deref())
        .collect();
    match namespaces.len() {
        0 => Err(Error::new(format!(
            "cannot find the platform namespace: no Deployment labelled {HOUSTON_SELECTOR} (Houston) in any namespace"
        ))
        .hint("pass --platform-namespace NS (the namespace of the Astronomer platform, usually astronomer)")),
        1 => {
            let mut sorted: Vec<&Deployment> = houstons.iter().collect();
            sorted.sort_by_key(|d| d.metadata.name.clone());
            let d = sorted[0].clone();
            Ok((d.metadata.namespace.clone().unwrap_or_default(), d))
        }
        _ => Err(Error::new(format!(
            "Houston Deployments (label {HOUSTON_SELECTOR}) in several namespaces: {}",
            namespaces.into_iter().collect::<Vec<_>>().join(", ")
        ))
        .hint("pass --platform-namespace NS to say which platform to import into")),
    }
}

/// The Helm release Secrets of the platform (one list call, by label).
pub(crate) async fn release_secrets(
    cluster: &Cluster,
    namespace: &str,
    release: &str,
) -> std::result::Result<Vec<Secret>, kube::Error> {
    let path = Secret::url_path(&(), Some(namespace));
    let lp = ListParams::default().labels(&helm::selector(release));
    cluster.list_pages(&path, &lp, "secrets", Some).await
}

/// How Houston's pod spec refers to a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Mount {
    /// A pod volume whose `configMap.name` is it.
    pub(crate) volume: Option<String>,
    /// Where a container mounts that volume, and the `subPath` if any.
    pub(crate) mount_path: Option<String>,
    pub(crate) sub_path: Option<String>,
}

impl Mount {
    pub(crate) fn mounted(&self) -> bool {
        self.volume.is_some()
    }
}

/// Whether a Deployment's pod spec has a volume for ConfigMap `name` (plain or projected), and
/// where it is mounted.
pub(crate) fn mount_of(d: &Deployment, name: &str) -> Mount {
    let Some(spec) = d.spec.template.spec.as_ref() else {
        return Mount::default();
    };
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| {
            v.config_map.as_ref().is_some_and(|c| c.name == name)
                || v.projected.as_ref().is_some_and(|p| {
                    p.sources
                        .iter()
                        .flatten()
                        .any(|src| src.config_map.as_ref().is_some_and(|c| c.name == name))
                })
        })
        .map(|v| v.name.clone());
    let mut m = Mount {
        volume: volume.clone(),
        ..Mount::default()
    };
    if let Some(vol) = volume {
        if let Some(vm) = spec
            .containers
            .iter()
            .flat_map(|c| c.volume_mounts.iter().flatten())
            .find(|vm| vm.name == vol)
        {
            m.mount_path = Some(vm.mount_path.clone());
            m.sub_path = vm.sub_path.clone();
        }
    }
    m
}

/// The ConfigMap Houston reads its releases catalog from: the one whose volume a container mounts
/// at `…/astro_runtime_releases.json` (the chart mounts it at `/houston/astro_runtime_releases.json`
/// with that `subPath`, `houston_volume_mounts` in astronomer/astronomer's
/// `charts/astronomer/templates/_helpers.yaml`). `None` when Houston mounts none. Pure.
pub(crate) fn releases_configmap_of(d: &Deployment) -> Option<String> {
    let spec = d.spec.template.spec.as_ref()?;
    let file = format!("/{RELEASES_DATA_KEY}");
    let volume = spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .find(|m| {
            m.sub_path.as_deref() == Some(RELEASES_DATA_KEY) || m.mount_path.ends_with(&file)
        })?
        .name
        .clone();
    spec.volumes
        .iter()
        .flatten()
        .find(|v| v.name == volume)?
        .config_map
        .as_ref()
        .map(|c| c.name.clone())
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
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(cluster.client.clone(), &platform.namespace);
    let cm = api.get_opt(&platform.config_map()).await.ok().flatten()?;
    let text = cm.data.as_ref()?.get(LOCAL_PRODUCTION_KEY)?;
    let tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    let major = platform
        .chart_version_from_label()
        .as_deref()
        .and_then(chart_major);
    FlagState::read(&tree, Target::LocalProduction).enabled(major)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn houston(
        ns: &str,
        name: &str,
        release: Option<&str>,
        chart: &str,
        volumes: &[&str],
    ) -> Deployment {
        let vols: Vec<serde_json::Value> = volumes
            .iter()
            .map(|cm| serde_json::json!({"name": format!("vol-{cm}"), "configMap": {"name": cm}}))
            .collect();
        let mounts: Vec<serde_json::Value> = volumes
            .iter()
            .map(|cm| serde_json::json!({"name": format!("vol-{cm}"), "mountPath": format!("/houston/{cm}"), "subPath": "astro_runtime_releases.json"}))
            .collect();
        let mut labels = serde_json::json!({"component": "houston", "chart": chart});
        if let Some(r) = release {
            labels["release"] = serde_json::json!(r);
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"selector": {}, "template": {"spec": {
                "containers": [{"name": "houston", "volumeMounts": mounts}],
                "volumes": vols}}}
        }))
        .unwrap()
    }

    #[test]
    fn picks_the_only_houston() {
        let p = pick(
            vec![houston(
                "astronomer",
                "astronomer-houston",
                Some("astronomer"),
                "astronomer-0.37.4",
                &[],
            )],
            None,
        )
        .unwrap();
        assert_eq!(p.namespace, "astronomer");
        assert_eq!(p.release, "astronomer");
        assert_eq!(p.config_map(), "astronomer-houston-config");
        assert_eq!(p.chart_version_from_label().as_deref(), Some("0.37.4"));
        let p = pick(
            vec![houston(
                "x",
                "plat-houston",
                None,
                "astronomer-2.1.0-rc.1",
                &[],
            )],
            Some("x"),
        )
        .unwrap();
        assert_eq!(
            p.release, "plat",
            "release from the name when the label is missing"
        );
        assert_eq!(p.chart_version_from_label().as_deref(), Some("2.1.0-rc.1"));
    }

    #[test]
    fn none_or_several_is_a_clear_error() {
        let e = pick(vec![], Some("nope")).unwrap_err();
        assert!(e.message.contains("in namespace \"nope\""), "{}", e.message);
        // --platform-namespace was given: the hint does not ask for it again (issue 23)
        let hint = e.hint.unwrap();
        assert!(!hint.contains("pass --platform-namespace"), "{hint}");
        assert!(
            hint.contains("kubectl get deployments -A -l component=houston"),
            "{hint}"
        );
        let e = pick(vec![], None).unwrap_err();
        assert!(e.hint.unwrap().contains("pass --platform-namespace"));
        let e = pick(
            vec![
                houston("a", "a-houston", Some("a"), "astronomer-1.0.0", &[]),
                houston("b", "b-houston", Some("b"), "astronomer-1.0.0", &[]),
            ],
            None,
        )
        .unwrap_err();
        assert!(
            e.message.contains("a/a-houston, b/b-houston"),
            "{}",
            e.message
        );
    }

    #[test]
    fn mounts() {
        let d = houston(
            "a",
            "a-houston",
            Some("a"),
            "c-1",
            &["astro-runtime-base-images"],
        );
        let m = mount_of(&d, "astro-runtime-base-images");
        assert!(m.mounted());
        assert_eq!(m.sub_path.as_deref(), Some("astro_runtime_releases.json"));
        assert!(!mount_of(&d, "other").mounted());
    }

    #[test]
    fn the_releases_configmap_is_the_one_houston_mounts_at_the_catalog_path() {
        let d = houston(
            "astronomer",
            "astronomer-houston",
            Some("astronomer"),
            "astronomer-0.37.4",
            &["my-releases"],
        );
        assert_eq!(releases_configmap_of(&d).as_deref(), Some("my-releases"));
        let none = houston(
            "astronomer",
            "astronomer-houston",
            Some("astronomer"),
            "astronomer-0.37.4",
            &[],
        );
        assert_eq!(releases_configmap_of(&none), None);
    }
}
