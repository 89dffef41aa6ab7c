//! The typed state of a Runtime container (pinned, drifted, tag-only, running-differs,
//! unresolved, ...), the row that carries it, and the decision of a container's state from its
//! spec, the registry's answer and what its pods run. The report built from these rows is
//! `core::show_report`'s.

use serde::Serialize;

use crate::core::catalog_index::{CatalogMatch, VersionSource};
use crate::core::edit::RecordState;
use crate::core::image_ref::ImageRef;
use crate::core::inventory::{Role, Running};
use crate::core::resolution::{RegistryError, Resolved};

/// A container state without its detail, in severity order: a release is as bad as its worst
/// container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum StateKey {
    Pinned,
    /// Needs a pin (yellow), but runs what its tag says.
    TagOnly,
    /// Broken (red) from here on: the pin and the tag, or the pin and the pods, disagree, or the
    /// tag could not be looked up. A release with one drifted container and the rest tag-only
    /// is drifted.
    Drifted,
    /// A tagless digest the releases catalog lists for another version than it was pinned from.
    OtherVersion,
    /// A tagless digest the releases catalog lists for no version.
    UnlistedBuild,
    RunningDiffers,
    Unresolved,
}

impl StateKey {
    /// Every state, in severity order (the order of `output::Tone`: settled, action, broken).
    pub(crate) const ALL: [StateKey; 7] = [
        StateKey::Pinned,
        StateKey::TagOnly,
        StateKey::Drifted,
        StateKey::OtherVersion,
        StateKey::UnlistedBuild,
        StateKey::RunningDiffers,
        StateKey::Unresolved,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StateKey::Pinned => "pinned",
            StateKey::Drifted => "drifted",
            StateKey::OtherVersion => "other-version",
            StateKey::UnlistedBuild => "unlisted-build",
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
pub(crate) enum Status {
    Pinned,
    /// Pinned, but the tag now points elsewhere.
    Drifted,
    TagOnly,
    /// Pods run something other than the spec's pin.
    RunningDiffers,
    Unresolved(String),
    /// A tagless `repository@sha256:…` whose digest the releases catalog lists for another
    /// version than the one it was pinned from (the version it was pinned from).
    OtherVersion(String),
    /// A tagless `repository@sha256:…` whose digest the releases catalog lists for no version.
    UnlistedBuild,
}

impl Status {
    pub(crate) fn label(&self) -> String {
        match self {
            Status::Pinned => "pinned".into(),
            Status::Drifted => "drifted".into(),
            Status::TagOnly => "tag-only".into(),
            Status::RunningDiffers => "running-differs".into(),
            Status::Unresolved(r) => format!("unresolved: {r}"),
            Status::OtherVersion(_) => "other-version".into(),
            Status::UnlistedBuild => "unlisted-build".into(),
        }
    }
    pub(crate) fn kind(&self) -> StateKey {
        match self {
            Status::Pinned => StateKey::Pinned,
            Status::Drifted => StateKey::Drifted,
            Status::TagOnly => StateKey::TagOnly,
            Status::RunningDiffers => StateKey::RunningDiffers,
            Status::Unresolved(_) => StateKey::Unresolved,
            Status::OtherVersion(_) => StateKey::OtherVersion,
            Status::UnlistedBuild => StateKey::UnlistedBuild,
        }
    }

    pub(crate) fn key(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// One container of one workload.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Row {
    pub(crate) namespace: String,
    pub(crate) release: String,
    pub(crate) workload: String,
    pub(crate) container: String,
    pub(crate) role: Role,
    pub(crate) image: String,
    pub(crate) tag: Option<String>,
    /// The Runtime version: the tag, or for a tagless `repository@sha256:…` the version the
    /// releases catalog lists the digest for (when the catalog could be read).
    pub(crate) version: Option<String>,
    /// Where `version` comes from: `tag` or `catalog`.
    pub(crate) version_source: Option<VersionSource>,
    /// For a tagless digest, what the releases catalog says about it: `listed` (its digest for
    /// that version), `other-version`, `unlisted`; absent for tags and without a catalog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) catalog: Option<CatalogMatch>,
    /// With `catalog: other-version`: the version the container was pinned from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expected_version: Option<String>,
    pub(crate) spec_digest: Option<String>,
    pub(crate) registry_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) registry_source: Option<String>,
    pub(crate) running: Running,
    pub(crate) status: String,
    /// Whether the `original-images` record of an earlier pin still describes the container
    /// (`stale`: the platform upgraded it since; unpin refuses it, pin replaces it;
    /// `superseded`: Houston renders the same build as `repository@sha256:…` now, nothing to do).
    pub(crate) record: RecordState,
    #[serde(skip)]
    pub(crate) state: Status,
    /// Whether the workload has pods of its own (a Deployment or StatefulSet), so what runs can
    /// be read; a CronJob and the pod template have none, and their spec is what the next pod runs.
    #[serde(skip)]
    pub(crate) own_pods: bool,
}

impl Row {
    /// Whether this container carries a stale record.
    pub(crate) fn stale_record(&self) -> bool {
        self.record == RecordState::Stale
    }

    /// Whether Houston re-rendered the pin's build as `repository@sha256:…` since.
    pub(crate) fn superseded_record(&self) -> bool {
        self.record == RecordState::Superseded
    }

    /// The version cell of a table: `12.4.0` from a tag, `12.4.0 (catalog)` from the catalog.
    pub(crate) fn version_cell(&self) -> Option<String> {
        let v = self.version.as_ref()?;
        Some(match self.version_source {
            Some(VersionSource::Catalog) => format!("{v} (catalog)"),
            _ => v.clone(),
        })
    }

    /// What `--check` makes of this container: pinned and running its pin passes; pinned with
    /// pods of its own of which none reports what it runs (scaled to zero, not started) cannot be
    /// known, and unknown is not a pass; every other state fails.
    pub(crate) fn check(&self) -> Check {
        match (&self.state, &self.running) {
            (Status::Pinned, Running::Unknown) if self.own_pods => Check::Unknown,
            (Status::Pinned, _) => Check::Pass,
            _ => Check::Fail,
        }
    }
}

/// `--check` of one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Pass,
    Fail,
    Unknown,
}

/// The registry lookup for an image in a spec: the tag (what it points to now), never the pin.
pub(crate) fn lookup_ref(image: &ImageRef) -> Option<ImageRef> {
    image.tag()?;
    ImageRef::parse(image.without_digest()).ok()
}

/// Decides a container's state.
pub(crate) fn status(
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
