//! The airflow chart values `pin --values-out` writes (`images.airflow.repository/tag/digest`):
//! one image per release, decided from the pin plan ([`release_images`]), so the file pins exactly
//! the build the live pin would apply. Pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::digest::Digest;
use crate::core::edit::{self, RecordState};
use crate::core::image_ref::ImageRef;
use crate::core::inventory::Workload;
use crate::core::plan::{Action, Plan, PlanRow};

/// The one image `pin --values-out` writes for a release: the build the plan leaves every Runtime
/// container of the release on (the edits' targets; the kept pins of containers it leaves alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReleaseImage {
    pub(crate) namespace: String,
    pub(crate) release: String,
    /// `[registry/]repository` as the workloads write it, without tag or digest.
    pub(crate) repository: String,
    /// The Runtime version (the tag), when a container or its pin record names it.
    pub(crate) tag: Option<String>,
    pub(crate) digest: Digest,
}

/// Why a release gets no values file (and, with it, no release does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ValuesRefusal {
    /// After the plan, the release's Runtime containers would run more than one image (another
    /// version, another build or another repository); the chart's values hold one.
    Disagree {
        namespace: String,
        release: String,
        /// Each image (`repository[:version]@digest`, digest short) and the workloads on it.
        images: Vec<(String, BTreeSet<String>)>,
    },
    /// Runtime containers the plan leaves without a digest (refused rows), or whose digest is not
    /// a sha256 digest: `(workload container, why)`.
    Unpinned {
        namespace: String,
        release: String,
        containers: Vec<(String, String)>,
    },
}

impl ValuesRefusal {
    /// What to do about it.
    pub(crate) fn hint(&self) -> &'static str {
        match self {
            ValuesRefusal::Disagree { .. } => "the airflow chart's values pin one image for the whole release: bring its workloads to one Runtime version and build first (let the platform finish the upgrade, or undo the hand edit; a moved tag's builds are settled by --repin), then run again; or pin in the cluster without --values-out, which pins each container to its own image",
            ValuesRefusal::Unpinned { .. } => "fix what the plan refuses (see the reason; for --digest-source running, wait for the rollout to finish), or take digests from another --digest-source, then run again",
        }
    }
}

impl std::fmt::Display for ValuesRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValuesRefusal::Disagree {
                namespace,
                release,
                images,
            } => {
                let list: Vec<String> = images
                    .iter()
                    .map(|(image, ws)| {
                        let ws: Vec<&str> = ws.iter().map(String::as_str).collect();
                        format!("{image} ({})", ws.join(", "))
                    })
                    .collect();
                write!(
                    f,
                    "release {release} ({namespace}): its Runtime containers run {} different images: {}; one values file cannot pin them all",
                    images.len(),
                    list.join(", ")
                )
            }
            ValuesRefusal::Unpinned {
                namespace,
                release,
                containers,
            } => {
                let list: Vec<String> = containers
                    .iter()
                    .map(|(c, why)| format!("{c}: {why}"))
                    .collect();
                write!(
                    f,
                    "release {release} ({namespace}): the plan gives {} Runtime container(s) no digest to pin: {}",
                    containers.len(),
                    list.join("; ")
                )
            }
        }
    }
}

/// One Runtime container as the plan leaves it.
struct PlannedImage {
    workload: String,
    /// `registry/repository`, normalised: the key images are compared by.
    name: String,
    /// The repository as written.
    repository: String,
    version: Option<String>,
    digest: Digest,
}

