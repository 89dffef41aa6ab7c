//! One container's image, as found in a workload's pod spec or in a pod template: the unit that
//! `inventory` lists, `podtemplate` reads and edits, and a plan pins.

use serde::Serialize;

/// Which list of the pod spec a container is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    Container,
    Init,
}

/// One container's image inside a workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContainerImage {
    pub(crate) container: String,
    pub(crate) role: Role,
    /// Position in `containers` / `initContainers`, for JSON patches.
    pub(crate) index: usize,
    pub(crate) image: String,
}
