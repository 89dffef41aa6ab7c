//! What resolving an image reference gives: the digest and what it names (`Resolved`), or why it
//! did not resolve (`RegistryError`, with a short cell text and a hint). Plain data, produced by
//! `registry::Resolver` and read by the pure model (`state`, `plan`), which must not depend on
//! the client that fills it.

use oci_client::manifest::{IMAGE_MANIFEST_LIST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE};
use serde::Serialize;

use crate::core::credentials::CredentialSource;
use crate::core::digest::DigestError;
use crate::core::image_ref::InvalidReference;

/// One platform's manifest inside an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct PlatformDigest {
    pub(crate) platform: String,
    pub(crate) digest: String,
}

/// What a reference resolved to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Resolved {
    /// Where it was looked up (differs from the image when a mirror applied).
    pub(crate) source: String,
    pub(crate) mirrored: bool,
    /// The top-level digest: the index digest for a multi-arch tag.
    pub(crate) digest: String,
    pub(crate) media_type: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) platforms: Vec<PlatformDigest>,
    /// The `--platform` manifest digest, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) platform_digest: Option<String>,
}

impl Resolved {
    pub(crate) fn is_index(&self) -> bool {
        is_index_media_type(&self.media_type)
    }
    /// The digest to pin: the platform's when `--platform` was given, else the top-level one.
    pub(crate) fn pin_digest(&self) -> &str {
        self.platform_digest.as_deref().unwrap_or(&self.digest)
    }
}

pub(crate) fn is_index_media_type(mt: &str) -> bool {
    mt == OCI_IMAGE_INDEX_MEDIA_TYPE || mt == IMAGE_MANIFEST_LIST_MEDIA_TYPE
}

/// Why a reference did not resolve. Cloneable so one failure can be shared by every workload that
/// uses the same image (the cache stores results, errors included).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RegistryError {
    #[error(transparent)]
    Invalid(#[from] InvalidReference),
    /// `credential`: where the refused credential came from (never the credential itself).
    #[error(
        "{host}: unauthorized to pull {repository}{}",
        refused_with(credential)
    )]
    Unauthorized {
        host: String,
        repository: String,
        credential: CredentialSource,
    },
    #[error("{host}: access to {repository} denied (403)")]
    Denied { host: String, repository: String },
    #[error("{}: not found in the registry", at(host, repository, reference))]
    NotFound {
        host: String,
        repository: String,
        reference: String,
    },
    #[error("{host}: TLS failure: {detail}")]
    Tls { host: String, detail: String },
    #[error("{host}: no answer within {secs}s{}", tries(*attempts))]
    Timeout {
        host: String,
        secs: u64,
        attempts: u32,
    },
    /// The host name does not resolve (DNS): no connection was ever tried.
    #[error("{host}: cannot connect: the host name does not resolve: {detail}{}", tries(*attempts))]
    UnknownHost {
        host: String,
        detail: String,
        attempts: u32,
    },
    /// `established`: the connection was made and then broke (a reset mid-request), as
    /// opposed to never being made.
    #[error("{host}: {}: {detail}{}", if *established { "connection failed" } else { "cannot connect" }, tries(*attempts))]
    Connect {
        host: String,
        detail: String,
        attempts: u32,
        established: bool,
    },
    /// `message`: the registry's own words (first error of the body), cleaned; may be empty.
    #[error("{host}/{repository}: registry answered HTTP {status}{}{}", tries(*attempts), if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        host: String,
        repository: String,
        status: u16,
        attempts: u32,
        message: String,
    },
    /// A digest from the registry (header, index entry) or the request that is not
    /// `sha256:` + 64 lower-case hex.
    #[error("{}: {error}; refusing it", at(host, repository, reference))]
    BadDigest {
        host: String,
        repository: String,
        reference: String,
        error: Box<DigestError>,
    },
    #[error("{}: the {what} is larger than {} MiB; refusing it (read stopped there)", at(host, repository, reference), *limit >> 20)]
    TooLarge {
        host: String,
        repository: String,
        reference: String,
        what: String,
        limit: u64,
    },
    /// Something the tool will not do for safety: a credential over plain HTTP, a redirect from
    /// HTTPS to HTTP.
    #[error("{host}: {detail}")]
    Refused {
        host: String,
        detail: String,
        hint: String,
    },
    #[error("{}: the manifest download was cut short ({detail}){}", at(host, repository, reference), tries(*attempts))]
    Truncated {
        host: String,
        repository: String,
        reference: String,
        detail: String,
        attempts: u32,
    },
    #[error(
        "{}: manifest body hashes to {computed}, but the registry said {expected}; refusing it",
        at(host, repository, reference)
    )]
    DigestMismatch {
        host: String,
        repository: String,
        reference: String,
        expected: String,
        computed: String,
    },
    #[error("{}: {detail}", at(host, repository, reference))]
    BadManifest {
        host: String,
        repository: String,
        reference: String,
        detail: String,
    },
    #[error("{reference}: no manifest for platform {platform} (has: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{host}: token request failed: {detail}")]
    Token { host: String, detail: String },
}

