//! The Astronomer platform as its Houston Deployment shows it: which namespace and Helm release
//! it is, the chart version on Houston's label, and what Houston's pod spec mounts; and the one
//! choice of Houston among the Deployments a discovery listed (`kube::platform::discover` lists
//! them). Pure: the Deployments come in as data.

use k8s_openapi::api::apps::v1::Deployment;
use serde::Serialize;
use std::collections::BTreeSet;

use crate::core::names::{HOUSTON_SELECTOR, RELEASES_DATA_KEY};
use crate::error::{Error, ErrorKind, Result};

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

    /// The platform Houston's Deployment belongs to: its namespace, and its Helm release (the
    /// `release` label, else the name before `-houston`).
    pub(crate) fn of(d: Deployment) -> Result<Platform> {
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

/// Why no one Houston could be chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NoHouston {
    /// No Deployment labelled `component=houston` where discovery looked.
    None,
    /// Houstons in several namespaces: which platform is meant cannot be told.
    SeveralNamespaces {
        namespaces: Vec<String>,
        /// `namespace/name` of each, sorted.
        houstons: Vec<String>,
    },
    /// Several Houstons in one namespace, none of them the conventional `<release>-houston`.
    SeveralInOne {
        namespace: String,
        houstons: Vec<String>,
    },
}

impl NoHouston {
    /// The error a command that needs the platform stops with. `explicit` is the namespace the
    /// user gave (`--platform-namespace`): then the hint does not ask for it again, it says
    /// that namespace has no Houston and how to find the one that has (issue 23).
    pub(crate) fn error(&self, explicit: Option<&str>) -> Error {
        match self {
            NoHouston::None => {
                let where_ = match explicit {
                    Some(ns) => format!("in namespace {ns:?}"),
                    None => "in any namespace".into(),
                };
                Error::new(format!(
                    "no platform found: no Houston Deployment (label {HOUSTON_SELECTOR}) {where_}"
                ))
                .hint(none_hint(explicit))
                .kind(ErrorKind::NotFound)
            }
            NoHouston::SeveralNamespaces { namespaces, houstons } => Error::new(format!(
                "Houston Deployments (label {HOUSTON_SELECTOR}) in several namespaces: {} ({})",
                namespaces.join(", "),
                houstons.join(", ")
            ))
            .hint("pass --platform-namespace NAMESPACE to choose the platform"),
            NoHouston::SeveralInOne { namespace, houstons } => Error::new(format!(
                "several Houston Deployments found in namespace {namespace:?}: {}",
                houstons.join(", ")
            ))
            .hint(format!(
                "none is named <release>-houston: only Houston should carry the label {HOUSTON_SELECTOR} in namespace {namespace}"
            )),
        }
    }
}

/// What to do when no Houston was found: name the namespace given, or ask for one.
pub(crate) fn none_hint(explicit: Option<&str>) -> String {
    match explicit {
        Some(ns) => format!(
            "namespace {ns} (--platform-namespace) has no Houston; `kubectl get deployments -A -l {HOUSTON_SELECTOR}` shows the namespace Houston runs in: pass that one"
        ),
        None => "pass --platform-namespace NAMESPACE (where Astronomer's Houston runs, usually `astronomer`)".into(),
    }
}

/// The one choice of Houston among the Deployments labelled `component=houston` that a discovery
/// listed (in `explicit`, or in every namespace): the only one; among several in one namespace
/// the conventional `<release>-houston`; otherwise why none can be chosen.
pub(crate) fn choose_houston(
    houstons: Vec<Deployment>,
    explicit: Option<&str>,
) -> std::result::Result<Deployment, NoHouston> {
    let mut found: Vec<Deployment> = houstons
        .into_iter()
        .filter(|d| explicit.is_none_or(|ns| d.metadata.namespace.as_deref() == Some(ns)))
        .collect();
    found.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    if found.len() <= 1 {
        return found.pop().ok_or(NoHouston::None);
    }
    let names: Vec<String> = found
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d.metadata.namespace.clone().unwrap_or_default(),
                d.metadata.name.clone().unwrap_or_default()
            )
        })
        .collect();
    let namespaces: BTreeSet<String> = found
        .iter()
        .map(|d| d.metadata.namespace.clone().unwrap_or_default())
        .collect();
    if namespaces.len() > 1 {
        return Err(NoHouston::SeveralNamespaces {
            namespaces: namespaces.into_iter().collect(),
            houstons: names,
        });
    }
    // In one namespace, the conventional `<release>-houston`.
    match found.iter().position(|d| {
        let name = d.metadata.name.clone().unwrap_or_default();
        release_of(d).is_some_and(|r| name == format!("{r}-houston"))
    }) {
        Some(i) => Ok(found.swap_remove(i)),
        None => Err(NoHouston::SeveralInOne {
            namespace: namespaces.into_iter().next().unwrap_or_default(),
            houstons: names,
        }),
    }
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
/// `charts/astronomer/templates/_helpers.yaml`). `None` when Houston mounts none.
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

    /// The one platform of a 0.37.4 release `astronomer` whose Houston mounts no ConfigMap.
    pub(crate) fn unmounted_platform() -> Platform {
        pick(
            vec![houston(
                "astronomer",
                "astronomer-houston",
                Some("astronomer"),
                "astronomer-0.37.4",
                &[],
            )],
            None,
        )
        .unwrap()
    }

    /// The platform `choose_houston` gives, or its error as a command that needs one says it.
    pub(crate) fn pick(houstons: Vec<Deployment>, explicit: Option<&str>) -> Result<Platform> {
        choose_houston(houstons, explicit)
            .map_err(|why| why.error(explicit))
            .and_then(Platform::of)
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

    /// What import's discovery asserted of its own picker before the two merged: the namespace
    /// of the only Houston, a hint that names the flag, the namespaces of several.
    #[test]
    fn one_choice_for_every_command() {
        let one = houston("astronomer", "astronomer-houston", None, "c-1", &[]);
        let d = choose_houston(vec![one.clone()], None).unwrap();
        assert_eq!(d.metadata.namespace.as_deref(), Some("astronomer"));
        let none = choose_houston(vec![], None).unwrap_err();
        assert_eq!(none, NoHouston::None);
        assert!(none
            .error(None)
            .hint
            .unwrap()
            .contains("--platform-namespace"));
        let second = houston("second", "second-houston", None, "c-1", &[]);
        let e = choose_houston(vec![second, one.clone()], None)
            .unwrap_err()
            .error(None);
        assert!(
            e.message
                .contains("in several namespaces: astronomer, second"),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("--platform-namespace"));
        // Several in one namespace: the conventional <release>-houston, whichever comes first.
        let stray = houston("astronomer", "a-look-alike", Some("x"), "c-1", &[]);
        let d = choose_houston(vec![stray.clone(), one], Some("astronomer")).unwrap();
        assert_eq!(d.metadata.name.as_deref(), Some("astronomer-houston"));
        let other = houston("astronomer", "b-look-alike", Some("y"), "c-1", &[]);
        assert!(matches!(
            choose_houston(vec![stray, other], None),
            Err(NoHouston::SeveralInOne { .. })
        ));
    }
}
