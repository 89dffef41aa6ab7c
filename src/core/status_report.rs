//! The status report, pure: what `status` read (`Facts`, each read a `Got`) in, the
//! `StatusReport` out — the platform, the feature flag as deployed (Helm values and Houston's
//! rendered config, both schemas), the Runtime releases ConfigMap and its wiring into Houston,
//! the Airflow Deployments by state, whether Houston renders digests, the problems (those many
//! releases share grouped into one line with one fix), what could not be read, and the exit
//! status. `commands::status` gathers the facts; `output::status` draws the screen.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use serde::Serialize;

use crate::core::catalog;
use crate::core::catalog_index::CatalogMatch;
use crate::core::contexts::Outcome;
use crate::core::helm;
use crate::core::names::{
    CATALOG_CHANGED_AT_ANNOTATION, HOUSTON_SELECTOR, IMPORTED_AT_ANNOTATION, LOCAL_PRODUCTION_KEY,
    RELEASES_DATA_KEY,
};
use crate::core::natural_cmp;
use crate::core::platform::{mount_of, none_hint, Platform};
use crate::core::rollout::{self, Mounting, StalePod};
use crate::core::state::{self, StateKey, Status};
use crate::core::values::{self, FlagState, Target};
use crate::error::ExitStatus;

/// The outcome of one read.
#[derive(Clone, Debug)]
pub(crate) enum Got<T> {
    Found(T),
    /// Read fine, but not there (or not usable); the text says what.
    Missing(String),
    /// There, but its content could not be decoded (a Helm release payload); the text says why.
    Broken(String),
    /// RBAC or the API refused; the text names what could not be read.
    Unreadable(String),
    /// Not attempted because something it depends on is unknown.
    NotChecked(String),
}

impl<T> Got<T> {
    pub(crate) fn found(&self) -> Option<&T> {
        match self {
            Got::Found(t) => Some(t),
            _ => None,
        }
    }

    /// What a found value gives; any other outcome is kept as it is.
    pub(crate) fn then<U>(self, f: impl FnOnce(T) -> Got<U>) -> Got<U> {
        match self {
            Got::Found(t) => f(t),
            Got::Missing(w) => Got::Missing(w),
            Got::Broken(w) => Got::Broken(w),
            Got::Unreadable(w) => Got::Unreadable(w),
            Got::NotChecked(w) => Got::NotChecked(w),
        }
    }
}

