//! The typed state of a Runtime container (pinned, drifted, tag-only, running-differs,
//! unresolved) and the report `show` prints and `status` aggregates. Pure: workloads, pods and
//! registry answers in, rows out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::core::inventory::{self, Role, Running, RuntimeMatcher, Workload};
use crate::core::pullsecrets::Resolutions;
use crate::registry::{ImageRef, RegistryError, Resolved};

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
    #[serde(skip)]
    pub state: Status,
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
        for c in &w.containers {
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
