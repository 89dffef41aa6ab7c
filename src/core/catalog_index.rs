//! The releases ConfigMap read backwards: digest → Runtime version. With the feature on, Houston
//! renders an Airflow Deployment's Runtime image as `repository@sha256:<digest>`, without the tag
//! (Astronomer's "Create Deployments using Astro Runtime SHA256 digest"), while its UI and CLI
//! still show the version. The cluster only holds the digest; the imported catalog says which
//! version it is the build of, and whether it is the build the catalog lists at all. Pure: the
//! ConfigMap's data in, lookups out. The digests are read with the one reader
//! (`catalog::entry_digests`: `DigestField::raw`, validated by `core::digest`).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::core::catalog::{self, DigestField, RuntimeVersion, Section};
use crate::core::image_ref::ImageRef;
use crate::core::names::{DEFAULT_DIGEST_FIELD, DIGEST_FIELD_ANNOTATION, RELEASES_DATA_KEY};

/// Where a container's Runtime version comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum VersionSource {
    /// The image's tag (`repository:12.4.0`, with or without a digest after it).
    Tag,
    /// A tagless `repository@sha256:…`: the version the releases catalog lists the digest for.
    Catalog,
}

/// What the catalog says about a tagless container's digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CatalogMatch {
    /// The catalog's digest for the container's version.
    Listed,
    /// The catalog's digest for another version than the one the container was pinned from
    /// (its `original-images` record names the tag).
    OtherVersion,
    /// A build the catalog lists for no version.
    Unlisted,
}

/// The catalog's answer for one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Judgement {
    /// The version the catalog lists the digest for (the expected one first, when it is among
    /// them); `None` for an unlisted build.
    pub(crate) version: Option<String>,
    pub(crate) check: CatalogMatch,
    /// The version the container was pinned from, when its record says so.
    pub(crate) expected: Option<String>,
}

/// Digest → versions and version → digest, per catalog section.
#[derive(Clone, Debug, Default)]
pub(crate) struct CatalogIndex {
    by_digest: HashMap<String, Vec<(Section, String)>>,
    by_version: HashMap<(Section, String), String>,
    /// Entries whose digest field holds something that is not a sha256 digest (left out).
    pub(crate) bad_entries: usize,
}

impl CatalogIndex {
    /// From a parsed catalog.
    pub(crate) fn from_json(json: &serde_json::Value, field: &DigestField) -> CatalogIndex {
        let mut out = CatalogIndex::default();
        for (section, tag, digest) in catalog::entry_digests(json, field) {
            match digest {
                Ok(d) => {
                    out.by_digest
                        .entry(d.clone())
                        .or_default()
                        .push((section, tag.to_string()));
                    out.by_version.insert((section, tag.to_string()), d);
                }
                Err(_) => out.bad_entries += 1,
            }
        }
        for versions in out.by_digest.values_mut() {
            // Newest first, so a digest listed twice names its latest version.
            versions.sort_by(|a, b| {
                let va = RuntimeVersion::parse_in(a.0, &a.1);
                let vb = RuntimeVersion::parse_in(b.0, &b.1);
                vb.partial_cmp(&va)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.1.cmp(&b.1))
            });
        }
        out
    }

    /// From a releases ConfigMap's data: the catalog under `astro_runtime_releases.json` (the key
    /// Houston's chart mounts). `Err` says why it cannot be read.
    pub(crate) fn from_data(
        data: &BTreeMap<String, String>,
        field: &DigestField,
    ) -> Result<CatalogIndex, String> {
        let text = data
            .get(RELEASES_DATA_KEY)
            .ok_or_else(|| format!("it has no data key {RELEASES_DATA_KEY}"))?;
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("{RELEASES_DATA_KEY} is not valid JSON ({e})"))?;
        if catalog::sections(&json).next().is_none() {
            return Err(format!(
                "{RELEASES_DATA_KEY} has neither runtimeVersions nor runtimeVersionsV3"
            ));
        }
        Ok(CatalogIndex::from_json(&json, field))
    }

    /// From the releases ConfigMap: its catalog, read at `field` when given, else at the field
    /// `import` recorded in the ConfigMap's `digest-field` annotation, else `sha256`.
    pub(crate) fn from_configmap(
        cm: &k8s_openapi::api::core::v1::ConfigMap,
        field: Option<&str>,
    ) -> Result<CatalogIndex, String> {
        let recorded = cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DIGEST_FIELD_ANNOTATION))
            .map(String::as_str);
        let field = field.or(recorded).unwrap_or(DEFAULT_DIGEST_FIELD);
        let field = DigestField::parse(field).map_err(|e| format!("its digest field: {e}"))?;
        CatalogIndex::from_data(&cm.data.clone().unwrap_or_default(), &field)
    }

    #[cfg(test)]
    /// How many digests it knows.
    pub(crate) fn len(&self) -> usize {
        self.by_version.len()
    }

    /// The versions the catalog lists `digest` for: those of the image's own section first
    /// (Airflow 3 runtimes live in a repository named `runtime`, Airflow 2 in `astro-runtime`).
    pub(crate) fn versions(&self, digest: &str, image: &ImageRef) -> Vec<&str> {
        let own = section_of(image);
        let Some(all) = self.by_digest.get(digest) else {
            return vec![];
        };
        let mut out: Vec<&str> = all
            .iter()
            .filter(|(s, _)| *s == own)
            .map(|(_, v)| v.as_str())
            .collect();
        out.extend(
            all.iter()
                .filter(|(s, _)| *s != own)
                .map(|(_, v)| v.as_str()),
        );
        out
    }

    #[cfg(test)]
    /// The catalog's digest for `version` in the image's section.
    pub(crate) fn digest_of(&self, image: &ImageRef, version: &str) -> Option<&str> {
        self.by_version
            .get(&(section_of(image), version.to_string()))
            .map(String::as_str)
    }

    /// Judges a tagless `repository@sha256:…` image; `expected` is the version it was pinned
    /// from, if known. `None` for an image with a tag or without a digest (their version is the
    /// tag, and the registry judges them).
    pub(crate) fn judge(&self, image: &ImageRef, expected: Option<&str>) -> Option<Judgement> {
        if image.tag().is_some() {
            return None;
        }
        let digest = image.digest()?;
        let versions = self.versions(digest, image);
        let expected = expected.map(str::to_string);
        let Some(first) = versions.first() else {
            return Some(Judgement {
                version: None,
                check: CatalogMatch::Unlisted,
                expected,
            });
        };
        let (version, check) = match expected.as_deref() {
            Some(e) if versions.contains(&e) => (e.to_string(), CatalogMatch::Listed),
            Some(_) => (first.to_string(), CatalogMatch::OtherVersion),
            None => (first.to_string(), CatalogMatch::Listed),
        };
        Some(Judgement {
            version: Some(version),
            check,
            expected,
        })
    }
}