/// `host/repository:tag`, or `host/repository@sha256:…` for a digest, as references are written.
fn at(host: &str, repository: &str, reference: &str) -> String {
    let sep = if reference.contains(':') { '@' } else { ':' };
    format!("{host}/{repository}{sep}{reference}")
}

/// " anonymously", or which configured credential was refused.
fn refused_with(credential: &CredentialSource) -> String {
    match credential {
        CredentialSource::Anonymous => " anonymously".into(),
        source => format!(" with the configured credentials from {source}"),
    }
}

/// " (4 attempts)" when a request was retried before giving up.
fn tries(attempts: u32) -> String {
    if attempts > 1 {
        format!(" ({attempts} attempts)")
    } else {
        String::new()
    }
}

impl RegistryError {
    /// The registry host the failure is about (`None`: the reference itself, before any host).
    pub(crate) fn host(&self) -> Option<&str> {
        match self {
            RegistryError::Invalid(_) | RegistryError::NoPlatform { .. } => None,
            RegistryError::Unauthorized { host, .. }
            | RegistryError::Denied { host, .. }
            | RegistryError::NotFound { host, .. }
            | RegistryError::Tls { host, .. }
            | RegistryError::Timeout { host, .. }
            | RegistryError::UnknownHost { host, .. }
            | RegistryError::Connect { host, .. }
            | RegistryError::Status { host, .. }
            | RegistryError::BadDigest { host, .. }
            | RegistryError::TooLarge { host, .. }
            | RegistryError::Refused { host, .. }
            | RegistryError::Truncated { host, .. }
            | RegistryError::DigestMismatch { host, .. }
            | RegistryError::BadManifest { host, .. }
            | RegistryError::Token { host, .. } => Some(host),
        }
    }

    /// Whether the message already names `reference` (as written) at its start, so a caller
    /// does not put it in front a second time.
    fn names(&self, reference: &str) -> bool {
        match self {
            RegistryError::Invalid(e) => e.input == reference,
            RegistryError::NoPlatform { reference: r, .. } => r == reference,
            RegistryError::NotFound {
                host,
                repository,
                reference: r,
            }
            | RegistryError::BadDigest {
                host,
                repository,
                reference: r,
                ..
            }
            | RegistryError::TooLarge {
                host,
                repository,
                reference: r,
                ..
            }
            | RegistryError::Truncated {
                host,
                repository,
                reference: r,
                ..
            }
            | RegistryError::DigestMismatch {
                host,
                repository,
                reference: r,
                ..
            }
            | RegistryError::BadManifest {
                host,
                repository,
                reference: r,
                ..
            } => at(host, repository, r) == reference,
            _ => false,
        }
    }

    /// A few words for a table cell.
    pub(crate) fn short(&self) -> String {
        match self {
            RegistryError::Invalid(_) => "invalid reference".into(),
            RegistryError::Unauthorized { .. } => "unauthorized".into(),
            RegistryError::Denied { .. } => "denied".into(),
            RegistryError::NotFound { .. } => "not found".into(),
            RegistryError::Tls { .. } => "tls error".into(),
            RegistryError::Timeout { .. } => "timeout".into(),
            RegistryError::Connect { .. } | RegistryError::UnknownHost { .. } => {
                "unreachable".into()
            }
            RegistryError::Status { status, .. } => format!("http {status}"),
            RegistryError::Truncated { .. } => "truncated response".into(),
            RegistryError::DigestMismatch { .. } => "digest mismatch".into(),
            RegistryError::BadManifest { .. } => "bad manifest".into(),
            RegistryError::NoPlatform { .. } => "no such platform".into(),
            RegistryError::Token { .. } => "token error".into(),
            RegistryError::BadDigest { .. } => "bad digest".into(),
            RegistryError::TooLarge { .. } => "too large".into(),
            RegistryError::Refused { .. } => "refused".into(),
        }
    }

