//! The typed state of a Runtime container (pinned, drifted, tag-only, running-differs,
//! unresolved) and the report `show` prints and `status` aggregates. Pure: workloads, pods and
//! registry answers in, rows out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::core::edit::{self, RecordState};
use crate::core::image_ref::ImageRef;
use crate::core::inventory::{
    self, Role, Running, RuntimeMatcher, Workload, ORIGINAL_IMAGES_ANNOTATION,
};
use crate::core::pullsecrets::Resolutions;
use crate::core::resolution::{RegistryError, Resolved};

/// A container state without its detail, in severity order: a release is as bad as its worst
/// container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateKey {
    Pinned,
    /// Needs a pin (yellow), but runs what its tag says.
    TagOnly,
    /// Broken (red) from here on: the pin and the tag, or the pin and the pods, disagree, or the
    /// tag could not be looked up. A release with one drifted container and the rest tag-only
    /// is drifted.
    Drifted,
    RunningDiffers,
    Unresolved,
}

impl StateKey {
    /// Every state, in severity order (the order of `output::Tone`: settled, action, broken).
    pub const ALL: [StateKey; 5] = [
        StateKey::Pinned,
        StateKey::TagOnly,
        StateKey::Drifted,
        StateKey::RunningDiffers,
        StateKey::Unresolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StateKey::Pinned => "pinned",
            StateKey::Drifted => "drifted",
            StateKey::RunningDiffers => "running-differs",
            StateKey::TagOnly => "tag-only",
            StateKey::Unresolved => "unresolved",
        }
    }
}

impl std::fmt::Display for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pinned,
    /// Pinned, but the tag now points elsewhere.
    Drifted,
    TagOnly,
    /// Pods run something other than the spec's pin.
    RunningDiffers,
    Unresolved(String),
}

impl Status {
    pub fn label(&self) -> String {
        match self {
            Status::Pinned => "pinned".into(),
            Status::Drifted => "drifted".into(),
            Status::TagOnly => "tag-only".into(),
            Status::RunningDiffers => "running-differs".into(),
            Status::Unresolved(r) => format!("unresolved: {r}"),
        }
    }
    pub fn kind(&self) -> StateKey {
        match self {
            Status::Pinned => StateKey::Pinned,
            Status::Drifted => StateKey::Drifted,
            Status::TagOnly => StateKey::TagOnly,
            Status::RunningDiffers => StateKey::RunningDiffers,
            Status::Unresolved(_) => StateKey::Unresolved,
        }
    }

    pub fn key(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// One container of one workload.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub release: String,
    pub workload: String,
    pub container: String,
    pub role: Role,
    pub image: String,
    pub tag: Option<String>,
    pub spec_digest: Option<String>,
    pub registry_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_source: Option<String>,
    pub running: Running,
    pub status: String,
    /// Whether the `original-images` record of an earlier pin still describes the container
    /// (`stale`: the platform upgraded it since; unpin refuses it, pin replaces it).
    pub record: RecordState,
    #[serde(skip)]
    pub state: Status,
    /// Whether the workload has pods of its own (a Deployment or StatefulSet), so what runs can
    /// be read; a CronJob and the pod template have none, and their spec is what the next pod runs.
    #[serde(skip)]
    pub own_pods: bool,
}

impl Row {
    /// Whether this container carries a stale record.
    pub fn stale_record(&self) -> bool {
        self.record == RecordState::Stale
    }

    /// What `--check` makes of this container: pinned and running its pin passes; pinned with
    /// pods of its own of which none reports what it runs (scaled to zero, not started) cannot be
    /// known, and unknown is not a pass; every other state fails.
    pub fn check(&self) -> Check {
        match (&self.state, &self.running) {
            (Status::Pinned, Running::Unknown) if self.own_pods => Check::Unknown,
            (Status::Pinned, _) => Check::Pass,
            _ => Check::Fail,
        }
    }
}

/// `--check` of one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Pass,
    Fail,
    Unknown,
}