/// Pure: per release of the plan, the one image its values file pins, or why it cannot have one.
/// The digest is the one the plan's edits carry (so `--repin`, `--digest-source` and the one-build-
/// per-version rule decide it exactly as for the live pin); a container the plan leaves alone
/// keeps its pin. Every refusal is returned, so that nothing is written while any release has one.
pub(crate) fn release_images(
    plan: &Plan,
    workloads: &[Workload],
) -> std::result::Result<Vec<ReleaseImage>, Vec<ValuesRefusal>> {
    let mut by_release: BTreeMap<(String, String), Vec<&PlanRow>> = BTreeMap::new();
    for row in &plan.rows {
        by_release
            .entry((row.namespace.clone(), row.release.clone()))
            .or_default()
            .push(row);
    }
    let mut images = vec![];
    let mut refusals = vec![];
    for ((namespace, release), rows) in by_release {
        let mut targets = vec![];
        let mut unpinned = vec![];
        for row in rows {
            match target(row, workloads) {
                Ok(t) => targets.push(t),
                Err(why) => {
                    unpinned.push((format!("{} container {}", row.workload, row.container), why))
                }
            }
        }
        if !unpinned.is_empty() {
            refusals.push(ValuesRefusal::Unpinned {
                namespace,
                release,
                containers: unpinned,
            });
            continue;
        }
        match one_image(&targets) {
            Some((repository, tag, digest)) => images.push(ReleaseImage {
                namespace,
                release,
                repository,
                tag,
                digest,
            }),
            None => refusals.push(ValuesRefusal::Disagree {
                namespace,
                release,
                images: list_images(&targets),
            }),
        }
    }
    if refusals.is_empty() {
        Ok(images)
    } else {
        Err(refusals)
    }
}

/// The image the plan leaves a row's container on: the edit's target, else the pin it keeps.
fn target(row: &PlanRow, workloads: &[Workload]) -> std::result::Result<PlannedImage, String> {
    if let Action::Refused { reason } = &row.action {
        return Err(format!("refused: {reason}"));
    }
    let from = ImageRef::parse(&row.from).map_err(|e| e.to_string())?;
    let to = match &row.to {
        Some(to) => ImageRef::parse(to).map_err(|e| e.to_string())?,
        None if from.digest().is_some() => from.clone(),
        None => return Err("the plan pins it to no digest".into()),
    };
    let digest = Digest::parse(to.digest().unwrap_or_default()).map_err(|e| e.to_string())?;
    let version = to
        .tag()
        .or(from.tag())
        .map(str::to_string)
        .or_else(|| recorded_version(row, workloads));
    let repository = match to.tag() {
        Some(t) => to.without_digest().strip_suffix(&format!(":{t}")),
        None => None,
    }
    .unwrap_or(to.without_digest())
    .to_string();
    Ok(PlannedImage {
        workload: row.workload.clone(),
        name: to.name(),
        repository,
        version,
        digest,
    })
}

/// The version a `--drop-tag` pin (`repo@sha256:…`) was made from: the tag of the original its
/// current `original-images` record holds.
fn recorded_version(row: &PlanRow, workloads: &[Workload]) -> Option<String> {
    let w = workloads
        .iter()
        .find(|w| w.namespace == row.namespace && w.display_name() == row.workload)?;
    let records = edit::parse_records(w.records_annotation());
    let rec = records.get(&edit::record_key(row.role, &row.container))?;
    if RecordState::of(Some(rec), &row.from) != RecordState::Current {
        return None;
    }
    ImageRef::parse(&rec.original)
        .ok()?
        .tag()
        .map(str::to_string)
}

/// `(repository, version, digest)` when every target is the same image: one repository, one
/// digest, and at most one version named.
fn one_image(targets: &[PlannedImage]) -> Option<(String, Option<String>, Digest)> {
    let first = targets.first()?;
    let versions: BTreeSet<&str> = targets
        .iter()
        .filter_map(|t| t.version.as_deref())
        .collect();
    let same = targets
        .iter()
        .all(|t| t.name == first.name && t.digest == first.digest);
    if !same || versions.len() > 1 {
        return None;
    }
    let version = versions.into_iter().next().map(str::to_string);
    Some((first.repository.clone(), version, first.digest.clone()))
}

/// Each image the targets run, with its workloads.
fn list_images(targets: &[PlannedImage]) -> Vec<(String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in targets {
        let version = t
            .version
            .as_deref()
            .map(|v| format!(":{v}"))
            .unwrap_or_default();
        out.entry(format!("{}{version}@{}", t.repository, t.digest.short()))
            .or_default()
            .insert(t.workload.clone());
    }
    out.into_iter().collect()
}

/// The airflow chart values that pin `image` (`images.airflow.*`).
pub(crate) fn release_values(image: &ReleaseImage) -> String {
    format!(
        "# Airflow chart values pinning the Astro Runtime image of release {} ({}).\n# Generated by kubectl astro-sha pin --values-out; merge into the release's values.\nimages:\n  airflow:\n    repository: {}\n    tag: \"{}\"\n    digest: \"{}\"\n",
        image.release,
        image.namespace,
        image.repository,
        image.tag.as_deref().unwrap_or(""),
        image.digest
    )
}