/// Everything `status` read; the input of the pure report.
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    pub(crate) platform: Got<Platform>,
    pub(crate) helm: Got<helm::Release>,
    pub(crate) local_production: Got<String>,
    pub(crate) releases_configmap_name: String,
    pub(crate) releases_configmap: Got<ConfigMap>,
    /// `all namespaces` or `namespace X`.
    pub(crate) airflow_scope: String,
    pub(crate) airflow: Got<Vec<state::Row>>,
    pub(crate) digest_field: String,
    /// `--platform-namespace`, when given: where the platform reads went without a Houston.
    pub(crate) platform_namespace: Option<String>,
    /// The platform namespace's pods (who still reads an older releases catalog).
    pub(crate) platform_pods: Got<Vec<Pod>>,
    /// The workloads of the platform namespace that mount the releases ConfigMap.
    pub(crate) mounting: Got<Mounting>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlatformSection {
    pub(crate) namespace: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) houston: Option<String>,
    pub(crate) chart_version: Option<String>,
    pub(crate) chart_version_source: Option<String>,
    pub(crate) helm_release_secret: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FlagView {
    #[serde(flatten)]
    pub(crate) state: FlagState,
    /// Whether Houston of this chart version sees the feature on (2.x: only the nested key;
    /// 0.37.x/1.x: only the flat one); `None` when that depends on an unknown chart version.
    pub(crate) enabled: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FeatureSection {
    /// From the Helm release's user values (what the next `helm upgrade` renders).
    pub(crate) helm_values: Option<FlagView>,
    /// From `local-production.yaml` of `<release>-houston-config` (what Houston reads).
    pub(crate) local_production: Option<FlagView>,
    /// What Houston runs with: local-production.yaml, else the Helm values.
    pub(crate) enabled: Option<bool>,
    /// Both read, and they say different things.
    pub(crate) disagree: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReleasesSection {
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
    pub(crate) present: Option<bool>,
    /// Data key exactly `astro_runtime_releases.json`.
    pub(crate) data_key_ok: Option<bool>,
    pub(crate) data_keys: Vec<String>,
    /// Houston's pod spec has a volume for it.
    pub(crate) mounted: Option<bool>,
    pub(crate) mount_path: Option<String>,
    /// Entries under runtimeVersions + runtimeVersionsV3.
    pub(crate) versions: Option<usize>,
    pub(crate) with_digest: Option<usize>,
    pub(crate) imported_at: Option<String>,
    /// When its content last changed (import's annotation, else managedFields).
    pub(crate) changed_at: Option<String>,
    /// Running pods that mount it and started before that change: they read an older copy.
    pub(crate) stale_pods: Vec<StalePod>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReleaseView {
    pub(crate) namespace: String,
    pub(crate) release: String,
    /// The worst state among its Runtime containers.
    pub(crate) state: StateKey,
    pub(crate) containers: usize,
    /// How many containers are in each state.
    pub(crate) by_state: BTreeMap<String, usize>,
    #[serde(skip)]
    pub(crate) workloads_running_differs: Vec<String>,
    /// Workloads with a pinned container none of whose pods reports what it runs.
    #[serde(skip)]
    pub(crate) workloads_running_unknown: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeploymentsSection {
    pub(crate) scope: String,
    pub(crate) readable: bool,
    pub(crate) releases: usize,
    /// Releases per worst state.
    pub(crate) by_state: BTreeMap<String, usize>,
    pub(crate) items: Vec<ReleaseView>,
}

/// Whether Houston renders digests, told by the Airflow Deployments: with the feature on and the
/// catalog mounted, Houston renders each as `repository@sha256:<the catalog's digest>` at its next
/// update (Astronomer's "Create Deployments using Astro Runtime SHA256 digest").
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RenderingSection {
    /// Airflow Deployments whose Runtime containers all run `repository@sha256:…` builds the
    /// releases catalog lists.
    pub(crate) catalog_digests: usize,
    /// Airflow Deployments that run Runtime tags (`repository:tag`, pinned or not).
    pub(crate) tags: usize,
    /// Airflow Deployments that run a `repository@sha256:…` build the catalog lists for no
    /// version, or for another version than it was pinned from.
    pub(crate) unknown_builds: usize,
    /// Airflow Deployments with `repository@sha256:…` builds that could not be judged (no
    /// readable catalog).
    pub(crate) not_judged: usize,
    /// Some Deployment runs the catalog's digests (`true`), none does (`false`); `None` when it
    /// cannot be told (no Deployments, or builds not judged).
    pub(crate) renders_digests: Option<bool>,
    /// Why none does: the feature flag off, the ConfigMap missing or not mounted, Houston not
    /// restarted since the last import, or no Deployment updated since.
    pub(crate) why_not: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Problem {
    pub(crate) problem: String,
    /// The command that fixes it.
    pub(crate) fix: String,
    /// For a problem many releases share (one line, one fix): each of them, with its own fix
    /// where the shared one does not cover it. Listed under the line with `-o wide`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) releases: Vec<ProblemRelease>,
}

/// One release of a grouped problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ProblemRelease {
    pub(crate) namespace: String,
    pub(crate) release: String,
    /// Its own fix (a restart of its workloads), when the group's is not one command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fix: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusReport {
    pub(crate) platform: PlatformSection,
    pub(crate) feature: FeatureSection,
    pub(crate) releases_config_map: ReleasesSection,
    pub(crate) deployments: DeploymentsSection,
    /// Whether Houston renders digests (`None` when the Airflow Deployments could not be read).
    pub(crate) houston_rendering: Option<RenderingSection>,
    pub(crate) problems: Vec<Problem>,
    /// Reads that were refused: "secrets in namespace astronomer (forbidden)".
    pub(crate) could_not_read: Vec<String>,
    /// No problem and nothing unreadable.
    pub(crate) ok: bool,
}

/// How many Runtime versions a releases catalog lists, and how many of them carry a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CatalogCount {
    pub(crate) versions: usize,
    pub(crate) with_digest: usize,
}

/// Counts the versions and those with a digest in a releases catalog.
pub(crate) fn count_catalog(
    json: &str,
    digest_field: &str,
) -> std::result::Result<CatalogCount, String> {
    let field = catalog::DigestField::parse(digest_field)?;
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not valid JSON ({e})"))?;
    let mut versions = 0;
    let mut with_digest = 0;
    let mut maps = 0;
    for (_, m) in catalog::sections(&v) {
        maps += 1;
        for entry in m.values() {
            versions += 1;
            if entry
                .as_object()
                .is_some_and(|e| matches!(field.get(e), Ok(Some(_))))
            {
                with_digest += 1;
            }
        }
    }
    if maps == 0 {
        return Err("neither runtimeVersions nor runtimeVersionsV3 in it".into());
    }
    Ok(CatalogCount {
        versions,
        with_digest,
    })
}

/// The ConfigMap name to check: the flag, else what the Helm values name, else the default.
pub(crate) fn releases_configmap_name(flag: Option<&str>, helm: Option<&helm::Release>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            helm.and_then(|r| {
                r.values
                    .pointer("/astronomer/houston/runtimeReleasesConfigMapName")
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
        })
        .unwrap_or_else(|| values::DEFAULT_RELEASES_CONFIGMAP.to_string())
}

/// Per-release aggregation of `show`'s rows.
pub(crate) fn releases_by_state(rows: &[state::Row]) -> Vec<ReleaseView> {
    let mut map: BTreeMap<(String, String), ReleaseView> = BTreeMap::new();
    for r in rows {
        let key = r.state.kind();
        let v = map
            .entry((r.namespace.clone(), r.release.clone()))
            .or_insert_with(|| ReleaseView {
                namespace: r.namespace.clone(),
                release: r.release.clone(),
                state: StateKey::Pinned,
                containers: 0,
                by_state: BTreeMap::new(),
                workloads_running_differs: vec![],
                workloads_running_unknown: vec![],
            });
        v.containers += 1;
        *v.by_state.entry(key.to_string()).or_insert(0) += 1;
        // StateKey is ordered by severity: a release is as bad as its worst container.
        if key > v.state {
            v.state = key;
        }
        if r.state == Status::RunningDiffers && !v.workloads_running_differs.contains(&r.workload) {
            v.workloads_running_differs.push(r.workload.clone());
        }
        if r.check() == state::Check::Unknown && !v.workloads_running_unknown.contains(&r.workload)
        {
            v.workloads_running_unknown.push(r.workload.clone());
        }
    }
    let mut items: Vec<ReleaseView> = map.into_values().collect();
    // As people count: fleet-2 before fleet-10.
    items.sort_by(|a, b| {
        natural_cmp(&a.namespace, &b.namespace).then_with(|| natural_cmp(&a.release, &b.release))
    });
    items
}

/// What `report` found wrong, and what it could not read (each once).
#[derive(Default)]
struct Findings {
    problems: Vec<Problem>,
    unreadable: Vec<String>,
}

impl Findings {
    fn unreadable(&mut self, what: &str) {
        if !self.unreadable.iter().any(|u| u == what) {
            self.unreadable.push(what.to_string());
        }
    }
}

/// The fix for a feature flag that is off where the values file decides.
const ENABLE_VALUES: &str =
    "kubectl astro-sha enable --values values.yaml, then helm upgrade the platform";

/// Pure: the report and its problems, from what was read.
pub(crate) fn report(f: &Facts) -> StatusReport {
    let mut out = Findings::default();
    let (platform, p) = platform_section(f, &mut out);
    let major = platform
        .chart_version
        .as_deref()
        .and_then(values::chart_major);
    let feature = feature_section(f, p, &platform, major, &mut out);
    let rel = releases_section(f, p, &platform, &mut out);
    let deployments = deployments_section(f, &mut out);
    let houston_rendering = match &f.airflow {
        Got::Found(rows) => Some(rendering_section(rows, &feature, &rel)),
        _ => None,
    };
    let ok = out.problems.is_empty() && out.unreadable.is_empty();
    StatusReport {
        platform,
        feature,
        releases_config_map: rel,
        deployments,
        houston_rendering,
        problems: out.problems,
        could_not_read: out.unreadable,
        ok,
    }
}

/// The platform section: namespace, release, chart version (Helm release, else Houston's label).
fn platform_section<'f>(
    f: &'f Facts,
    out: &mut Findings,
) -> (PlatformSection, Option<&'f Platform>) {
    let mut platform = PlatformSection::default();
    let p = match &f.platform {
        Got::Found(p) => {
            platform.namespace = Some(p.namespace.clone());
            platform.release = Some(p.release.clone());
            platform.houston = Some(p.houston_name());
            Some(p)
        }
        Got::Missing(why) | Got::Broken(why) => {
            out.problems.push(Problem {
                problem: why.clone(),
                fix: match &f.platform_namespace {
                    // It was given: asking for --platform-namespace again would not help (issue 23).
                    Some(ns) => none_hint(Some(ns)),
                    None => format!("kubectl get deployments -A -l {HOUSTON_SELECTOR} shows where Houston runs; pass that namespace as --platform-namespace"),
                },
                releases: Vec::new(),
            });
            None
        }
        Got::Unreadable(what) => {
            out.unreadable(what);
            None
        }
        Got::NotChecked(_) => None,
    };
    match &f.helm {
        Got::Found(r) => {
            platform.chart_version = Some(r.chart_version.clone());
            platform.chart_version_source = Some("helm release".into());
            platform.helm_release_secret = Some(r.secret.clone());
        }
        Got::Unreadable(what) => out.unreadable(what),
        Got::Broken(why) => out.problems.push(Problem {
            problem: why.clone(),
            fix: format!(
                "helm get values {} -n {}",
                platform.release.clone().unwrap_or_else(|| "RELEASE".into()),
                platform
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "NAMESPACE".into())
            ),
            releases: Vec::new(),
        }),
        Got::Missing(_) | Got::NotChecked(_) => {}
    }
    if platform.chart_version.is_none() {
        if let Some(v) = p.and_then(Platform::chart_version_from_label) {
            platform.chart_version = Some(v);
            platform.chart_version_source = Some("houston chart label".into());
        }
    }
    (platform, p)
}

/// The feature flag: Helm values (next upgrade) and local-production.yaml (what Houston reads).
fn feature_section(
    f: &Facts,
    p: Option<&Platform>,
    platform: &PlatformSection,
    major: Option<u64>,
    out: &mut Findings,
) -> FeatureSection {
    let mut feature = FeatureSection::default();
    if let Got::Found(r) = &f.helm {
        let tree: serde_yaml_ng::Value =
            serde_yaml_ng::to_value(&r.values).unwrap_or(serde_yaml_ng::Value::Null);
        let state = FlagState::read(&tree, Target::ValuesFile);
        feature.helm_values = Some(FlagView {
            enabled: state.enabled(major),
            state,
        });
    }
    let cm_name = p
        .map(Platform::config_map)
        .unwrap_or_else(|| "<release>-houston-config".into());
    match &f.local_production {
        Got::Found(text) => match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
            Ok(tree) => {
                let state = FlagState::read(&tree, Target::LocalProduction);
                feature.local_production = Some(FlagView {
                    enabled: state.enabled(major),
                    state,
                });
            }
            Err(e) => out.problems.push(Problem {
                problem: format!("{LOCAL_PRODUCTION_KEY} in {cm_name} is not valid YAML ({e})"),
                fix: "helm upgrade the platform to re-render it".into(),
                releases: Vec::new(),
            }),
        },
        Got::Missing(why) | Got::Broken(why) => out.problems.push(Problem {
            problem: why.clone(),
            fix: "helm upgrade the platform to re-render it".into(),
            releases: Vec::new(),
        }),
        Got::Unreadable(what) => out.unreadable(what),
        Got::NotChecked(_) => {}
    }
    feature.enabled = feature
        .local_production
        .as_ref()
        .or(feature.helm_values.as_ref())
        .and_then(|v| v.enabled);
    flag_problems(&mut feature, &platform.chart_version, major, &cm_name, out);

    feature
}