    /// What to do next.
    pub(crate) fn hint(&self) -> Option<String> {
        Some(match self {
            RegistryError::Invalid(_) => "write it as [registry/]repository[:tag][@sha256:digest]".into(),
            RegistryError::Unauthorized { host, credential, .. } => match credential {
                CredentialSource::Anonymous => format!("log in with `docker login {host}` (or set DOCKER_CONFIG to a config.json with credentials for {host}); pull secrets of the workload are used automatically"),
                CredentialSource::PullSecret { namespace, name } => format!("check the credential for {host} in the pull secret {name} (kubectl get secret {name} -n {namespace}): it is wrong, expired, or lacks access to this repository"),
                CredentialSource::ContainersAuthFile(path) => format!("check the credential for {host} in {} (podman login {host})", path.display()),
                CredentialSource::DockerConfig(path) => format!("check the credential for {host} in {} (docker login {host})", path.display()),
                CredentialSource::Helper(helper) => format!("log in to {host} again through {helper} (docker login {host}), or check that it answers for {host}"),
            },
            RegistryError::Denied { host, .. } => format!("the account used for {host} lacks pull permission on this repository"),
            RegistryError::NotFound { .. } => "check the tag exists (a typo, or a version not mirrored yet); with a mirror, check --registry-mirror".into(),
            RegistryError::Tls { host, .. } => format!("if {host} uses a private CA, pass --registry-ca FILE; for a plain-HTTP registry or to skip verification for this host only, --insecure-registry {host}"),
            RegistryError::Timeout { .. } => "check the network path to the registry, or raise --registry-timeout".into(),
            RegistryError::UnknownHost { host, .. } => format!("check the host name {host} (a typo?), this machine's DNS, and any proxy in between (HTTPS_PROXY, NO_PROXY)"),
            RegistryError::Connect { host, .. } => format!("check that {host} is reachable from here; for a plain-HTTP registry pass --insecure-registry {host}"),
            RegistryError::Status { status, .. } if *status < 500 && *status != 429 => "the registry refused the request; its message (if any) says why".into(),
            RegistryError::Status { .. } => "the registry failed; retry later (--registry-retries sets how often a 429/5xx is retried)".into(),
            RegistryError::Truncated { .. } => "the connection dropped mid-transfer; retry, and check any proxy in between".into(),
            RegistryError::DigestMismatch { .. } => "the response was corrupted or tampered with in transit; retry, and check any proxy in between".into(),
            RegistryError::BadManifest { .. } => "the registry returned something that is not an image manifest".into(),
            RegistryError::NoPlatform { .. } => "pick one of the listed platforms with --platform".into(),
            RegistryError::Token { host, .. } => format!("the token service for {host} refused or failed; check credentials and retry"),
            RegistryError::BadDigest { error, .. } if error.source.as_deref() == Some("requested digest") => "write the image with a sha256 digest (repository@sha256:<64 lower-case hex>): only sha256 can be verified".into(),
            RegistryError::BadDigest { .. } => "a digest pins an image only when it can be verified: the registry (or a proxy in between) must answer sha256:<64 lower-case hex>; report it to the registry's operator".into(),
            RegistryError::TooLarge { .. } => "manifests and indexes are at most 4 MiB (containerd's limit too): the registry or a proxy in between is misbehaving".into(),
            RegistryError::Refused { hint, .. } => hint.clone(),
        })
    }
}

/// References that failed with the same error, told once: a host's TLS or DNS failure, a
/// refused repository, a registry that does not answer. `references` as written, each once, in
/// the order they were met.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failure<'a> {
    pub(crate) error: &'a RegistryError,
    pub(crate) references: Vec<&'a str>,
}

impl Failure<'_> {
    /// One line: the reference once (`ref: error`, or the error alone when it names the
    /// reference itself), or for several references the error once with how many it cost on
    /// which host (`… (16 references on 127.0.0.1:5443)`).
    pub(crate) fn message(&self) -> String {
        let e = self.error;
        match self.references.as_slice() {
            [one] if e.names(one) => e.to_string(),
            [one] => format!("{one}: {e}"),
            many => match e.host() {
                Some(host) => format!("{e} ({} references on {host})", many.len()),
                None => format!("{e} ({} references)", many.len()),
            },
        }
    }
}

