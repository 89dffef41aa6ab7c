//! Image references as users and pod specs write them.
//!
//! Parsing goes through `oci_client::Reference` (the distribution reference grammar, with Docker Hub
//! normalisation), never by splitting on `:`. The original spelling is kept as well, because a pin
//! must rewrite `repo:tag` into `repo:tag@sha256:...` exactly as the user wrote it: normalising
//! `redis:7` into `docker.io/library/redis:7` in a pod spec would be a change nobody asked for.

use std::fmt;

use oci_client::Reference;

/// A parsed image reference that remembers how it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ImageRef {
    original: String,
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub(crate) struct InvalidReference {
    pub(crate) input: String,
    pub(crate) reason: String,
}

impl ImageRef {
    pub(crate) fn parse(input: &str) -> Result<Self, InvalidReference> {
        let trimmed = input.trim();
        let invalid = |reason: String| InvalidReference {
            input: input.to_string(),
            reason,
        };
        if trimmed.is_empty() {
            return Err(invalid("empty reference".into()));
        }
        let parsed = Reference::try_from(trimmed).map_err(|e| {
            // The parser says only "invalid reference format" for upper case in the repository
            // (oci-spec's own FIXME); docker's parser retries the lower-cased text and then says
            // what is wrong (distribution/reference `ErrNameContainsUppercase`). The name part
            // only: upper-case hex in a digest is a different mistake.
            if name_is_upper_case(trimmed) {
                invalid(UPPER_CASE.into())
            } else {
                invalid(e.to_string())
            }
        })?;
        // The distribution grammar forbids upper case in repository paths; the parser lets some
        // through, and a registry would answer with a confusing 400 or 404 later.
        if parsed.repository().chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(UPPER_CASE.into()));
        }
        // The grammar defaults a missing tag to `latest` unless a digest is present; keep whether
        // the user wrote a tag so that `repo@sha256:..` is not shown with an invented tag.
        let wrote_tag = {
            let name_part = trimmed.split('@').next().unwrap_or(trimmed);
            let last = name_part.rsplit('/').next().unwrap_or(name_part);
            last.contains(':')
        };
        let tag = match parsed.tag() {
            Some(t) if wrote_tag || parsed.digest().is_none() => Some(t.to_string()),
            _ => None,
        };
        Ok(ImageRef {
            original: trimmed.to_string(),
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag,
            digest: parsed.digest().map(str::to_string),
        })
    }

    /// As written in the pod spec or on the command line.
    pub(crate) fn original(&self) -> &str {
        &self.original
    }
    /// Registry host as the user addresses it (`docker.io` for Docker Hub).
    #[cfg(test)]
    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }
    pub(crate) fn repository(&self) -> &str {
        &self.repository
    }
    pub(crate) fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub(crate) fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository`, the key by which Runtime repositories and mirrors are matched.
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The reference as written, without any `@digest` suffix.
    pub(crate) fn without_digest(&self) -> &str {
        match self.original.find('@') {
            Some(i) => &self.original[..i],
            None => &self.original,
        }
    }

    /// The reference as written, pinned to `digest`. With `drop_tag` the tag is removed
    /// (`repo@sha256:..`), otherwise kept for people (`repo:tag@sha256:..`).
    pub(crate) fn pinned(&self, digest: &str, drop_tag: bool) -> String {
        let base = self.without_digest();
        if drop_tag {
            if let Some(tag) = &self.tag {
                let suffix = format!(":{tag}");
                if let Some(stripped) = base.strip_suffix(&suffix) {
                    return format!("{stripped}@{digest}");
                }
            }
        }
        format!("{base}@{digest}")
    }

    /// Where to look the tag up: registry host and repository, after applying mirrors.
    pub(crate) fn locate(&self, mirrors: &[Mirror]) -> Location {
        let name = self.name();
        for m in mirrors {
            if let Some(rest) = m.strip(&name) {
                let mapped = format!("{}{}", m.dst, rest);
                let (host, repo) = mapped.split_once('/').unwrap_or((mapped.as_str(), ""));
                return Location {
                    host: host.to_string(),
                    repository: repo.to_string(),
                    mirrored: true,
                };
            }
        }
        Location {
            host: registry_host(&self.registry).to_string(),
            repository: self.repository.clone(),
            mirrored: false,
        }
    }
}

/// Docker's words for a repository with upper case in it.
const UPPER_CASE: &str = "repository name must be lowercase";

/// Whether `input` fails to parse only because of upper case in its name (before any `@digest`).
fn name_is_upper_case(input: &str) -> bool {
    let (name, digest) = match input.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (input, None),
    };
    if !name.chars().any(|c| c.is_ascii_uppercase()) {
        return false;
    }
    let lower = match digest {
        Some(d) => format!("{}@{d}", name.to_ascii_lowercase()),
        None => name.to_ascii_lowercase(),
    };
    Reference::try_from(lower.as_str()).is_ok()
}

/// The API host of a registry: Docker Hub's API lives at `registry-1.docker.io`.
pub(crate) fn registry_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// Where a reference is actually fetched from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Location {
    pub(crate) host: String,
    pub(crate) repository: String,
    pub(crate) mirrored: bool,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)
    }
}

/// `--registry-mirror SRC=DST`: images under SRC (a registry, or registry/path prefix) are looked
/// up under DST instead, for air-gapped platforms that mirror quay.io and the Azure registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mirror {
    pub(crate) src: String,
    pub(crate) dst: String,
}

impl Mirror {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let (src, dst) = s.split_once('=').ok_or_else(|| {
            format!(
                "--registry-mirror {s:?}: expected SRC=DST, e.g. quay.io=mirror.example.com:5000"
            )
        })?;
        let src = src.trim().trim_end_matches('/');
        let dst = dst.trim().trim_end_matches('/');
        if src.is_empty() || dst.is_empty() || src.contains("://") || dst.contains("://") {
            return Err(format!(
                "--registry-mirror {s:?}: SRC and DST are registry hosts or host/path prefixes without a scheme"
            ));
        }
        Ok(Mirror {
            src: src.to_string(),
            dst: dst.to_string(),
        })
    }

    /// The remainder of `name` after this mirror's source prefix, if it matches at a path boundary.
    fn strip<'a>(&self, name: &'a str) -> Option<&'a str> {
        let src = if self.src == "index.docker.io" {
            "docker.io"
        } else {
            &self.src
        };
        let rest = name.strip_prefix(src)?;
        if rest.is_empty() || rest.starts_with('/') {
            Some(rest)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_repo_tag() {
        let r = ImageRef::parse("127.0.0.1:5000/astronomer/astro-runtime:12.1.0").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "astronomer/astro-runtime");
        assert_eq!(r.tag(), Some("12.1.0"));
        assert_eq!(r.digest(), None);
    }

    #[test]
    fn normalises_docker_hub_short_names() {
        let r = ImageRef::parse("redis:7").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/redis");
        assert_eq!(r.original(), "redis:7");
        assert_eq!(r.locate(&[]).host, "registry-1.docker.io");
    }

    #[test]
    fn tag_and_digest_and_digest_only() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("quay.io/astronomer/astro-runtime:9.3.0@{d}")).unwrap();
        assert_eq!(r.tag(), Some("9.3.0"));
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(r.without_digest(), "quay.io/astronomer/astro-runtime:9.3.0");
        let r = ImageRef::parse(&format!("quay.io/astronomer/astro-runtime@{d}")).unwrap();
        assert_eq!(
            r.tag(),
            None,
            "no tag must be invented for a digest-only reference"
        );
    }

    #[test]
    fn port_is_not_a_tag() {
        let r = ImageRef::parse("localhost:5000/runtime").unwrap();
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.tag(), Some("latest"));
    }

    #[test]
    fn pinned_keeps_or_drops_tag() {
        let d = format!("sha256:{}", "b".repeat(64));
        let r = ImageRef::parse("quay.io/astronomer/astro-runtime:9.3.0").unwrap();
        assert_eq!(
            r.pinned(&d, false),
            format!("quay.io/astronomer/astro-runtime:9.3.0@{d}")
        );
        assert_eq!(
            r.pinned(&d, true),
            format!("quay.io/astronomer/astro-runtime@{d}")
        );
        let old = format!("sha256:{}", "c".repeat(64));
        let r = ImageRef::parse(&format!("quay.io/astronomer/astro-runtime:9.3.0@{old}")).unwrap();
        assert_eq!(
            r.pinned(&d, false),
            format!("quay.io/astronomer/astro-runtime:9.3.0@{d}")
        );
    }

    #[test]
    fn rejects_bad_references_naming_them() {
        for bad in [
            "",
            "UPPER/case:1",
            "repo:tag with space",
            "repo@sha256:short",
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert_eq!(e.input, bad);
            assert!(e.to_string().contains("invalid image reference"));
        }
    }

    /// Issue 23: upper case in the repository said only "invalid reference format".
    #[test]
    fn upper_case_repositories_are_named_as_such() {
        for bad in [
            "127.0.0.1:5000/Bad/Name:1",
            "quay.io/Astronomer/astro-runtime:12.1.0",
            "UPPER/case:1",
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert_eq!(e.reason, "repository name must be lowercase", "{bad}");
        }
        // Upper case in a tag is allowed; a reference that is wrong in another way too is not
        // blamed on its case.
        assert!(ImageRef::parse("quay.io/astronomer/astro-runtime:RC1").is_ok());
        let e = ImageRef::parse("quay.io/A/b@sha256:short").unwrap_err();
        assert_ne!(e.reason, "repository name must be lowercase");
    }

    #[test]
    fn mirrors_map_prefixes_at_path_boundaries() {
        let m = vec![
            Mirror::parse("quay.io=mirror.local:5000").unwrap(),
            Mirror::parse("astrocrpublic.azurecr.io=mirror.local:5000/azure").unwrap(),
        ];
        let r = ImageRef::parse("quay.io/astronomer/astro-runtime:1").unwrap();
        let loc = r.locate(&m);
        assert_eq!(
            (loc.host.as_str(), loc.repository.as_str(), loc.mirrored),
            ("mirror.local:5000", "astronomer/astro-runtime", true)
        );
        let r = ImageRef::parse("astrocrpublic.azurecr.io/runtime:3.1-2").unwrap();
        assert_eq!(r.locate(&m).repository, "azure/runtime");
        let r = ImageRef::parse("quay.io.evil.com/x:1").unwrap();
        assert!(!r.locate(&m).mirrored);
        assert!(Mirror::parse("nodst").is_err());
        assert!(Mirror::parse("https://a=b").is_err());
    }
}