/// The fix for a flag that is off where the values file decides, for this chart version.
fn enable_fix(chart_version: &Option<String>, major: Option<u64>) -> String {
    match (chart_version, major) {
        (Some(v), Some(m)) if m >= 2 => format!(
            "kubectl astro-sha enable --values values.yaml --chart-version {v} (writes deployments.runtimeManagement.customImageSha.enabled and removes the dead flat key), then helm upgrade the platform"
        ),
        _ => ENABLE_VALUES.into(),
    }
}

/// The problems of a flag that is off, or on in one place and off in the other.
fn flag_problems(
    feature: &mut FeatureSection,
    chart_version: &Option<String>,
    major: Option<u64>,
    cm_name: &str,
    out: &mut Findings,
) {
    let chart_text = chart_version
        .as_deref()
        .map(|v| format!("chart {v}"))
        .unwrap_or_else(|| "this chart".into());
    // Why a flag someone set does not count (https://www.astronomer.io/docs/astro-private-cloud/v-2-x/breaking-changes-removals: APC 2.x
    // ignores the old key paths; 0.37.x and 1.x read only the flat key).
    let why_off = |v: &FlagView| {
        if v.state.flat_only_on_2x(major) {
            format!(
                "{}: APC 2.x ({chart_text}) ignores the flat key and reads only runtimeManagement.customImageSha.enabled",
                v.state.describe()
            )
        } else if v.state.nested_only_before_2x(major) {
            format!(
                "{}: Houston of {chart_text} reads only customImageShaEnabled",
                v.state.describe()
            )
        } else {
            v.state.describe()
        }
    };
    let fix = enable_fix(chart_version, major);
    match (&feature.helm_values, &feature.local_production) {
        (Some(h), Some(l)) if h.enabled.is_some() && l.enabled.is_some() && h.enabled != l.enabled => {
            feature.disagree = true;
            if l.enabled == Some(true) {
                out.problems.push(Problem {
                    problem: format!(
                        "the feature is on in {cm_name} but off in the Helm values ({}): the next helm upgrade turns it off",
                        why_off(h)
                    ),
                    fix,
                 releases: Vec::new(), });
            } else {
                out.problems.push(Problem {
                    problem: format!(
                        "the feature is on in the Helm values but off in {cm_name} ({}): Houston's config was changed after the upgrade",
                        why_off(l)
                    ),
                    fix: "kubectl astro-sha enable --in-cluster (or helm upgrade the platform)".into(),
                 releases: Vec::new(), });
            }
        }
        (_, Some(l)) if l.enabled == Some(false) => out.problems.push(Problem {
            problem: format!("the feature flag is off in {cm_name} ({})", why_off(l)),
            fix,
         releases: Vec::new(), }),
        (Some(h), None) if h.enabled == Some(false) => out.problems.push(Problem {
            problem: format!(
                "the feature flag is off in the Helm values ({})",
                why_off(h)
            ),
            fix,
         releases: Vec::new(), }),
        (h, l) if h.iter().chain(l.iter()).any(|v| v.enabled.is_none()) => out.problems.push(Problem {
            problem: format!(
                "cannot tell whether Houston reads the feature flag: the platform chart version is unknown, and APC 2.x reads only runtimeManagement.customImageSha.enabled while 0.37.x/1.x read only customImageShaEnabled ({})",
                l.as_ref().or(h.as_ref()).map(|v| v.state.describe()).unwrap_or_default()
            ),
            fix: "helm list -n <platform namespace> shows the chart version; set the key that version reads with kubectl astro-sha enable --values values.yaml --chart-version VERSION".into(),
         releases: Vec::new(), }),
        _ => {}
    }
}

/// The releases ConfigMap: present, mounted, its catalog complete.
fn releases_section(
    f: &Facts,
    p: Option<&Platform>,
    platform: &PlatformSection,
    out: &mut Findings,
) -> ReleasesSection {
    let mut rel = ReleasesSection {
        name: f.releases_configmap_name.clone(),
        namespace: platform
            .namespace
            .clone()
            .or_else(|| f.platform_namespace.clone()),
        ..ReleasesSection::default()
    };
    if let Some(p) = p {
        let m = mount_of(&p.houston, &rel.name);
        rel.mounted = Some(m.mounted());
        rel.mount_path = m.mount_path.clone();
        if !m.mounted() {
            let in_values = f
                .helm
                .found()
                .map(|r| {
                    releases_configmap_name(None, Some(r)) == rel.name
                        && r.values
                            .pointer("/astronomer/houston/runtimeReleasesConfigMapName")
                            .is_some()
                })
                .unwrap_or(false);
            out.problems.push(Problem {
                problem: format!(
                    "Houston's Deployment {} does not mount ConfigMap {}",
                    p.houston_name(),
                    rel.name
                ),
                fix: if in_values {
                    "helm upgrade the platform (the values already name it)".into()
                } else {
                    ENABLE_VALUES.into()
                },
                releases: Vec::new(),
            });
        }
    }
    match &f.releases_configmap {
        Got::Found(cm) => {
            rel.present = Some(true);
            let data = cm.data.clone().unwrap_or_default();
            rel.data_keys = data.keys().cloned().collect();
            rel.data_key_ok = Some(data.contains_key(RELEASES_DATA_KEY));
            rel.imported_at = cm
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(IMPORTED_AT_ANNOTATION))
                .cloned();
            check_catalog(&data, &f.digest_field, &mut rel, out);
            check_stale(f, cm, &mut rel, out);
        }
        Got::Missing(_) | Got::Broken(_) => {
            rel.present = Some(false);
            out.problems.push(Problem {
                problem: format!(
                    "ConfigMap {} not found in namespace {}",
                    rel.name,
                    rel.namespace.clone().unwrap_or_default()
                ),
                fix: format!("kubectl astro-sha import --configmap {}", rel.name),
                releases: Vec::new(),
            });
        }
        Got::Unreadable(what) => out.unreadable(what),
        Got::NotChecked(_) => {}
    }

    rel
}

/// Houston mounts the catalog with `subPath`, which the kubelet never refreshes
/// (kubernetes/kubernetes#50345; astronomer/astronomer charts/astronomer/templates/_helpers.yaml): a pod that started before
/// the ConfigMap last changed still serves the older catalog.
fn check_stale(f: &Facts, cm: &ConfigMap, rel: &mut ReleasesSection, out: &mut Findings) {
    let Some((changed, how)) = rollout::last_change(cm, CATALOG_CHANGED_AT_ANNOTATION) else {
        return;
    };
    rel.changed_at = Some(changed.to_string());
    let pods = match &f.platform_pods {
        Got::Found(p) => p,
        Got::Unreadable(what) => return out.unreadable(what),
        _ => return,
    };
    rel.stale_pods = rollout::stale_pods(pods, &rel.name, changed);
    if rel.stale_pods.is_empty() {
        return;
    }
    let ns = rel.namespace.clone().unwrap_or_default();
    let which: Vec<String> = rel
        .stale_pods
        .iter()
        .map(|p| format!("{} (started {})", p.pod, p.started))
        .collect();
    let fix = match &f.mounting {
        Got::Found(m) => m.command(&ns),
        Got::Unreadable(what) => {
            out.unreadable(what);
            None
        }
        _ => None,
    };
    out.problems.push(Problem {
        problem: format!(
            "Houston reads an older catalog: {} started before ConfigMap {} last changed ({changed}, from its {how}), and a subPath mount keeps the file a pod started with",
            which.join(", "),
            rel.name
        ),
        fix: fix.unwrap_or_else(|| {
            format!("kubectl -n {ns} rollout restart deployment/<each Deployment that mounts {}>", rel.name)
        }),
     releases: Vec::new(), });
}

