//! The pure model of what runs: every container image of every Airflow workload, found in the
//! listed objects. No I/O here, so `show`, `pin` and `status` are all computed from the same
//! fixtures in unit tests.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec};
use kube::api::DynamicObject;
use serde::Serialize;

pub(crate) use crate::core::container::{ContainerImage, Role};
use crate::core::image_ref::ImageRef;
use crate::core::names::{AIRFLOW2_REPOSITORY, AIRFLOW3_REPOSITORY};

/// ConfigMap key holding the KubernetesExecutor pod template.
pub(crate) use crate::core::names::POD_TEMPLATE_KEY;
/// Annotation that records the images a pin replaced, so `unpin` restores them exactly (and
/// where earlier builds wrote it).
pub(crate) use crate::core::names::{
    LEGACY_ORIGINAL_IMAGES_ANNOTATION, ORIGINAL_IMAGES_ANNOTATION,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) enum Kind {
    Deployment,
    StatefulSet,
    CronJob,
    /// The KubernetesExecutor pod template in `<release>-config`.
    ConfigMap,
}

impl Kind {
    pub(crate) fn lower(&self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::CronJob => "cronjob",
            Kind::ConfigMap => "configmap",
        }
    }
    pub(crate) fn resource(&self) -> &'static str {
        match self {
            Kind::Deployment => "deployments.apps",
            Kind::StatefulSet => "statefulsets.apps",
            Kind::CronJob => "cronjobs.batch",
            Kind::ConfigMap => "configmaps",
        }
    }
}

/// What `kube::client::Cluster::fetch_airflow` read, already reduced to the model as each page
/// of the lists arrived: the workloads (sorted, see [`sort`]) and what their pods run.
#[derive(Default, Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) workloads: Vec<Workload>,
    pub(crate) pods: Vec<PodImages>,
}

/// What the model reads of a pod: where it is, its labels (to match a workload's selector) and
/// the image ID the kubelet reports for each container (`status.containerStatuses[].imageID`,
/// `initContainerStatuses` apart). A few hundred bytes where the pod's JSON is ~16 KB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PodImages {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    /// (role, container name, imageID) as reported, in status order.
    pub(crate) image_ids: Vec<(Role, String, String)>,
}

impl PodImages {
    /// The imageID reported for this container, if its status is there.
    fn image_id(&self, role: Role, container: &str) -> Option<&str> {
        self.image_ids
            .iter()
            .find(|(r, n, _)| *r == role && n == container)
            .map(|(_, _, id)| id.as_str())
    }

    /// Every imageID reported for this container.
    fn image_ids_of<'a>(&'a self, role: Role, container: &'a str) -> impl Iterator<Item = &'a str> {
        self.image_ids
            .iter()
            .filter(move |(r, n, _)| *r == role && n == container)
            .map(|(_, _, id)| id.as_str())
    }
}