/// Groups `(reference, error)` pairs by error, keeping the order of first appearance; a
/// reference met twice (several credential groups) counts once.
pub(crate) fn group_failures<'a>(
    failures: impl IntoIterator<Item = (&'a str, &'a RegistryError)>,
) -> Vec<Failure<'a>> {
    let mut out: Vec<Failure<'a>> = vec![];
    for (reference, error) in failures {
        match out.iter_mut().find(|f| f.error == error) {
            Some(f) if f.references.contains(&reference) => {}
            Some(f) => f.references.push(reference),
            None => out.push(Failure {
                error,
                references: vec![reference],
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::digest::Digest;

    fn tls(host: &str) -> RegistryError {
        RegistryError::Tls {
            host: host.into(),
            detail: "invalid peer certificate: UnknownIssuer".into(),
        }
    }

    /// Issue 23: one TLS failure of a host was printed once per tag.
    #[test]
    fn a_host_failure_is_told_once_with_the_references_it_cost() {
        let e = tls("127.0.0.1:5443");
        let refs: Vec<String> = (0..16)
            .map(|i| format!("127.0.0.1:5443/astronomer/astro-runtime:{i}"))
            .collect();
        let other = tls("quay.io");
        let mut pairs: Vec<(&str, &RegistryError)> =
            refs.iter().map(|r| (r.as_str(), &e)).collect();
        pairs.push(("quay.io/astronomer/astro-runtime:1", &other));
        pairs.push((refs[0].as_str(), &e)); // met again in another credential group
        let groups = group_failures(pairs);
        assert_eq!(groups.len(), 2);
        assert_eq!(
            groups[0].message(),
            "127.0.0.1:5443: TLS failure: invalid peer certificate: UnknownIssuer (16 references on 127.0.0.1:5443)"
        );
        assert_eq!(
            groups[1].message(),
            "quay.io/astronomer/astro-runtime:1: quay.io: TLS failure: invalid peer certificate: UnknownIssuer"
        );
    }

    /// Issue 19: `127.0.0.1:5600/h/sha512/astro-runtime:1: 127.0.0.1:5600/h/sha512/astro-runtime:1: …`.
    #[test]
    fn the_reference_appears_once() {
        let reference = "127.0.0.1:5600/h/sha512/astro-runtime:1";
        let e = RegistryError::BadDigest {
            host: "127.0.0.1:5600".into(),
            repository: "h/sha512/astro-runtime".into(),
            reference: "1".into(),
            error: Box::new(
                Digest::parse_from("sha512:ab", "Docker-Content-Digest header").unwrap_err(),
            ),
        };
        let m = group_failures([(reference, &e)])[0].message();
        assert_eq!(m.matches(reference).count(), 1, "{m}");
        assert!(
            m.starts_with(&format!("{reference}: Docker-Content-Digest header")),
            "{m}"
        );
        // A digest reference is named as written (`@`), so it too appears once.
        let d = format!("sha256:{}", "a".repeat(64));
        let e = RegistryError::NotFound {
            host: "h:5000".into(),
            repository: "r".into(),
            reference: d.clone(),
        };
        let written = format!("h:5000/r@{d}");
        assert_eq!(
            group_failures([(written.as_str(), &e)])[0].message(),
            format!("{written}: not found in the registry")
        );
        // Looked up elsewhere (a mirror, Docker Hub's API host): both names are said.
        assert_eq!(
            group_failures([("redis:7", &e)])[0].message(),
            format!("redis:7: h:5000/r@{d}: not found in the registry")
        );
    }

    /// Issue 23: a DNS failure's hint suggested --insecure-registry.
    #[test]
    fn a_name_that_does_not_resolve_is_not_sent_to_insecure_registry() {
        let e = RegistryError::UnknownHost {
            host: "registry.example.invalid".into(),
            detail: "dns error".into(),
            attempts: 1,
        };
        let h = e.hint().unwrap();
        assert!(
            h.contains("DNS") && h.contains("registry.example.invalid"),
            "{h}"
        );
        assert!(!h.contains("--insecure-registry"), "{h}");
        assert_eq!(e.short(), "unreachable");
        assert!(tls("h").hint().unwrap().contains("--registry-ca"));
        assert!(tls("h").hint().unwrap().contains("--insecure-registry h"));
    }

    /// Issue 23: a 401 did not say which credential was tried.
    #[test]
    fn a_refusal_names_where_the_credential_came_from() {
        let refused = |credential| RegistryError::Unauthorized {
            host: "h".into(),
            repository: "r".into(),
            credential,
        };
        let e = refused(CredentialSource::PullSecret {
            namespace: "ns".into(),
            name: "regcred".into(),
        });
        assert_eq!(
            e.to_string(),
            "h: unauthorized to pull r with the configured credentials from the pull secret ns/regcred"
        );
        assert!(e
            .hint()
            .unwrap()
            .contains("kubectl get secret regcred -n ns"));
        let e = refused(CredentialSource::Anonymous);
        assert_eq!(e.to_string(), "h: unauthorized to pull r anonymously");
        assert!(e.hint().unwrap().contains("docker login h"));
    }
}