/// The catalog under the data key Houston's mount reads: present, parsable, every version with a
/// digest at `digest_field`.
fn check_catalog(
    data: &BTreeMap<String, String>,
    digest_field: &str,
    rel: &mut ReleasesSection,
    out: &mut Findings,
) {
    match data.get(RELEASES_DATA_KEY) {
        None => {
            let typo = if data.contains_key("astro_runtime_release.json") {
                " (it has astro_runtime_release.json, the documentation's typo, which the mount does not find)"
            } else {
                ""
            };
            out.problems.push(Problem {
                problem: format!(
                    "ConfigMap {} has no data key {RELEASES_DATA_KEY}{typo}",
                    rel.name
                ),
                fix: format!("kubectl astro-sha import --configmap {}", rel.name),
                releases: Vec::new(),
            });
        }
        Some(json) => match count_catalog(json, digest_field) {
            Ok(CatalogCount {
                versions: n,
                with_digest: d,
            }) => {
                rel.versions = Some(n);
                rel.with_digest = Some(d);
                if n == 0 {
                    out.problems.push(Problem {
                        problem: format!("ConfigMap {} lists no Runtime versions", rel.name),
                        fix: format!("kubectl astro-sha import --configmap {}", rel.name),
                        releases: Vec::new(),
                    });
                } else if d < n {
                    out.problems.push(Problem {
                        problem: format!(
                            "{} of {n} Runtime versions in ConfigMap {} have no digest at `{}`",
                            n - d,
                            rel.name,
                            digest_field
                        ),
                        fix: format!(
                            "kubectl astro-sha import --configmap {} --only-missing",
                            rel.name
                        ),
                        releases: Vec::new(),
                    });
                }
            }
            Err(why) => out.problems.push(Problem {
                problem: format!("{RELEASES_DATA_KEY} in ConfigMap {} is {why}", rel.name),
                fix: format!("kubectl astro-sha import --configmap {}", rel.name),
                releases: Vec::new(),
            }),
        },
    }
}

/// The Airflow Deployments, per release by its worst container state.
fn deployments_section(f: &Facts, out: &mut Findings) -> DeploymentsSection {
    let mut deployments = DeploymentsSection {
        scope: f.airflow_scope.clone(),
        ..DeploymentsSection::default()
    };
    match &f.airflow {
        Got::Found(rows) => {
            deployments.readable = true;
            deployments.items = releases_by_state(rows);
            deployments.releases = deployments.items.len();
            for s in StateKey::ALL {
                deployments.by_state.insert(s.to_string(), 0);
            }
            let mut found: Vec<(Group, Problem, ProblemRelease)> = vec![];
            for r in &deployments.items {
                *deployments.by_state.entry(r.state.to_string()).or_insert(0) += 1;
                let who = |fix: Option<String>| ProblemRelease {
                    namespace: r.namespace.clone(),
                    release: r.release.clone(),
                    fix,
                };
                let not_pinned = r.containers
                    - r.by_state
                        .get(StateKey::Pinned.as_str())
                        .copied()
                        .unwrap_or(0);
                let count = |k: StateKey| r.by_state.get(k.as_str()).copied().unwrap_or(0);
                let what = match r.state {
                    StateKey::UnlistedBuild | StateKey::OtherVersion => format!(
                        "{}/{}: {} ({} of {} Runtime containers run a repository@sha256 build the releases catalog does not list for their version)",
                        r.namespace,
                        r.release,
                        r.state,
                        count(StateKey::UnlistedBuild) + count(StateKey::OtherVersion),
                        r.containers
                    ),
                    _ => format!(
                        "{}/{}: {} ({not_pinned} of {} Runtime containers not pinned and running their pin)",
                        r.namespace, r.release, r.state, r.containers
                    ),
                };
                if r.state == StateKey::Pinned && !r.workloads_running_unknown.is_empty() {
                    found.push((Group::RunningUnknown, running_unknown(r), who(None)));
                    continue;
                }
                let Some(fix) = release_fix(r, &f.releases_configmap_name) else {
                    continue;
                };
                let own = (r.state == StateKey::RunningDiffers).then(|| fix.clone());
                let problem = Problem {
                    problem: what,
                    fix,
                    releases: Vec::new(),
                };
                found.push((Group::State(r.state), problem, who(own)));
            }
            out.problems.extend(group_problems(found));
        }
        Got::Unreadable(what) => out.unreadable(what),
        Got::Missing(why) | Got::Broken(why) | Got::NotChecked(why) => out.unreadable(why),
    }
    if let Got::Found(rows) = &f.airflow {
        stale_record_problems(rows, out);
    }
    deployments
}

/// How one Airflow Deployment's Runtime references look, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Form {
    CatalogDigest,
    Tag,
    NotJudged,
    UnknownBuild,
}

fn form_of(r: &state::Row) -> Form {
    match (&r.tag, &r.spec_digest, r.catalog) {
        (Some(_), _, _) | (None, None, _) => Form::Tag,
        (None, Some(_), Some(CatalogMatch::Listed)) => Form::CatalogDigest,
        (None, Some(_), None) => Form::NotJudged,
        (None, Some(_), Some(_)) => Form::UnknownBuild,
    }
}

/// Pure: the Airflow Deployments by the form of their Runtime references (a Deployment counts
/// by its worst container), and why Houston renders no digest when none has one.
pub(crate) fn rendering_section(
    rows: &[state::Row],
    feature: &FeatureSection,
    rel: &ReleasesSection,
) -> RenderingSection {
    let mut per: BTreeMap<(&str, &str), Form> = BTreeMap::new();
    for r in rows {
        let f = form_of(r);
        let e = per.entry((&r.namespace, &r.release)).or_insert(f);
        *e = (*e).max(f);
    }
    let mut out = RenderingSection::default();
    for f in per.values() {
        match f {
            Form::CatalogDigest => out.catalog_digests += 1,
            Form::Tag => out.tags += 1,
            Form::NotJudged => out.not_judged += 1,
            Form::UnknownBuild => out.unknown_builds += 1,
        }
    }
    out.renders_digests = if out.catalog_digests > 0 {
        Some(true)
    } else if per.is_empty() || out.not_judged > 0 {
        None
    } else {
        Some(false)
    };
    if out.renders_digests == Some(false) {
        out.why_not = why_no_digests(feature, rel, out.unknown_builds);
    }
    out
}

/// Why Houston renders no digest, from what status found about the flag and the ConfigMap.
fn why_no_digests(
    feature: &FeatureSection,
    rel: &ReleasesSection,
    unknown_builds: usize,
) -> Vec<String> {
    let mut why = vec![];
    match feature.enabled {
        Some(false) => why.push("the feature flag is off".to_string()),
        None => why.push("the feature flag could not be told".to_string()),
        Some(true) => {}
    }
    if rel.present == Some(false) {
        why.push(format!("ConfigMap {} does not exist", rel.name));
    }
    if rel.mounted == Some(false) {
        why.push(format!("Houston does not mount ConfigMap {}", rel.name));
    }
    if !rel.stale_pods.is_empty() {
        why.push(format!(
            "Houston has not restarted since the last import ({} started before {})",
            match rel.stale_pods.len() {
                1 => rel.stale_pods[0].pod.clone(),
                n => format!(
                    "{} and {}",
                    rel.stale_pods[0].pod,
                    crate::core::count(n - 1, "other pod", "other pods")
                ),
            },
            rel.changed_at.as_deref().unwrap_or("the change")
        ));
    }
    if why.is_empty() && unknown_builds > 0 {
        why.push(format!(
            "the repository@sha256 {} of {} {} not the catalog's for {} version (see the problems below)",
            crate::core::plural(unknown_builds, "build", "builds"),
            crate::core::count(unknown_builds, "Deployment", "Deployments"),
            crate::core::plural(unknown_builds, "is", "are"),
            crate::core::plural(unknown_builds, "its", "their"),
        ));
    } else if why.is_empty() {
        why.push("no Deployment was updated in Houston since the feature was turned on (Houston renders the digest at a Deployment's next update)".into());
    }
    why
}