/// `pin --values-out`: the image per release, decided from pin plans built on fixture workloads.
#[cfg(test)]
mod release_image_tests {
    use std::collections::{BTreeMap, HashMap};

    use k8s_openapi::api::core::v1::Pod;

    use super::*;
    use crate::core::catalog::DigestField;
    use crate::core::inventory::{ContainerImage, Kind, PodImages, Role, RuntimeMatcher};
    use crate::core::plan::{plan, CatalogDigests, DigestSource, PlanOptions};
    use crate::core::pullsecrets::Resolutions;
    use crate::core::resolution::Resolved;
    use crate::core::values::get;
    use serde_yaml_ng::Value;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const REPO: &str = "q.io/astronomer/astro-runtime";
    const TAG: &str = "q.io/astronomer/astro-runtime:9.3.0";
    const NEW_TAG: &str = "q.io/astronomer/astro-runtime:9.4.0";

    /// A workload of release `rel` (namespace `ns`) whose container `c` runs `image`.
    fn wl(rel: &str, kind: Kind, name: &str, image: &str, records: Option<String>) -> Workload {
        let mut annotations = BTreeMap::new();
        if let Some(r) = records {
            annotations.insert(
                crate::core::names::ORIGINAL_IMAGES_ANNOTATION.to_string(),
                r,
            );
        }
        let pod_selector = match kind {
            Kind::Deployment | Kind::StatefulSet => BTreeMap::from([
                ("component".to_string(), name.to_string()),
                ("release".to_string(), rel.to_string()),
            ]),
            _ => BTreeMap::new(),
        };
        Workload {
            kind,
            namespace: "ns".into(),
            name: format!("{rel}-{name}"),
            release: rel.into(),
            component: Some(name.into()),
            containers: vec![ContainerImage {
                container: "c".into(),
                role: Role::Container,
                index: 0,
                image: image.into(),
            }],
            pod_selector,
            annotations,
            pull_secrets: vec![],
            service_account: None,
            template_text: None,
            problem: None,
            resource_version: None,
        }
    }

    /// The registry's answers: tag -> digest.
    fn reg(pairs: &[(&str, &str)]) -> Resolutions {
        let map: HashMap<_, _> = pairs
            .iter()
            .map(|(tag, d)| {
                let r = Resolved {
                    source: String::new(),
                    mirrored: false,
                    digest: d.to_string(),
                    media_type: String::new(),
                    platforms: vec![],
                    platform_digest: None,
                };
                (tag.to_string(), Ok(r))
            })
            .collect();
        Resolutions::from(map)
    }