/// Which catalog section an image's repository belongs to (the rule `pin --from-configmap` uses).
fn section_of(image: &ImageRef) -> Section {
    let repo = image.repository();
    if repo == "runtime" || repo.ends_with("/runtime") {
        Section::Airflow3
    } else {
        Section::Airflow2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    const UNKNOWN: &str = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

    fn index() -> CatalogIndex {
        let text = json!({"version": "1.0",
            "runtimeVersions": {
                "12.3.0": {"metadata": {"channel": "stable"}, "sha256": A},
                "12.4.0": {"metadata": {"channel": "stable"}, "sha256": B},
                "12.5.0": {"metadata": {"channel": "stable"}},
                "12.6.0": {"metadata": {}, "sha256": "sha256:nothex"}},
            "runtimeVersionsV3": {"3.1-1": {"metadata": {}, "sha256": C}}})
        .to_string();
        CatalogIndex::from_data(
            &[(RELEASES_DATA_KEY.to_string(), text)].into(),
            &DigestField::default(),
        )
        .unwrap()
    }

    fn img(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn a_tagless_digest_gets_the_version_the_catalog_lists_it_for() {
        let i = index();
        assert_eq!(i.len(), 3);
        assert_eq!(i.bad_entries, 1, "a non-digest value is left out, counted");
        let j = i
            .judge(&img(&format!("quay.io/astronomer/astro-runtime@{B}")), None)
            .unwrap();
        assert_eq!(j.version.as_deref(), Some("12.4.0"));
        assert_eq!(j.check, CatalogMatch::Listed);
        let j = i
            .judge(&img(&format!("astrocrpublic.azurecr.io/runtime@{C}")), None)
            .unwrap();
        assert_eq!(j.version.as_deref(), Some("3.1-1"));
        assert_eq!(
            i.digest_of(&img("quay.io/astronomer/astro-runtime:12.3.0"), "12.3.0"),
            Some(A)
        );
    }

    #[test]
    fn another_versions_build_and_an_unlisted_build_are_told_apart() {
        let i = index();
        let image = img(&format!("quay.io/astronomer/astro-runtime@{A}"));
        let j = i.judge(&image, Some("12.4.0")).unwrap();
        assert_eq!(j.check, CatalogMatch::OtherVersion);
        assert_eq!(j.version.as_deref(), Some("12.3.0"));
        assert_eq!(j.expected.as_deref(), Some("12.4.0"));
        assert_eq!(
            i.judge(&image, Some("12.3.0")).unwrap().check,
            CatalogMatch::Listed
        );
        let j = i
            .judge(
                &img(&format!("quay.io/astronomer/astro-runtime@{UNKNOWN}")),
                None,
            )
            .unwrap();
        assert_eq!(j.check, CatalogMatch::Unlisted);
        assert_eq!(j.version, None);
    }

    #[test]
    fn tagged_images_are_judged_by_their_tag_not_here() {
        let i = index();
        assert!(i
            .judge(
                &img(&format!("quay.io/astronomer/astro-runtime:12.4.0@{B}")),
                None
            )
            .is_none());
        assert!(i
            .judge(&img("quay.io/astronomer/astro-runtime:12.4.0"), None)
            .is_none());
    }

    #[test]
    fn a_digest_listed_twice_names_the_newest_version_unless_one_is_expected() {
        let text = json!({"runtimeVersions": {
            "12.9.0": {"sha256": A}, "12.10.0": {"sha256": A}}})
        .to_string();
        let i = CatalogIndex::from_data(
            &[(RELEASES_DATA_KEY.to_string(), text)].into(),
            &DigestField::default(),
        )
        .unwrap();
        let image = img(&format!("quay.io/astronomer/astro-runtime@{A}"));
        assert_eq!(
            i.judge(&image, None).unwrap().version.as_deref(),
            Some("12.10.0")
        );
        assert_eq!(
            i.judge(&image, Some("12.9.0")).unwrap().version.as_deref(),
            Some("12.9.0")
        );
    }

    #[test]
    fn unreadable_data_says_why() {
        let field = DigestField::default();
        assert!(CatalogIndex::from_data(&BTreeMap::new(), &field)
            .unwrap_err()
            .contains("no data key"));
        let bad = [(RELEASES_DATA_KEY.to_string(), "nope".to_string())].into();
        assert!(CatalogIndex::from_data(&bad, &field)
            .unwrap_err()
            .contains("not valid JSON"));
        let empty = [(RELEASES_DATA_KEY.to_string(), "{}".to_string())].into();
        assert!(CatalogIndex::from_data(&empty, &field)
            .unwrap_err()
            .contains("neither"));
    }
}