/// The command that fixes a release in `r.state`; `None` when it is pinned.
fn release_fix(r: &ReleaseView, configmap: &str) -> Option<String> {
    Some(match r.state {
        StateKey::Pinned => return None,
        StateKey::TagOnly => format!("kubectl astro-sha pin {}", r.release),
        StateKey::Drifted => format!(
            "kubectl astro-sha pin {} (the tag moved: review with kubectl astro-sha show {} -n {})",
            r.release, r.release, r.namespace
        ),
        StateKey::RunningDiffers => format!(
            "kubectl -n {} rollout restart {}",
            r.namespace,
            r.workloads_running_differs.join(" ")
        ),
        StateKey::Unresolved => format!(
            "kubectl astro-sha show {} -n {} -o wide (shows why the registry lookup failed)",
            r.release, r.namespace
        ),
        // A repository@sha256 build the releases catalog does not list, or lists for another
        // version than it was pinned from: either the catalog predates the build (re-import
        // records it), or the release runs a build Astronomer did not publish for its version
        // (Houston renders the catalog's digest at the Deployment's next update).
        StateKey::UnlistedBuild | StateKey::OtherVersion => format!(
            "kubectl astro-sha import --configmap {configmap} (if the catalog predates this build), or update {} in Houston (UI or astro CLI) so it renders the catalog's build; kubectl astro-sha show {} -n {} -o wide shows it",
            r.release, r.release, r.namespace
        ),
    })
}

/// A pinned release of which some workload's pods report nothing (scaled to zero, not started):
/// whether it runs its pin is unknown, and unknown is not in order.
fn running_unknown(r: &ReleaseView) -> Problem {
    Problem {
        problem: format!(
            "{}/{}: pinned, but no pod of {} reports what it runs (scaled to zero, or not started), so whether it runs its pin is unknown",
            r.namespace,
            r.release,
            r.workloads_running_unknown.join(", ")
        ),
        fix: format!(
            "kubectl -n {} get pods -l release={} (once the pods run, status reads what they run)",
            r.namespace, r.release
        ),
     releases: Vec::new(), }
}

/// The exit code of `status`, and the line on stderr that says why when it is not 0. With
/// `--check`: 0 only when everything is known to be in order (no problem, no refused read).
/// Without it: 1 when a read was refused, because the report is then partial (an unknown field
/// is not an answer; kubectl too exits non-zero on a forbidden read); problems alone leave 0.
/// How `status` ends: its exit status, and the line on stderr that says why when it is not 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusExit {
    pub(crate) status: ExitStatus,
    pub(crate) why: Option<String>,
}

pub(crate) fn exit_code(r: &StatusReport, check: bool) -> StatusExit {
    let refused = r.could_not_read.len();
    if check && !r.ok {
        return StatusExit {
            status: ExitStatus::NotOk,
            why: Some(format!(
                "check failed: {}, {} refused",
                crate::core::count(r.problems.len(), "problem", "problems"),
                crate::core::count(refused, "read", "reads")
            )),
        };
    }
    if refused > 0 {
        return StatusExit {
            status: ExitStatus::NotOk,
            why: Some(format!(
                "status is partial: {} refused (listed under \"Could not read\"); fields that depend on them say unknown",
                crate::core::count(refused, "read", "reads")
            )),
        };
    }
    StatusExit {
        status: ExitStatus::Success,
        why: None,
    }
}

/// Releases with stale `original-images` records: unpin would refuse them (or, forced, put an
/// older image back); pin replaces them.
fn stale_record_problems(rows: &[state::Row], out: &mut Findings) {
    let mut per: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
    for r in rows.iter().filter(|r| r.stale_record()) {
        *per.entry((&r.namespace, &r.release)).or_default() += 1;
    }
    let mut found = vec![];
    for ((ns, rel), n) in per {
        let problem = Problem {
            problem: format!(
                "{ns}/{rel}: {} a stale original-images record (the platform changed the image since the pin; unpin refuses {})",
                crate::core::count(n, "container carries", "containers carry"),
                crate::core::plural(n, "it", "them")
            ),
            fix: format!("kubectl astro-sha pin {rel} -n {ns} (records the image there now)"),
            releases: Vec::new(),
        };
        let who = ProblemRelease {
            namespace: ns.to_string(),
            release: rel.to_string(),
            fix: None,
        };
        found.push((Group::StaleRecord, problem, who));
    }
    out.problems.extend(group_problems(found));
}

/// The kinds of per-release problem that fold into one line when several releases share them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    State(StateKey),
    RunningUnknown,
    StaleRecord,
}

/// Per-release problems, one line per kind: a kind only one release has keeps its own line and
/// fix; a kind many share (509 tag-only releases at fleet size) becomes one line with one fix,
/// and the releases (each with its own fix where the shared one is not a single command) go into
/// `releases`, listed by `-o wide` and in JSON.
fn group_problems(found: Vec<(Group, Problem, ProblemRelease)>) -> Vec<Problem> {
    let mut by: BTreeMap<Group, Vec<(Problem, ProblemRelease)>> = BTreeMap::new();
    for (g, p, r) in found {
        by.entry(g).or_default().push((p, r));
    }
    let mut out = vec![];
    for (g, mut list) in by {
        if list.len() == 1 {
            out.extend(list.pop().map(|(p, _)| p));
            continue;
        }
        let releases: Vec<ProblemRelease> = list.into_iter().map(|(_, r)| r).collect();
        let n = releases.len();
        let scope = match releases.first() {
            Some(f) if releases.iter().all(|r| r.namespace == f.namespace) => {
                format!("-n {}", f.namespace)
            }
            _ => "-A".to_string(),
        };
        let (problem, fix) = match g {
            Group::State(StateKey::TagOnly) => (
                format!("{n} releases are tag-only: their Runtime containers run on tags, not digests"),
                format!("kubectl astro-sha pin --all {scope}"),
            ),
            Group::State(StateKey::Drifted) => (
                format!("{n} releases are drifted: a tag they pin has moved since"),
                format!("review with kubectl astro-sha show {scope} -o wide; kubectl astro-sha pin --all {scope} --repin moves the pins to the tags' new builds"),
            ),
            Group::State(StateKey::RunningDiffers) => (
                format!("{n} releases run something other than their pin"),
                "restart each release's workloads: its kubectl rollout restart command is listed under it with -o wide (and in -o json)".into(),
            ),
            Group::State(StateKey::Unresolved) => (
                format!("{n} releases have Runtime tags that could not be looked up"),
                format!("kubectl astro-sha show {scope} -o wide (shows why each registry lookup failed)"),
            ),
            Group::State(StateKey::UnlistedBuild | StateKey::OtherVersion) => (
                format!("{n} releases run repository@sha256 builds the releases catalog does not list for their version"),
                format!("kubectl astro-sha import (if the catalog predates these builds), or update each in Houston (UI or astro CLI) so it renders the catalog's build; kubectl astro-sha show {scope} -o wide shows them"),
            ),
            Group::State(k) => (
                format!("{n} releases are {k}"),
                format!("kubectl astro-sha show {scope} -o wide"),
            ),
            Group::RunningUnknown => (
                format!("{n} pinned releases have workloads no pod of which reports what it runs (scaled to zero, or not started), so whether they run their pin is unknown"),
                format!("kubectl get pods {scope} -l tier=airflow (once the pods run, status reads what they run)"),
            ),
            Group::StaleRecord => (
                format!("{n} releases carry stale original-images records (the platform changed the image since the pin; unpin refuses them)"),
                format!("kubectl astro-sha pin --all {scope} (records the image there now)"),
            ),
        };
        out.push(Problem {
            problem,
            fix,
            releases,
        });
    }
    out
}

