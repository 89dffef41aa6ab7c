//! The report `show` prints and `status` aggregates: workloads, pods, registry answers and the
//! releases catalog in, one [`Row`] per Runtime container out, and `--check`'s [`Verdict`] over
//! them. Pure.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::core::catalog_index::{CatalogIndex, CatalogMatch, Judgement, VersionSource};
use crate::core::edit::{self, RecordState, Recorded};
use crate::core::image_ref::ImageRef;
use crate::core::inventory::{self, ContainerImage, PodImages, Running, RuntimeMatcher, Workload};
use crate::core::pullsecrets::Resolutions;
use crate::core::resolution::Resolved;
use crate::core::state::{lookup_ref, status, Check, Row, StateKey, Status};

/// `--check` over a report's rows: how many failed, which workloads could not be checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) containers: usize,
    pub(crate) failed: usize,
    pub(crate) unknown: usize,
    /// `namespace/workload` of each container that could not be checked, once each.
    pub(crate) unknown_workloads: Vec<String>,
}

impl Verdict {
    pub(crate) fn of(rows: &[Row]) -> Verdict {
        let mut v = Verdict {
            containers: rows.len(),
            ..Verdict::default()
        };
        for r in rows {
            match r.check() {
                Check::Pass => {}
                Check::Fail => v.failed += 1,
                Check::Unknown => {
                    v.unknown += 1;
                    let w = format!("{}/{}", r.namespace, r.workload);
                    if !v.unknown_workloads.contains(&w) {
                        v.unknown_workloads.push(w);
                    }
                }
            }
        }
        v
    }

    /// Passed: there is something to check, and every container is known to pass. No container
    /// at all is not a pass either (a wrong namespace must not read as "all pinned").
    pub(crate) fn passed(&self) -> bool {
        self.containers > 0 && self.failed == 0 && self.unknown == 0
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) items: Vec<Row>,
    pub(crate) summary: BTreeMap<String, usize>,
}

impl Report {
    /// How many containers' tags could not be looked up (what makes `show` exit 1).
    pub(crate) fn unresolved(&self) -> usize {
        self.items
            .iter()
            .filter(|r| r.state.kind() == StateKey::Unresolved)
            .count()
    }
}

/// Pure: builds the report rows (without a releases catalog: a tagless digest has no version).
#[cfg(test)]
pub(crate) fn report(
    workloads: &[Workload],
    pods: &[PodImages],
    matcher: &RuntimeMatcher,
    resolved: &Resolutions,
) -> Report {
    report_with_catalog(workloads, pods, matcher, resolved, None)
}

/// The version a tagless container was pinned from: the tag its `original-images` record names,
/// while the record still describes the container (current, or superseded by Houston).
pub(crate) fn pinned_from(rec: Option<&Recorded>, image: &str) -> Option<String> {
    let r = rec?;
    if !matches!(
        RecordState::of(Some(r), image),
        RecordState::Current | RecordState::Superseded
    ) {
        return None;
    }
    [&r.pinned, &r.original]
        .into_iter()
        .find_map(|i| ImageRef::parse(i).ok()?.tag().map(str::to_string))
}

/// A pinned container's state once the catalog has judged its tagless digest.
fn with_catalog(state: Status, judged: Option<&Judgement>) -> Status {
    match (state, judged.map(|j| (j.check, &j.expected))) {
        (Status::Pinned, Some((CatalogMatch::OtherVersion, Some(e)))) => {
            Status::OtherVersion(e.clone())
        }
        (Status::Pinned, Some((CatalogMatch::Unlisted, _))) => Status::UnlistedBuild,
        (s, _) => s,
    }
}

/// One row's facts, before they become a [`Row`].
struct Facts<'a> {
    state: Status,
    image: Option<&'a ImageRef>,
    reg: Option<&'a Resolved>,
    running: Running,
    judged: Option<Judgement>,
}