/// `--check` over a report's rows: how many failed, which workloads could not be checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub containers: usize,
    pub failed: usize,
    pub unknown: usize,
    /// `namespace/workload` of each container that could not be checked, once each.
    pub unknown_workloads: Vec<String>,
}

impl Verdict {
    pub fn of(rows: &[Row]) -> Verdict {
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
    pub fn passed(&self) -> bool {
        self.containers > 0 && self.failed == 0 && self.unknown == 0
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub items: Vec<Row>,
    pub summary: BTreeMap<String, usize>,
}

/// The registry lookup for an image in a spec: the tag (what it points to now), never the pin.
pub fn lookup_ref(image: &ImageRef) -> Option<ImageRef> {
    image.tag()?;
    ImageRef::parse(image.without_digest()).ok()
}

/// Decides a container's state.
pub fn status(
    spec_digest: Option<&str>,
    registry: Option<&Result<Resolved, RegistryError>>,
    running: &Running,
) -> Status {
    let Some(pin) = spec_digest else {
        return match registry {
            Some(Err(e)) => Status::Unresolved(e.short()),
            _ => Status::TagOnly,
        };
    };
    match running {
        Running::Mixed(_) => return Status::RunningDiffers,
        Running::Digest(d) if d != pin => return Status::RunningDiffers,
        _ => {}
    }
    match registry {
        Some(Ok(r))
            if r.digest != pin
                && !r.platforms.iter().any(|p| p.digest == pin)
                && r.platform_digest.as_deref() != Some(pin) =>
        {
            Status::Drifted
        }
        Some(Err(e)) => Status::Unresolved(e.short()),
        _ => Status::Pinned,
    }
}

/// Pure: builds the report rows.
pub fn report(
    workloads: &[Workload],
    pods: &[Pod],
    matcher: &RuntimeMatcher,
    resolved: &Resolutions,
) -> Report {
    let pod_refs: Vec<&Pod> = pods.iter().collect();
    let mut items = vec![];
    for w in workloads {
        let records = edit::parse_records(w.annotations.get(ORIGINAL_IMAGES_ANNOTATION));
        for c in &w.containers {
            let record = RecordState::of(
                records.get(&edit::record_key(c.role, &c.container)),
                &c.image,
            );
            let parsed = ImageRef::parse(&c.image);
            let row_base = |state: Status,
                            tag: Option<String>,
                            spec: Option<String>,
                            reg: Option<&Resolved>,
                            running: Running| Row {
                namespace: w.namespace.clone(),
                release: w.release.clone(),
                workload: w.display_name(),
                container: c.container.clone(),
                role: c.role,
                image: c.image.clone(),
                tag,
                spec_digest: spec,
                registry_digest: reg.map(|r| r.digest.clone()),
                registry_source: reg.filter(|r| r.mirrored).map(|r| r.source.clone()),
                running,
                status: state.label(),
                record,
                state,
                own_pods: !w.pod_selector.is_empty(),
            };
            let img = match parsed {
                Ok(i) => i,
                Err(_) => {
                    if matcher.all_images() || matcher.looks_like_runtime(&c.image) {
                        items.push(row_base(
                            Status::Unresolved("invalid reference".into()),
                            None,
                            None,
                            None,
                            Running::Unknown,
                        ));
                    }
                    continue;
                }
            };
            if !matcher.is_runtime(&img) {
                continue;
            }
            let running = inventory::running(w, c, &pod_refs);
            let reg = lookup_ref(&img).and_then(|l| resolved.get(w, l.original()));
            let state = status(img.digest(), reg, &running);
            items.push(row_base(
                state,
                img.tag().map(str::to_string),
                img.digest().map(str::to_string),
                reg.and_then(|r| r.as_ref().ok()),
                running,
            ));
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

    fn row(workload: &str, state: Status, running: Running, own_pods: bool) -> Row {
        Row {
            namespace: "ns".into(),
            release: "r".into(),
            workload: workload.into(),
            container: "c".into(),
            role: Role::Container,
            image: "x".into(),
            tag: None,
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