/// Tagless `repository@sha256` containers whose Runtime version could not be told because no
/// releases catalog was read: how many, and why (the one note `status` prints on stderr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UnjudgedTagless {
    pub(crate) containers: usize,
    pub(crate) why: String,
}

/// `Some` when the Airflow Deployments were read, some run a tagless digest, and no catalog was
/// read (`catalog_read`) from the releases ConfigMap `name`.
pub(crate) fn unjudged_tagless(
    airflow: &Got<Vec<state::Row>>,
    catalog_read: bool,
    releases_configmap: &Got<ConfigMap>,
    name: &str,
) -> Option<UnjudgedTagless> {
    let rows = airflow.found().filter(|_| !catalog_read)?;
    let containers = rows
        .iter()
        .filter(|r| r.tag.is_none() && r.spec_digest.is_some())
        .count();
    let why = match releases_configmap {
        Got::Unreadable(what) => format!("could not read {what}"),
        Got::Found(_) => format!("ConfigMap {name} holds no readable catalog"),
        _ => format!("no releases ConfigMap {name}"),
    };
    (containers > 0).then_some(UnjudgedTagless { containers, why })
}

/// A context's state from what was read (status across contexts): no Houston is no platform; a
/// platform that could not be looked up (RBAC) is forbidden; otherwise in order or not, as
/// `--check` decides.
/// A context's row state, and why it is not in order (status across contexts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContextState {
    pub(crate) outcome: Outcome,
    pub(crate) why: Option<String>,
}

pub(crate) fn context_state(f: &Facts, r: &StatusReport) -> ContextState {
    let state = |outcome, why| ContextState { outcome, why };
    match &f.platform {
        Got::Missing(why) => return state(Outcome::NoPlatform, Some(why.clone())),
        Got::Unreadable(why) => return state(Outcome::Forbidden, Some(why.clone())),
        _ => {}
    }
    if r.ok {
        return state(Outcome::Ok, None);
    }
    let mut why = vec![];
    if !r.problems.is_empty() {
        why.push(crate::core::count(r.problems.len(), "problem", "problems"));
    }
    if !r.could_not_read.is_empty() {
        why.push(format!(
            "{} refused",
            crate::core::count(r.could_not_read.len(), "read", "reads")
        ));
    }
    state(Outcome::NotInOrder, Some(why.join(", ")))
}

/// The feature as Houston runs it, in a word (a context's row).
pub(crate) fn feature_word(r: &StatusReport) -> &'static str {
    match (r.feature.enabled, r.feature.disagree) {
        (Some(true), false) => "on",
        (Some(true), true) => "on (values: off)",
        (Some(false), false) => "off",
        (Some(false), true) => "off (values: on)",
        (None, _) => "unknown",
    }
}