fn row(w: &Workload, c: &ContainerImage, record: RecordState, f: Facts) -> Row {
    let tag = f.image.and_then(|i| i.tag()).map(str::to_string);
    let (version, version_source) = match (&tag, &f.judged) {
        (Some(t), _) => (Some(t.clone()), Some(VersionSource::Tag)),
        (None, Some(j)) if j.version.is_some() => (j.version.clone(), Some(VersionSource::Catalog)),
        _ => (None, None),
    };
    Row {
        namespace: w.namespace.clone(),
        release: w.release.clone(),
        workload: w.display_name(),
        container: c.container.clone(),
        role: c.role,
        image: c.image.clone(),
        tag,
        version,
        version_source,
        catalog: f.judged.as_ref().map(|j| j.check),
        expected_version: f
            .judged
            .as_ref()
            .filter(|j| j.check == CatalogMatch::OtherVersion)
            .and_then(|j| j.expected.clone()),
        spec_digest: f.image.and_then(|i| i.digest()).map(str::to_string),
        registry_digest: f.reg.map(|r| r.digest.clone()),
        registry_source: f.reg.filter(|r| r.mirrored).map(|r| r.source.clone()),
        running: f.running,
        status: f.state.label(),
        record,
        state: f.state,
        own_pods: !w.pod_selector.is_empty(),
    }
}