impl From<&Pod> for PodImages {
    fn from(p: &Pod) -> Self {
        let mut image_ids = vec![];
        if let Some(st) = &p.status {
            for (role, list) in [
                (Role::Container, &st.container_statuses),
                (Role::Init, &st.init_container_statuses),
            ] {
                for cs in list.iter().flatten() {
                    image_ids.push((role, cs.name.clone(), cs.image_id.clone()));
                }
            }
        }
        PodImages {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            labels: p.metadata.labels.clone().unwrap_or_default(),
            image_ids,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Workload {
    pub(crate) kind: Kind,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) release: String,
    pub(crate) component: Option<String>,
    pub(crate) containers: Vec<ContainerImage>,
    /// Selector labels of its pods (empty: running state is not tracked, e.g. CronJobs).
    #[serde(skip)]
    pub(crate) pod_selector: BTreeMap<String, String>,
    #[serde(skip)]
    pub(crate) annotations: BTreeMap<String, String>,
    #[serde(skip)]
    pub(crate) pull_secrets: Vec<String>,
    /// The ServiceAccount its pods run as (`None`: `default`); its pull secrets apply when the
    /// pod spec names none (see `core::pullsecrets`).
    #[serde(skip)]
    pub(crate) service_account: Option<String>,
    /// For the pod template: the whole YAML text.
    #[serde(skip)]
    pub(crate) template_text: Option<String>,
    /// Why this object's images could not be read (e.g. a pod template that is not valid YAML).
    #[serde(skip)]
    pub(crate) problem: Option<String>,
    #[serde(skip)]
    pub(crate) resource_version: Option<String>,
}

impl Workload {
    pub(crate) fn display_name(&self) -> String {
        format!("{}/{}", self.kind.lower(), self.name)
    }

    /// The `original-images` records annotation: under the current key, else under the key of
    /// builds before v0.1.0.
    pub(crate) fn records_annotation(&self) -> Option<&String> {
        self.annotations
            .get(ORIGINAL_IMAGES_ANNOTATION)
            .or_else(|| self.annotations.get(LEGACY_ORIGINAL_IMAGES_ANNOTATION))
    }

    /// Whether the records are only under the legacy key (pinned by a build before v0.1.0).
    pub(crate) fn records_at_legacy_key(&self) -> bool {
        !self.annotations.contains_key(ORIGINAL_IMAGES_ANNOTATION)
            && self
                .annotations
                .contains_key(LEGACY_ORIGINAL_IMAGES_ANNOTATION)
    }
}

/// Which images count as the Runtime.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuntimeMatcher {
    explicit: Vec<String>,
    all_images: bool,
}

pub(crate) const DEFAULT_RUNTIME_REPOSITORIES: [&str; 2] =
    [AIRFLOW2_REPOSITORY, AIRFLOW3_REPOSITORY];

impl RuntimeMatcher {
    pub(crate) fn new(repositories: &[String], all_images: bool) -> Self {
        let explicit = repositories
            .iter()
            .map(|r| {
                let r = r.trim().trim_end_matches('/');
                // Normalise `astronomer/astro-runtime` to `docker.io/astronomer/astro-runtime` the
                // same way image references are normalised.
                ImageRef::parse(r)
                    .map(|i| i.name())
                    .unwrap_or_else(|_| r.to_string())
            })
            .collect();
        RuntimeMatcher {
            explicit,
            all_images,
        }
    }

    pub(crate) fn all_images(&self) -> bool {
        self.all_images
    }

    /// For a reference that does not parse: whether it would name a Runtime image once its
    /// usual typos (upper case, surrounding blanks) are fixed. Such a container is reported as
    /// broken instead of being skipped as "not the Runtime".
    pub(crate) fn looks_like_runtime(&self, raw: &str) -> bool {
        ImageRef::parse(&raw.trim().to_ascii_lowercase()).is_ok_and(|i| self.is_runtime(&i))
    }

    pub(crate) fn is_runtime(&self, image: &ImageRef) -> bool {
        if self.all_images {
            return true;
        }
        let name = image.name();
        if !self.explicit.is_empty() {
            return self.explicit.contains(&name);
        }
        let repo = image.repository();
        DEFAULT_RUNTIME_REPOSITORIES.contains(&name.as_str())
            || repo == "astro-runtime"
            || repo.ends_with("/astro-runtime")
            || repo == "runtime"
            || repo.ends_with("/runtime")
    }
}

fn meta_str(m: &Option<BTreeMap<String, String>>, key: &str) -> Option<String> {
    m.as_ref().and_then(|l| l.get(key)).cloned()
}

fn containers_of(spec: &PodSpec) -> Vec<ContainerImage> {
    let mut out = vec![];
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        out.push(ContainerImage {
            container: c.name.clone(),
            role: Role::Init,
            index: i,
            image: c.image.clone().unwrap_or_default(),
        });
    }
    for (i, c) in spec.containers.iter().enumerate() {
        out.push(ContainerImage {
            container: c.name.clone(),
            role: Role::Container,
            index: i,
            image: c.image.clone().unwrap_or_default(),
        });
    }
    out
}

