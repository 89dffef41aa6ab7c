//! The releases ConfigMap as `show`, `pin` and `unpin` read it: a digest → Runtime version index
//! (`core::catalog_index`) for the containers Houston renders as `repository@sha256:…` without a
//! tag. Read only when such a container is in scope (a fleet of tags costs no request), from the
//! ConfigMap Houston mounts, and never an error: what cannot be read (no platform found, no
//! rights, no ConfigMap) is one note on stderr, and the commands show what they showed without it.

use crate::core::catalog_index::CatalogIndex;
use crate::core::image_ref::ImageRef;
use crate::core::inventory::{RuntimeMatcher, Workload};
use crate::core::names::DEFAULT_RELEASES_CONFIGMAP;
use crate::error::{Error, ErrorKind};
use crate::kube::client::Cluster;
use crate::kube::platform;
use crate::output;

/// Whether an image is a tagless `repository@sha256:…`.
pub(crate) fn is_tagless_digest(image: &str) -> bool {
    ImageRef::parse(image).is_ok_and(|i| i.tag().is_none() && i.digest().is_some())
}

/// How many Runtime containers in scope run a tagless `repository@sha256:…`.
pub(crate) fn tagless_digests(workloads: &[Workload], matcher: &RuntimeMatcher) -> usize {
    workloads
        .iter()
        .flat_map(|w| &w.containers)
        .filter(|c| {
            ImageRef::parse(&c.image).is_ok_and(|i| matcher.is_runtime(&i))
                && is_tagless_digest(&c.image)
        })
        .count()
}

/// The index of the releases ConfigMap of the platform (`--platform-namespace`, else where
/// Houston runs), when `tagless` containers (tagless digests in scope) need it. `None` (with one
/// note on stderr when it was needed) otherwise.
pub(crate) async fn read_index(
    cluster: &Cluster,
    platform_namespace: Option<&str>,
    tagless: usize,
) -> Option<CatalogIndex> {
    if tagless == 0 {
        return None;
    }
    match try_read(cluster, platform_namespace).await {
        Ok(index) => Some(index),
        Err(why) => {
            eprintln!("{}", output::safe(&note(tagless, &why)));
            None
        }
    }
}

/// The one line said when the catalog cannot be read: what is missing, and why.
pub(crate) fn note(tagless: usize, why: &str) -> String {
    format!(
        "note: {tagless} Runtime container(s) run repository@sha256 without a tag; their Runtime version and catalog check are not shown: {why}"
    )
}

/// Why the catalog was not read when the platform was not found. The flag is asked for only
/// when it was not given; a namespace given without Houston is named, with how to find the
/// right one (issue 23).
fn no_platform(e: &Error, explicit: Option<&str>) -> String {
    let what = e.message.lines().next().unwrap_or_default();
    let what = what.trim_end_matches('.');
    match explicit {
        None => format!("{what} (pass --platform-namespace)"),
        Some(_) if e.kind == ErrorKind::NotFound => {
            format!("{what} ({})", platform::none_hint(explicit))
        }
        Some(_) => what.to_string(),
    }
}

async fn try_read(cluster: &Cluster, explicit: Option<&str>) -> Result<CatalogIndex, String> {
    let first_line = |m: &str| m.lines().next().unwrap_or_default().to_string();
    let p = platform::find(cluster, explicit)
        .await
        .map_err(|e| no_platform(&e, explicit))?;
    let ns = &p.namespace;
    let name = platform::releases_configmap_of(&p.houston)
        .unwrap_or_else(|| DEFAULT_RELEASES_CONFIGMAP.to_string());
    let cm = match cluster.get_configmap(ns, &name).await {
        Ok(Some(cm)) => cm,
        Ok(None) => {
            return Err(format!(
                "no releases ConfigMap {ns}/{name} (kubectl astro-sha import creates it)"
            ))
        }
        Err(e) => {
            return Err(if e.kind == ErrorKind::Forbidden {
                format!("may not read ConfigMap {ns}/{name} (grant get on configmaps in namespace {ns})")
            } else {
                format!(
                    "cannot read ConfigMap {ns}/{name}: {}",
                    first_line(&e.message)
                )
            });
        }
    };
    CatalogIndex::from_configmap(&cm, None).map_err(|e| format!("ConfigMap {ns}/{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::platform::NoHouston;

    #[test]
    fn the_note_asks_for_the_flag_only_when_it_was_not_given() {
        let given = no_platform(&NoHouston::None.error(Some("ux-plat")), Some("ux-plat"));
        assert!(!given.contains("pass --platform-namespace"), "{given}");
        assert!(
            given.contains("namespace ux-plat (--platform-namespace) has no Houston"),
            "{given}"
        );
        assert!(
            given.contains("kubectl get deployments -A -l component=houston"),
            "{given}"
        );
        let not_given = no_platform(&NoHouston::None.error(None), None);
        assert!(
            not_given.ends_with("(pass --platform-namespace)"),
            "{not_given}"
        );
    }
}