/// Pure: builds the report rows; with the releases catalog (`catalog`), a tagless
/// `repository@sha256:…` gets the version the catalog lists its digest for, and a state that says
/// whether the catalog lists it (for that version, for another, or not at all).
pub(crate) fn report_with_catalog(
    workloads: &[Workload],
    pods: &[PodImages],
    matcher: &RuntimeMatcher,
    resolved: &Resolutions,
    catalog: Option<&CatalogIndex>,
) -> Report {
    let pod_refs: Vec<&PodImages> = pods.iter().collect();
    let mut items = vec![];
    for w in workloads {
        let records = edit::parse_records(w.records_annotation());
        for c in &w.containers {
            let rec = records.get(&edit::record_key(c.role, &c.container));
            let record = RecordState::of(rec, &c.image);
            let Ok(img) = ImageRef::parse(&c.image) else {
                if matcher.all_images() || matcher.looks_like_runtime(&c.image) {
                    let facts = Facts {
                        state: Status::Unresolved("invalid reference".into()),
                        image: None,
                        reg: None,
                        running: Running::Unknown,
                        judged: None,
                    };
                    items.push(row(w, c, record, facts));
                }
                continue;
            };
            if !matcher.is_runtime(&img) {
                continue;
            }
            let running = inventory::running(w, c, &pod_refs);
            let reg = lookup_ref(&img).and_then(|l| resolved.get(w, l.original()));
            let judged = catalog.and_then(|i| i.judge(&img, pinned_from(rec, &c.image).as_deref()));
            let state = with_catalog(status(img.digest(), reg, &running), judged.as_ref());
            let facts = Facts {
                state,
                image: Some(&img),
                reg: reg.and_then(|r| r.as_ref().ok()),
                running,
                judged,
            };
            items.push(row(w, c, record, facts));
        }
    }
    let mut summary = BTreeMap::new();
    for r in &items {
        *summary.entry(r.state.key().to_string()).or_insert(0) += 1;
    }
    Report { items, summary }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::inventory::{Role, ORIGINAL_IMAGES_ANNOTATION};
    use crate::core::resolution::RegistryError;

    fn res(d: &str) -> Result<Resolved, RegistryError> {
        Ok(Resolved {
            source: String::new(),
            mirrored: false,
            digest: d.into(),
            media_type: String::new(),
            platforms: vec![],
            platform_digest: None,
        })
    }

    #[test]
    fn report_types_stale_records() {
        use crate::core::inventory::{ContainerImage, Kind};
        let rec = r#"{"container:web":{"original":"q.io/astro-runtime:1","pinned":"q.io/astro-runtime:1@sha256:abababababababababababababababababababababababababababababababab"},"container:api":{"original":"q.io/astro-runtime:1","pinned":"q.io/astro-runtime:1@sha256:abababababababababababababababababababababababababababababababab"}}"#;
        let c = |name: &str, image: &str, index| ContainerImage {
            container: name.into(),
            role: Role::Container,
            index,
            image: image.into(),
        };
        let w = Workload {
            kind: Kind::Deployment,
            namespace: "ns".into(),
            name: "r-web".into(),
            release: "r".into(),
            component: None,
            // web: upgraded to 2 by the platform since the pin; api: still the pin.
            containers: vec![
                c("web", "q.io/astro-runtime:2", 0),
                c("api", "q.io/astro-runtime:1@sha256:abababababababababababababababababababababababababababababababab", 1),
                c("new", "q.io/astro-runtime:2", 2),
            ],
            pod_selector: Default::default(),
            annotations: [(ORIGINAL_IMAGES_ANNOTATION.to_string(), rec.to_string())].into(),
            pull_secrets: vec![],
            service_account: None,
            template_text: None,
            problem: None,
            resource_version: None,
        };
        let rep = report(
            &[w],
            &[],
            &RuntimeMatcher::new(&[], false),
            &Resolutions::default(),
        );
        let states: Vec<RecordState> = rep.items.iter().map(|r| r.record).collect();
        assert_eq!(
            states,
            [RecordState::Stale, RecordState::Current, RecordState::None]
        );
        let json = serde_json::to_value(&rep.items[0]).unwrap();
        assert_eq!(json["record"], "stale");
    }

    /// Houston's rendering with the feature on: tagless digests, judged against the catalog.
    #[test]
    fn tagless_digests_get_the_catalogs_version_and_check() {
        use crate::core::catalog::DigestField;
        use crate::core::inventory::{ContainerImage, Kind};
        const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        const X: &str = "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
        let repo = "quay.io/astronomer/astro-runtime";
        let index = CatalogIndex::from_json(
            &serde_json::json!({"runtimeVersions": {"12.3.0": {"sha256": A}, "12.4.0": {"sha256": B}}}),
            &DigestField::default(),
        );
        // `other` was pinned from 12.4.0 (its record), and Houston re-rendered the same build,
        // which the catalog lists for 12.3.0.
        let rec = serde_json::json!({"container:other": {"original": format!("{repo}:12.4.0"), "pinned": format!("{repo}:12.4.0@{A}")}}).to_string();
        let images = [
            ("listed", format!("{repo}@{B}")),
            ("other", format!("{repo}@{A}")),
            ("unknown", format!("{repo}@{X}")),
            ("tagged", format!("{repo}:12.4.0@{X}")),
        ];
        let w = Workload {
            kind: Kind::Deployment,
            namespace: "ns".into(),
            name: "r-scheduler".into(),
            release: "r".into(),
            component: None,
            containers: images
                .iter()
                .enumerate()
                .map(|(index, (n, i))| ContainerImage {
                    container: n.to_string(),
                    role: Role::Container,
                    index,
                    image: i.clone(),
                })
                .collect(),
            pod_selector: Default::default(),
            annotations: [(ORIGINAL_IMAGES_ANNOTATION.to_string(), rec)].into(),
            pull_secrets: vec![],
            service_account: None,
            template_text: None,
            problem: None,
            resource_version: None,
        };
        let m = RuntimeMatcher::new(&[], false);
        let r = Resolutions::default();
        let rep = report_with_catalog(std::slice::from_ref(&w), &[], &m, &r, Some(&index));
        let row = |n: &str| rep.items.iter().find(|r| r.container == n).unwrap();
        assert_eq!(row("listed").state, Status::Pinned);
        assert_eq!(
            row("listed").version_cell().as_deref(),
            Some("12.4.0 (catalog)")
        );
        assert_eq!(row("listed").catalog, Some(CatalogMatch::Listed));
        assert_eq!(row("other").state, Status::OtherVersion("12.4.0".into()));
        assert_eq!(row("other").version.as_deref(), Some("12.3.0"));
        assert_eq!(row("other").record, RecordState::Superseded);
        assert_eq!(row("unknown").state, Status::UnlistedBuild);
        assert_eq!(row("unknown").version, None);
        assert_eq!(
            row("tagged").state,
            Status::Pinned,
            "a tag is judged by the registry"
        );
        assert_eq!(row("tagged").version_source, Some(VersionSource::Tag));
        assert_eq!(row("tagged").catalog, None);
        let json = serde_json::to_value(row("listed")).unwrap();
        assert_eq!(json["version"], "12.4.0");
        assert_eq!(json["versionSource"], "catalog");
        assert_eq!(json["catalog"], "listed");
        let json = serde_json::to_value(row("other")).unwrap();
        assert_eq!(json["expectedVersion"], "12.4.0");
        assert_eq!(json["status"], "other-version");
        assert_eq!(rep.summary["unlisted-build"], 1);

        // Without the catalog: today's rows (pinned, no version).
        let rep = report(&[w], &[], &m, &r);
        assert!(rep.items.iter().all(|r| r.state == Status::Pinned));
        assert_eq!(rep.items[0].version, None);
    }

    fn row(workload: &str, state: Status, running: Running, own_pods: bool) -> Row {
        Row {
            namespace: "ns".into(),
            release: "r".into(),
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
            running,
            status: state.label(),
            record: RecordState::None,
            state,
            own_pods,
        }
    }

    #[test]
    fn check_passes_only_what_is_known_to_be_pinned_and_running_its_pin() {
        let d = || Running::Digest("sha256:a".into());
        // No container at all is no pass (a wrong namespace is not "all pinned").
        assert!(!Verdict::of(&[]).passed());
        let ok = [
            row("deployment/a", Status::Pinned, d(), true),
            // a CronJob or the pod template has no pods: its spec is what the next pod runs
            row("cronjob/c", Status::Pinned, Running::Unknown, false),
        ];
        assert!(Verdict::of(&ok).passed());
        // a Deployment whose pods report nothing (scaled to zero, not started): unknown
        let v = Verdict::of(&[
            ok[0].clone(),
            row("deployment/b", Status::Pinned, Running::Unknown, true),
            row("deployment/b", Status::Pinned, Running::Unknown, true),
        ]);
        assert!(!v.passed());
        assert_eq!((v.failed, v.unknown), (0, 2));
        assert_eq!(v.unknown_workloads, ["ns/deployment/b"]);
        let v = Verdict::of(&[
            ok[0].clone(),
            row("deployment/t", Status::TagOnly, d(), true),
            row("deployment/u", Status::Unresolved("x".into()), d(), true),
        ]);
        assert_eq!((v.containers, v.failed, v.unknown), (3, 2, 0));
        assert!(!v.passed());
    }

    #[test]
    fn states() {
        let a = "sha256:a";
        let b = "sha256:b";
        assert_eq!(
            status(None, Some(&res(a)), &Running::Unknown),
            Status::TagOnly
        );
        assert_eq!(
            status(Some(a), Some(&res(a)), &Running::Digest(a.into())),
            Status::Pinned
        );
        assert_eq!(
            status(Some(a), Some(&res(b)), &Running::Digest(a.into())),
            Status::Drifted
        );
        assert_eq!(
            status(Some(a), Some(&res(a)), &Running::Digest(b.into())),
            Status::RunningDiffers
        );
        assert_eq!(
            status(
                Some(a),
                Some(&res(a)),
                &Running::Mixed(vec![a.into(), b.into()])
            ),
            Status::RunningDiffers
        );
        let nf = Err(RegistryError::NotFound {
            host: "h".into(),
            repository: "r".into(),
            reference: "t".into(),
        });
        assert_eq!(
            status(None, Some(&nf), &Running::Unknown),
            Status::Unresolved("not found".into())
        );
        assert_eq!(
            status(Some(a), None, &Running::Unknown),
            Status::Pinned,
            "digest-only reference without tag"
        );
    }
}