fn pull_secret_names(spec: &PodSpec) -> Vec<String> {
    spec.image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.clone())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The workload of a Deployment (`None`: no pod spec, or no `release` label: not an
/// Airflow-chart object).
pub(crate) fn deployment(d: &Deployment) -> Option<Workload> {
    let spec = &d.spec;
    let pod = spec.template.spec.as_ref()?;
    workload_of(
        Kind::Deployment,
        &d.metadata,
        pod,
        spec.selector.match_labels.clone().unwrap_or_default(),
    )
}

/// The workload of a StatefulSet (as [`deployment`]).
pub(crate) fn statefulset(s: &StatefulSet) -> Option<Workload> {
    let spec = &s.spec;
    let pod = spec.template.spec.as_ref()?;
    workload_of(
        Kind::StatefulSet,
        &s.metadata,
        pod,
        spec.selector.match_labels.clone().unwrap_or_default(),
    )
}

/// The workload of a CronJob (its job's pod template; its pods are not tracked).
pub(crate) fn cronjob(c: &DynamicObject) -> Option<Workload> {
    let pod = c
        .data
        .pointer("/spec/jobTemplate/spec/template/spec")
        .cloned()
        .and_then(|v| serde_json::from_value::<PodSpec>(v).ok())?;
    workload_of(Kind::CronJob, &c.metadata, &pod, BTreeMap::new())
}

/// The KubernetesExecutor pod template of a `<release>-config` ConfigMap, as a workload
/// (`None`: no template key or no `release` label). A template that is not valid YAML is a
/// workload with a problem, so its row is never silently missing.
pub(crate) fn pod_template(cm: &ConfigMap) -> Option<Workload> {
    let text = cm.data.as_ref().and_then(|d| d.get(POD_TEMPLATE_KEY))?;
    let release = meta_str(&cm.metadata.labels, "release")?;
    let (images, problem) = match crate::core::podtemplate::parse(text) {
        Ok(i) => (i, None),
        Err(e) => (
            vec![],
            Some(format!("{POD_TEMPLATE_KEY} is not valid YAML: {e}")),
        ),
    };
    let (pull_secrets, service_account) = crate::core::podtemplate::pull_auth(text);
    Some(Workload {
        kind: Kind::ConfigMap,
        namespace: cm.metadata.namespace.clone().unwrap_or_default(),
        name: cm.metadata.name.clone().unwrap_or_default(),
        release,
        component: Some("pod-template".into()),
        containers: images,
        pod_selector: BTreeMap::new(),
        annotations: cm.metadata.annotations.clone().unwrap_or_default(),
        pull_secrets,
        service_account,
        template_text: Some(text.clone()),
        problem,
        resource_version: cm.metadata.resource_version.clone(),
    })
}

/// The order every command shows workloads in: namespace, release, kind, name.
pub(crate) fn sort(workloads: &mut [Workload]) {
    workloads.sort_by(|a, b| {
        (&a.namespace, &a.release, a.kind, &a.name).cmp(&(
            &b.namespace,
            &b.release,
            b.kind,
            &b.name,
        ))
    });
}

fn workload_of(
    kind: Kind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    pod: &PodSpec,
    selector: BTreeMap<String, String>,
) -> Option<Workload> {
    let release = meta_str(&meta.labels, "release")?;
    Some(Workload {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        release,
        component: meta_str(&meta.labels, "component"),
        containers: containers_of(pod),
        pod_selector: selector,
        annotations: meta.annotations.clone().unwrap_or_default(),
        pull_secrets: pull_secret_names(pod),
        service_account: pod
            .service_account_name
            .clone()
            .or_else(|| pod.service_account.clone())
            .filter(|s| !s.is_empty()),
        template_text: None,
        problem: None,
        resource_version: meta.resource_version.clone(),
    })
}

/// What the pods of a workload actually run, per container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "digest")]
pub(crate) enum Running {
    /// No pods, or none reporting an image ID with a digest.
    Unknown,
    Digest(String),
    /// Pods of the workload run different digests.
    Mixed(Vec<String>),
}

/// The digest a kubelet recorded, from `imageID` (`docker-pullable://repo@sha256:..`,
/// `repo@sha256:..`). A bare `sha256:` is a local image ID on some runtimes, not a manifest digest,
/// so it is ignored.
pub(crate) fn digest_from_image_id(id: &str) -> Option<String> {
    let (_, d) = id.rsplit_once('@')?;
    d.starts_with("sha256:").then(|| d.to_string())
}

/// Running digests of a workload's container across its pods.
pub(crate) fn running(
    workload: &Workload,
    container: &ContainerImage,
    pods: &[&PodImages],
) -> Running {
    if workload.pod_selector.is_empty() {
        return Running::Unknown;
    }
    let mut seen = BTreeSet::new();
    for pod in pods.iter().filter(|p| selects(workload, p)) {
        for id in pod.image_ids_of(container.role, &container.container) {
            if let Some(d) = digest_from_image_id(id) {
                seen.insert(d);
            }
        }
    }
    match seen.len() {
        0 => Running::Unknown,
        1 => Running::Digest(seen.into_iter().next().unwrap_or_default()),
        _ => Running::Mixed(seen.into_iter().collect()),
    }
}

/// The one digest every pod of `workload` runs for `container`, for `pin --digest-source running`,
/// or why there is none. Stricter than [`running`]: every selected pod must report an `imageID`
/// (a pod that has not pulled yet could pull another build), and the `imageID`'s repository must
/// be the container's own (a digest of another repository pins nothing here). The kubelet records
/// in `status.containerStatuses[].imageID` the digest the node actually pulled.
pub(crate) fn running_agreed(
    workload: &Workload,
    container: &ContainerImage,
    pods: &[&PodImages],
) -> Result<String, String> {
    if workload.pod_selector.is_empty() {
        return Err(format!(
            "a {} has no pods of its own to read",
            workload.kind.lower()
        ));
    }
    let want = ImageRef::parse(&container.image)
        .map(|i| i.name())
        .map_err(|e| e.to_string())?;
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| selects(workload, p)) {
        let name = pod.name.clone();
        let id = pod
            .image_id(container.role, &container.container)
            .unwrap_or("");
        let Some((repo, digest)) = image_id_parts(id) else {
            return Err(format!(
                "pod {name} reports no image digest for it (not started yet?)"
            ));
        };
        if repo.as_deref().is_some_and(|r| r != want) {
            return Err(format!(
                "pod {name} runs {}@{digest}, not a build of {want}",
                repo.unwrap_or_default()
            ));
        }
        seen.entry(digest).or_default().push(name);
    }
    let mut it = seen.into_iter();
    match (it.next(), it.next()) {
        (None, _) => Err("no pod of it runs (nothing to freeze)".into()),
        (Some((d, _)), None) => Ok(d),
        (Some(a), Some(b)) => {
            let mut all = vec![a, b];
            all.extend(it);
            let list: Vec<String> = all
                .iter()
                .map(|(d, pods)| format!("{} ({})", crate::core::short_digest(d), pods.join(", ")))
                .collect();
            Err(format!(
                "its pods run {} different builds: {}",
                all.len(),
                list.join("; ")
            ))
        }
    }
}