    /// A pod of `rel`'s `component` whose container `c` reports `digest` as its imageID.
    fn pod(rel: &str, component: &str, i: usize, digest: &str) -> PodImages {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{rel}-{component}-{i}"), "namespace": "ns",
                "labels": {"component": component, "release": rel}},
            "spec": {"containers": []},
            "status": {"containerStatuses": [{"name": "c", "image": "x",
                "imageID": format!("docker-pullable://{REPO}@{digest}"),
                "ready": true, "restartCount": 0}]}
        }))
        .unwrap();
        PodImages::from(&pod)
    }

    fn plan_with(
        workloads: &[Workload],
        resolved: &Resolutions,
        source: DigestSource,
        repin: bool,
        pods: &[PodImages],
    ) -> Plan {
        let m = RuntimeMatcher::new(&[], false);
        let p = plan(
            workloads,
            resolved,
            &PlanOptions {
                drop_tag: false,
                repin,
                matcher: &m,
                source,
                pods,
            },
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        p
    }

    /// The one image of the only release, or the refusals.
    fn decide(
        workloads: &[Workload],
        resolved: &Resolutions,
        source: DigestSource,
        repin: bool,
        pods: &[PodImages],
    ) -> std::result::Result<Vec<ReleaseImage>, Vec<ValuesRefusal>> {
        let p = plan_with(workloads, resolved, source, repin, pods);
        release_images(&p, workloads)
    }

    fn image(release: &str, tag: &str, digest: &str) -> ReleaseImage {
        ReleaseImage {
            namespace: "ns".into(),
            release: release.into(),
            repository: REPO.into(),
            tag: Some(tag.into()),
            digest: Digest::parse(digest).unwrap(),
        }
    }

    /// Issue 24: the webserver pinned to the first build, the scheduler on the tag, the tag moved
    /// to a second build. The plan gives the scheduler the release's build; so does the file.
    /// (The file took the first container it met and re-derived the digest: with the scheduler
    /// first, the registry's second build.)
    #[test]
    fn a_moved_tag_partial_pin_writes_the_build_the_plan_applies() {
        let sched = wl("r", Kind::StatefulSet, "scheduler", TAG, None);
        let web = wl(
            "r",
            Kind::Deployment,
            "webserver",
            &format!("{TAG}@{D1}"),
            None,
        );
        let r = reg(&[(TAG, D2)]);
        let ws = [sched, web];
        let p = plan_with(&ws, &r, DigestSource::Registry, false, &[]);
        assert_eq!(p.edits[0].images[0].to, format!("{TAG}@{D1}"));
        assert_eq!(release_images(&p, &ws), Ok(vec![image("r", "9.3.0", D1)]));
        // --repin moves the whole release, the file with it.
        assert_eq!(
            decide(&ws, &r, DigestSource::Registry, true, &[]),
            Ok(vec![image("r", "9.3.0", D2)])
        );
    }

    #[test]
    fn a_fully_pinned_release_writes_the_pins_it_keeps() {
        let ws = [
            wl(
                "r",
                Kind::Deployment,
                "webserver",
                &format!("{TAG}@{D1}"),
                None,
            ),
            wl(
                "r",
                Kind::Deployment,
                "scheduler",
                &format!("{TAG}@{D1}"),
                None,
            ),
        ];
        let moved = reg(&[(TAG, D2)]);
        assert_eq!(
            decide(&ws, &moved, DigestSource::Registry, false, &[]),
            Ok(vec![image("r", "9.3.0", D1)])
        );
    }

    #[test]
    fn a_drop_tag_pin_takes_its_version_from_its_record() {
        let pinned = format!("{REPO}@{D1}");
        let rec = serde_json::json!({"container:c": {"original": TAG, "pinned": pinned}});
        let ws = [wl(
            "r",
            Kind::Deployment,
            "webserver",
            &pinned,
            Some(rec.to_string()),
        )];
        let got = decide(&ws, &reg(&[(TAG, D1)]), DigestSource::Registry, false, &[]);
        assert_eq!(got, Ok(vec![image("r", "9.3.0", D1)]));
    }

    #[test]
    fn digest_source_running_writes_what_the_pods_run() {
        let ws = [
            wl("r", Kind::Deployment, "webserver", TAG, None),
            wl("r", Kind::CronJob, "cleanup", TAG, None),
        ];
        let pods = [pod("r", "webserver", 0, D1), pod("r", "webserver", 1, D1)];
        // The registry is not asked (it would say D2): the pods' build is frozen.
        assert_eq!(
            decide(
                &ws,
                &Resolutions::default(),
                DigestSource::Running,
                false,
                &pods
            ),
            Ok(vec![image("r", "9.3.0", D1)])
        );
        // Pods that disagree: the plan refuses the row, and the release gets no file.
        let pods = [pod("r", "webserver", 0, D1), pod("r", "webserver", 1, D2)];
        let got = decide(
            &ws,
            &Resolutions::default(),
            DigestSource::Running,
            false,
            &pods,
        );
        let Err(refusals) = got else {
            panic!("{got:?}")
        };
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        let text = refusals[0].to_string();
        assert!(
            text.contains("release r (ns)")
                && text.contains(
                    "deployment/r-webserver container c: refused: its pods run 2 different builds"
                ),
            "{text}"
        );
        assert!(refusals[0].hint().contains("--digest-source"));
    }

    #[test]
    fn digest_source_configmap_writes_houstons_digest() {
        let ws = [wl("r", Kind::Deployment, "webserver", TAG, None)];
        let cat = CatalogDigests::from_catalog(
            &serde_json::json!({"runtimeVersions": {"9.3.0": {"sha256": D2}}}),
            &DigestField::default(),
        );
        assert_eq!(
            decide(
                &ws,
                &reg(&[(TAG, D1)]),
                DigestSource::ConfigMap(&cat),
                false,
                &[]
            ),
            Ok(vec![image("r", "9.3.0", D2)])
        );
    }

    #[test]
    fn a_release_on_two_versions_is_refused_with_the_versions_listed() {
        let ws = [
            wl("r", Kind::Deployment, "webserver", TAG, None),
            wl("r", Kind::StatefulSet, "scheduler", NEW_TAG, None),
            wl("r", Kind::StatefulSet, "worker", NEW_TAG, None),
            wl("ok", Kind::Deployment, "webserver", TAG, None),
        ];
        let r = reg(&[(TAG, D1), (NEW_TAG, D2)]);
        let got = decide(&ws, &r, DigestSource::Registry, false, &[]);
        let Err(refusals) = got else {
            panic!("{got:?}")
        };
        assert_eq!(
            refusals,
            vec![ValuesRefusal::Disagree {
                namespace: "ns".into(),
                release: "r".into(),
                images: vec![
                    (
                        format!("{TAG}@sha256:111111111111"),
                        BTreeSet::from(["deployment/r-webserver".to_string()])
                    ),
                    (
                        format!("{NEW_TAG}@sha256:222222222222"),
                        BTreeSet::from([
                            "statefulset/r-scheduler".to_string(),
                            "statefulset/r-worker".to_string()
                        ])
                    ),
                ],
            }]
        );
        let text = refusals[0].to_string();
        assert!(
            text.starts_with("release r (ns): its Runtime containers run 2 different images: q.io/astronomer/astro-runtime:9.3.0@sha256:111111111111 (deployment/r-webserver), q.io/astronomer/astro-runtime:9.4.0@sha256:222222222222 (statefulset/r-scheduler, statefulset/r-worker)"),
            "{text}"
        );
        assert!(refusals[0].hint().contains("one Runtime version"));
    }

    #[test]
    fn one_version_on_two_builds_or_two_repositories_is_refused() {
        // A hand-made pin without a tag or record (version unknown) on another build.
        let ws = [
            wl(
                "r",
                Kind::Deployment,
                "webserver",
                &format!("{TAG}@{D1}"),
                None,
            ),
            wl(
                "r",
                Kind::Deployment,
                "scheduler",
                &format!("{REPO}@{D2}"),
                None,
            ),
        ];
        let r = reg(&[(TAG, D1)]);
        let got = decide(&ws, &r, DigestSource::Registry, false, &[]);
        assert!(
            matches!(&got, Err(v) if matches!(v[..], [ValuesRefusal::Disagree { .. }])),
            "{got:?}"
        );
        let mirror = "mirror.corp/astronomer/astro-runtime:9.3.0";
        let ws = [
            wl(
                "r",
                Kind::Deployment,
                "webserver",
                &format!("{TAG}@{D1}"),
                None,
            ),
            wl(
                "r",
                Kind::Deployment,
                "scheduler",
                &format!("{mirror}@{D1}"),
                None,
            ),
        ];
        let got = decide(&ws, &r, DigestSource::Registry, false, &[]);
        assert!(
            matches!(&got, Err(v) if matches!(v[..], [ValuesRefusal::Disagree { .. }])),
            "{got:?}"
        );
    }

    #[test]
    fn every_release_gets_its_own_image() {
        let ws = [
            wl("a", Kind::Deployment, "webserver", TAG, None),
            wl("b", Kind::Deployment, "webserver", NEW_TAG, None),
        ];
        let r = reg(&[(TAG, D1), (NEW_TAG, D2)]);
        assert_eq!(
            decide(&ws, &r, DigestSource::Registry, false, &[]),
            Ok(vec![image("a", "9.3.0", D1), image("b", "9.4.0", D2)])
        );
    }

    #[test]
    fn release_values_are_the_chart_keys() {
        let text = release_values(&image("r", "9.3.0", D1));
        let v: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            get(&v, &["images", "airflow", "repository"]),
            Some(&Value::from(REPO))
        );
        assert_eq!(
            get(&v, &["images", "airflow", "tag"]),
            Some(&Value::from("9.3.0"))
        );
        assert_eq!(
            get(&v, &["images", "airflow", "digest"]),
            Some(&Value::from(D1))
        );
    }
}