/// The releases ConfigMap's name, and what is wrong with it if anything (a context's row).
pub(crate) fn releases_word(r: &StatusReport) -> String {
    let c = &r.releases_config_map;
    match (c.present, c.mounted, c.versions, c.with_digest) {
        (None, ..) => format!("{} (unknown)", c.name),
        (Some(false), ..) => format!("{} (missing)", c.name),
        (Some(true), Some(false), ..) => format!("{} (not mounted)", c.name),
        (Some(true), _, Some(v), Some(d)) if d < v => format!("{} ({d}/{v} digests)", c.name),
        _ => c.name.clone(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::inventory::{Role, Running};
    use crate::core::platform::tests::{houston, pick, unmounted_platform};
    use crate::core::platform::NoHouston;
    use serde_json::json;

    pub(crate) const D: &str =
        "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    pub(crate) fn catalog(with_digests: bool) -> String {
        let e = |d: bool| {
            if d {
                json!({"metadata": {"channel": "stable"}, "sha256": D})
            } else {
                json!({"metadata": {}})
            }
        };
        json!({"version": "1.0",
            "runtimeVersions": {"12.1.0": e(with_digests), "12.2.0": e(true)},
            "runtimeVersionsV3": {"3.1-1": e(true)}})
        .to_string()
    }

    pub(crate) fn cm(name: &str, key: &str, json: String) -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {IMPORTED_AT_ANNOTATION: "2026-11-26T10:00:00Z"}},
            "data": {key: json}
        }))
        .unwrap()
    }

    pub(crate) fn release(values: serde_json::Value, version: &str) -> helm::Release {
        helm::Release {
            name: "astronomer".into(),
            revision: 1,
            chart_name: "astronomer".into(),
            chart_version: version.into(),
            values,
            secret: "sh.helm.release.v1.astronomer.v1".into(),
        }
    }

    pub(crate) fn row(ns: &str, release: &str, workload: &str, state: Status) -> state::Row {
        state::Row {
            namespace: ns.into(),
            release: release.into(),
            workload: workload.into(),
            container: "c".into(),
            role: Role::Container,
            image: "x".into(),
            tag: None,
            version: None,
            version_source: None,
            catalog: None,
            expected_version: None,
            spec_digest: None,
            registry_digest: None,
            registry_source: None,
            running: Running::Digest(D.into()),
            status: state.label(),
            record: Default::default(),
            state,
            own_pods: true,
        }
    }

    pub(crate) fn good() -> Facts {
        Facts {
            platform: Got::Found(
                pick(
                    vec![houston(
                        "astronomer",
                        "astronomer-houston",
                        Some("astronomer"),
                        "astronomer-0.37.4",
                        &["astro-runtime-base-images"],
                    )],
                    None,
                )
                .unwrap(),
            ),
            helm: Got::Found(release(
                json!({"astronomer": {"houston": {"config": {"deployments": {"customImageShaEnabled": true}}}}}),
                "0.37.4",
            )),
            local_production: Got::Found("deployments:\n  customImageShaEnabled: true\n".into()),
            releases_configmap_name: "astro-runtime-base-images".into(),
            releases_configmap: Got::Found(cm(
                "astro-runtime-base-images",
                RELEASES_DATA_KEY,
                catalog(true),
            )),
            airflow_scope: "all namespaces".into(),
            airflow: Got::Found(vec![row(
                "ns1",
                "r1",
                "deployment/r1-scheduler",
                Status::Pinned,
            )]),
            digest_field: "sha256".into(),
            platform_namespace: None,
            platform_pods: Got::Found(vec![]),
            mounting: Got::Found(Mounting::default()),
        }
    }

    #[test]
    fn across_contexts_one_platform_in_a_row() {
        use crate::core::contexts::Outcome;
        let f = good();
        let r = report(&f);
        assert_eq!(
            context_state(&f, &r),
            ContextState {
                outcome: Outcome::Ok,
                why: None
            }
        );
        assert_eq!(feature_word(&r), "on");
        assert_eq!(releases_word(&r), "astro-runtime-base-images");

        let mut f = good();
        f.releases_configmap = Got::Missing("x".into());
        f.helm = Got::Unreadable("secrets in namespace astronomer (forbidden)".into());
        let r = report(&f);
        assert_eq!(
            context_state(&f, &r),
            ContextState {
                outcome: Outcome::NotInOrder,
                why: Some("1 problem, 1 read refused".into())
            }
        );
        assert_eq!(releases_word(&r), "astro-runtime-base-images (missing)");

        let mut f = good();
        f.platform = Got::Missing("no Houston Deployment found".into());
        let r = report(&f);
        assert_eq!(
            context_state(&f, &r),
            ContextState {
                outcome: Outcome::NoPlatform,
                why: Some("no Houston Deployment found".into())
            }
        );
        f.platform = Got::Unreadable("deployments.apps in all namespaces (forbidden)".into());
        assert_eq!(context_state(&f, &report(&f)).outcome, Outcome::Forbidden);

        let mut f = good();
        f.local_production = Got::Found("deployments: {}\n".into());
        assert_eq!(feature_word(&report(&f)), "off (values: on)");
        let mut f = good();
        f.releases_configmap = Got::Found(cm(
            "astro-runtime-base-images",
            RELEASES_DATA_KEY,
            catalog(false),
        ));
        assert_eq!(
            releases_word(&report(&f)),
            "astro-runtime-base-images (2/3 digests)"
        );
    }

    #[test]
    fn exit_codes_say_partial_without_check_and_not_in_order_with_it() {
        let code = |f: &Facts, check| exit_code(&report(f), check).status.code();
        assert_eq!((code(&good(), false), code(&good(), true)), (0, 0));
        // a refused read: the report is partial, with or without --check
        let mut f = good();
        f.helm = Got::Unreadable("secrets in namespace astronomer (forbidden)".into());
        assert_eq!((code(&f, false), code(&f, true)), (1, 1));
        // a problem alone is a finding for --check only
        let mut f = good();
        f.airflow = Got::Found(vec![row("ns1", "r1", "deployment/r1-web", Status::TagOnly)]);
        assert_eq!((code(&f, false), code(&f, true)), (0, 1));
        // pinned, but no pod reports what it runs: unknown is not in order
        let mut unknown = row("ns1", "r1", "deployment/r1-scheduler", Status::Pinned);
        unknown.running = Running::Unknown;
        let mut f = good();
        f.airflow = Got::Found(vec![unknown.clone()]);
        let r = report(&f);
        assert!(
            r.problems[0].problem.contains(
                "ns1/r1: pinned, but no pod of deployment/r1-scheduler reports what it runs"
            ),
            "{:?}",
            r.problems
        );
        assert_eq!((code(&f, false), code(&f, true)), (0, 1));
        // ... while a CronJob's or the pod template's pin is what their next pod runs
        unknown.own_pods = false;
        f.airflow = Got::Found(vec![unknown]);
        assert_eq!(code(&f, true), 0);
    }

    #[test]
    fn flag_disagreement_each_way() {
        let mut f = good();
        f.helm = Got::Found(release(json!({}), "0.37.4"));
        let r = report(&f);
        assert!(r.feature.disagree);
        assert!(
            r.problems[0]
                .problem
                .contains("the next helm upgrade turns it off"),
            "{:?}",
            r.problems
        );
        assert!(r.problems[0]
            .fix
            .starts_with("kubectl astro-sha enable --values values.yaml"));

        let mut f = good();
        f.local_production = Got::Found("deployments: {}\n".into());
        let r = report(&f);
        assert!(r.feature.disagree);
        assert_eq!(r.feature.enabled, Some(false));
        assert!(
            r.problems[0].fix.contains("enable --in-cluster"),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn nested_flag_on_an_old_chart_is_off() {
        let mut f = good();
        f.helm = Got::Found(release(
            json!({"astronomer": {"houston": {"config": {"deployments": {"runtimeManagement": {"customImageSha": {"enabled": true}}}}}}}),
            "1.1.0",
        ));
        f.local_production = Got::Found(
            "deployments:\n  runtimeManagement:\n    customImageSha:\n      enabled: true\n".into(),
        );
        let r = report(&f);
        assert_eq!(r.feature.enabled, Some(false));
        assert!(
            r.problems[0]
                .problem
                .contains("reads only customImageShaEnabled"),
            "{:?}",
            r.problems
        );
        // The same on 2.x is fine.
        if let Got::Found(h) = &mut f.helm {
            h.chart_version = "2.1.0".into();
        }
        assert!(report(&f).ok);
    }

    /// APC 2.x ignores the flat key (https://www.astronomer.io/docs/astro-private-cloud/v-2-x/breaking-changes-removals): a flat-only 2.x platform is OFF, and the fix names the nested key.

    #[test]
    fn flat_flag_on_2x_is_off() {
        let mut f = good();
        f.helm = Got::Found(release(
            json!({"astronomer": {"houston": {"config": {"deployments": {"customImageShaEnabled": true}}}}}),
            "2.1.0",
        ));
        let r = report(&f);
        assert_eq!(r.feature.enabled, Some(false));
        assert!(!r.ok);
        let p = &r.problems[0];
        assert!(
            p.problem
                .contains("APC 2.x (chart 2.1.0) ignores the flat key"),
            "{:?}",
            r.problems
        );
        assert!(p.fix.contains("--chart-version 2.1.0"), "{}", p.fix);
        assert!(
            p.fix.contains("runtimeManagement.customImageSha.enabled"),
            "{}",
            p.fix
        );
        // Unknown version, flat only: cannot tell, said as such.
        f.helm = Got::Unreadable("secrets".into());
        if let Got::Found(p) = &mut f.platform {
            p.houston.metadata.labels.as_mut().unwrap().remove("chart");
        }
        let r = report(&f);
        assert_eq!(r.feature.enabled, None);
        assert!(
            r.problems.iter().any(|p| p
                .problem
                .contains("cannot tell whether Houston reads the feature flag")),
            "{:?}",
            r.problems
        );
    }

    /// A Helm release Secret that is there but cannot be decoded is a problem with its own fix
    /// (typed `Got::Broken`, not told apart by the message's wording); a missing one is not.

    #[test]
    fn an_undecodable_helm_release_is_a_problem_with_the_helm_fix() {
        let mut f = good();
        f.helm = Got::Broken(
            "cannot decode the Helm release in Secret sh.helm.release.v1.astronomer.v3: gzip"
                .into(),
        );
        let r = report(&f);
        let p = r
            .problems
            .iter()
            .find(|p| p.problem.contains("sh.helm.release.v1.astronomer.v3"))
            .expect("the broken release is reported");
        assert!(
            p.fix
                .starts_with("helm get values astronomer -n astronomer"),
            "{}",
            p.fix
        );
        f.helm = Got::Missing("no deployed Helm release astronomer in namespace astronomer".into());
        let r = report(&f);
        assert!(
            !r.problems
                .iter()
                .any(|p| p.fix.starts_with("helm get values")),
            "{:?}",
            r.problems
        );
    }

    /// A pod that mounts the releases ConfigMap and started before its last change reads an
    /// older catalog (subPath, kubernetes/kubernetes#50345); the fix restarts what mounts it.

    #[test]
    fn stale_houston_is_reported_with_the_restart_command() {
        let mut f = good();
        let mut c = cm(
            "astro-runtime-base-images",
            RELEASES_DATA_KEY,
            catalog(true),
        );
        c.metadata.annotations = Some(
            [(
                CATALOG_CHANGED_AT_ANNOTATION.to_string(),
                "2026-12-01T01:00:00Z".to_string(),
            )]
            .into(),
        );
        f.releases_configmap = Got::Found(c);
        let pod = |name: &str, start: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "i"}],
                    "volumes": [{"name": "r", "configMap": {"name": "astro-runtime-base-images"}}]},
                "status": {"phase": "Running", "startTime": start}}))
            .unwrap()
        };
        f.platform_pods = Got::Found(vec![pod("astronomer-houston-1", "2026-12-01T00:00:00Z")]);
        f.mounting = Got::Found(Mounting {
            deployments: vec![
                "astronomer-houston".into(),
                "astronomer-houston-worker".into(),
            ],
            ..Mounting::default()
        });
        let r = report(&f);
        let p = r
            .problems
            .iter()
            .find(|p| p.problem.starts_with("Houston reads an older catalog"))
            .expect("stale Houston reported");
        assert!(
            p.problem
                .contains("astronomer-houston-1 (started 2026-12-01T00:00:00Z)"),
            "{}",
            p.problem
        );
        assert_eq!(
            p.fix,
            "kubectl -n astronomer rollout restart deployment/astronomer-houston deployment/astronomer-houston-worker"
        );
        assert_eq!(
            r.releases_config_map.changed_at.as_deref(),
            Some("2026-12-01T01:00:00Z")
        );
        // A pod started after the change is fine.
        f.platform_pods = Got::Found(vec![pod("astronomer-houston-2", "2026-12-01T02:00:00Z")]);
        assert!(report(&f).ok);
    }

    #[test]
    fn releases_configmap_problems() {
        let mut f = good();
        f.releases_configmap = Got::Missing("x".into());
        let r = report(&f);
        assert_eq!(r.releases_config_map.present, Some(false));
        assert_eq!(
            r.problems[0].fix,
            "kubectl astro-sha import --configmap astro-runtime-base-images"
        );

        let mut f = good();
        f.releases_configmap = Got::Found(cm(
            "astro-runtime-base-images",
            "astro_runtime_release.json",
            catalog(true),
        ));
        let r = report(&f);
        assert_eq!(r.releases_config_map.data_key_ok, Some(false));
        assert!(r.problems[0].problem.contains("typo"), "{:?}", r.problems);

        let mut f = good();
        f.releases_configmap = Got::Found(cm(
            "astro-runtime-base-images",
            RELEASES_DATA_KEY,
            catalog(false),
        ));
        let r = report(&f);
        assert_eq!(r.releases_config_map.with_digest, Some(2));
        assert!(
            r.problems[0].problem.starts_with("1 of 3 Runtime versions"),
            "{:?}",
            r.problems
        );
        assert!(r.problems[0].fix.ends_with("--only-missing"));

        let mut f = good();
        f.digest_field = "metadata.sha256".into();
        assert_eq!(
            report(&f).releases_config_map.with_digest,
            Some(0),
            "digest looked for elsewhere"
        );

        let mut f = good();
        f.platform = Got::Found(unmounted_platform());
        let r = report(&f);
        assert_eq!(r.releases_config_map.mounted, Some(false));
        assert!(
            r.problems[0].problem.contains("does not mount"),
            "{:?}",
            r.problems
        );
        assert!(r.problems[0].fix.contains("enable --values"));
    }

    #[test]
    fn releases_counted_by_worst_state_with_fixes() {
        let mut f = good();
        f.airflow = Got::Found(vec![
            row("n1", "a", "deployment/a-s", Status::Pinned),
            row("n1", "a", "deployment/a-w", Status::TagOnly),
            row("n2", "b", "deployment/b-s", Status::Drifted),
            row("n3", "c", "statefulset/c-s", Status::RunningDiffers),
            row("n4", "d", "deployment/d-s", Status::Pinned),
            row(
                "n5",
                "e",
                "deployment/e-s",
                Status::Unresolved("not found".into()),
            ),
        ]);
        let r = report(&f);
        let by = &r.deployments.by_state;
        assert_eq!(
            (
                by["pinned"],
                by["tag-only"],
                by["drifted"],
                by["running-differs"],
                by["unresolved"]
            ),
            (1, 1, 1, 1, 1)
        );
        let fixes: Vec<&str> = r.problems.iter().map(|p| p.fix.as_str()).collect();
        assert!(fixes.contains(&"kubectl astro-sha pin a"), "{fixes:?}");
        assert!(fixes
            .iter()
            .any(|f| f.starts_with("kubectl astro-sha pin b")));
        assert!(fixes.contains(&"kubectl -n n3 rollout restart statefulset/c-s"));
        assert!(fixes
            .iter()
            .any(|f| f.starts_with("kubectl astro-sha show e -n n5")));
        assert!(!r.ok);
    }

    /// Whether Houston renders digests, per Airflow Deployment by its worst container; the
    /// reasons when none does come from what status found about the flag and the ConfigMap.

    #[test]
    fn a_release_is_its_worst_container_and_releases_sort_naturally() {
        // one drifted container among tag-only ones: the release is drifted (red), not tag-only
        let rows = vec![
            row("n", "fleet-10", "deployment/x", Status::TagOnly),
            row("n", "pinned-comet-7000", "deployment/a", Status::TagOnly),
            row("n", "pinned-comet-7000", "deployment/b", Status::Drifted),
            row("n", "pinned-comet-7000", "deployment/c", Status::TagOnly),
            row("n", "fleet-2", "deployment/y", Status::Pinned),
        ];
        let v = releases_by_state(&rows);
        let names: Vec<(&str, StateKey)> =
            v.iter().map(|r| (r.release.as_str(), r.state)).collect();
        assert_eq!(
            names,
            [
                ("fleet-2", StateKey::Pinned),
                ("fleet-10", StateKey::TagOnly),
                ("pinned-comet-7000", StateKey::Drifted)
            ]
        );
    }

    #[test]
    fn catalog_counting() {
        assert_eq!(
            count_catalog(&catalog(true), "sha256"),
            Ok(CatalogCount {
                versions: 3,
                with_digest: 3
            })
        );
        assert!(count_catalog("{}", "sha256")
            .unwrap_err()
            .contains("neither"));
        assert!(count_catalog("nope", "sha256")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(crate::core::digest::Digest::parse("sha256:abc").is_err());
        assert!(crate::core::digest::Digest::parse(D).is_ok());
    }

    /// `--platform-namespace ux-plat` given and no Houston there: the fix names that namespace
    /// and how to find the right one instead of asking for the flag again, and the releases
    /// ConfigMap looked for there is said to be missing in ux-plat, not in "" (issue 23).
    #[test]
    fn a_platform_namespace_given_without_houston_is_named() {
        let mut f = good();
        let why = NoHouston::None.error(Some("ux-plat")).message;
        f.platform = Got::Missing(why);
        f.platform_namespace = Some("ux-plat".into());
        f.helm = Got::NotChecked("platform unknown".into());
        f.local_production = Got::NotChecked("platform unknown".into());
        f.releases_configmap = Got::Missing("ConfigMap astro-runtime-base-images not found".into());
        let r = report(&f);
        let fix = &r.problems[0].fix;
        assert!(
            r.problems[0].problem.contains("in namespace \"ux-plat\""),
            "{:?}",
            r.problems
        );
        assert!(!fix.contains("as --platform-namespace"), "{fix}");
        assert!(
            fix.contains("namespace ux-plat (--platform-namespace) has no Houston"),
            "{fix}"
        );
        assert!(
            fix.contains("kubectl get deployments -A -l component=houston"),
            "{fix}"
        );
        assert_eq!(r.releases_config_map.namespace.as_deref(), Some("ux-plat"));
        assert!(
            r.problems.iter().any(|p| p.problem
                == "ConfigMap astro-runtime-base-images not found in namespace ux-plat"),
            "{:?}",
            r.problems
        );
        // Not given: the flag is what to pass.
        f.platform_namespace = None;
        let r = report(&f);
        assert!(r.problems[0].fix.contains("as --platform-namespace"));
    }

    #[test]
    fn tagless_digests_without_a_catalog_are_one_note() {
        let mut tagless = row("a", "r1", "w", Status::Pinned);
        tagless.spec_digest = Some(D.into());
        let rows = Got::Found(vec![tagless, row("a", "r1", "w", Status::Pinned)]);
        let refused: Got<ConfigMap> =
            Got::Unreadable("configmaps in namespace p (forbidden)".into());
        assert_eq!(
            unjudged_tagless(&rows, false, &refused, "cat"),
            Some(UnjudgedTagless {
                containers: 1,
                why: "could not read configmaps in namespace p (forbidden)".into()
            })
        );
        let missing: Got<ConfigMap> = Got::Missing("x".into());
        assert_eq!(
            unjudged_tagless(&rows, false, &missing, "cat").map(|u| u.why),
            Some("no releases ConfigMap cat".into())
        );
        assert_eq!(unjudged_tagless(&rows, true, &missing, "cat"), None);
        let tags = Got::Found(vec![row("a", "r1", "w", Status::Pinned)]);
        assert_eq!(unjudged_tagless(&tags, false, &missing, "cat"), None);
    }
}
