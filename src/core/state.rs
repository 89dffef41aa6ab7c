//! The typed state of a Runtime container (pinned, drifted, tag-only, running-differs,
//! unresolved) and the report `show` prints and `status` aggregates. Pure: workloads, pods and
//! registry answers in, rows out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::core::edit::{self, RecordState};
use crate::core::image_ref::ImageRef;
use crate::core::inventory::{self, Role, Running, RuntimeMatcher, Workload};
use crate::core::pullsecrets::Resolutions;
use crate::core::resolution::{RegistryError, Resolved};

/// A container state without its detail, in severity order: a release is as bad as its worst
/// container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateKey {
    Pinned,
    Drifted,
    RunningDiffers,
    TagOnly,
    Unresolved,
}

impl StateKey {
    /// Every state, in severity order.
    pub const ALL: [StateKey; 5] = [
        StateKey::Pinned,
        StateKey::Drifted,
        StateKey::RunningDiffers,
        StateKey::TagOnly,
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
}

impl Row {
    /// Whether this container carries a stale record.
    pub fn stale_record(&self) -> bool {
        self.record == RecordState::Stale
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
        let records = edit::parse_records(w.records_annotation());
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
    use crate::core::inventory::ORIGINAL_IMAGES_ANNOTATION;

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