/// Whether `pod` belongs to `workload` (same namespace, every selector label).
fn selects(workload: &Workload, pod: &PodImages) -> bool {
    pod.namespace == workload.namespace
        && workload
            .pod_selector
            .iter()
            .all(|(k, v)| pod.labels.get(k) == Some(v))
}

/// The repository (normalised, when the `imageID` names one) and the digest of an `imageID`
/// (`docker-pullable://quay.io/x@sha256:..`, `quay.io/x@sha256:..`).
fn image_id_parts(id: &str) -> Option<(Option<String>, String)> {
    let digest = digest_from_image_id(id)?;
    let before = id.rsplit_once('@').map(|(r, _)| r).unwrap_or("");
    let before = before.split_once("://").map(|(_, r)| r).unwrap_or(before);
    let repo = (!before.is_empty())
        .then(|| ImageRef::parse(before).ok().map(|i| i.name()))
        .flatten();
    Some((repo, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_matching_defaults_and_overrides() {
        let m = RuntimeMatcher::new(&[], false);
        for yes in [
            "quay.io/astronomer/astro-runtime:12.1.0",
            "astrocrpublic.azurecr.io/runtime:3.1-2",
            "mirror.corp:5000/astronomer/astro-runtime:9.3.0",
            "127.0.0.1:5000/runtime:3.1-1",
        ] {
            assert!(m.is_runtime(&ImageRef::parse(yes).unwrap()), "{yes}");
        }
        for no in [
            "quay.io/prometheus/statsd-exporter:v0.26.1",
            "quay.io/astronomer/ap-pgbouncer:1.22.1",
            "quay.io/astronomer/astro-runtime-extra:1",
            "example.com/myruntime:1",
        ] {
            assert!(!m.is_runtime(&ImageRef::parse(no).unwrap()), "{no}");
        }
        let m = RuntimeMatcher::new(&["mirror.corp/team/airflow".into()], false);
        assert!(m.is_runtime(&ImageRef::parse("mirror.corp/team/airflow:1").unwrap()));
        assert!(!m.is_runtime(&ImageRef::parse("quay.io/astronomer/astro-runtime:1").unwrap()));
        assert!(RuntimeMatcher::new(&[], true).is_runtime(&ImageRef::parse("redis:7").unwrap()));
    }

    #[test]
    fn image_ids() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            digest_from_image_id(&format!("docker-pullable://quay.io/x@{d}")),
            Some(d.clone())
        );
        assert_eq!(digest_from_image_id(&format!("quay.io/x@{d}")), Some(d));
        assert_eq!(digest_from_image_id("sha256:abc"), None);
        assert_eq!(digest_from_image_id(""), None);
    }
}
