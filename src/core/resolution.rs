//! What resolving an image reference gives: the digest and what it names (`Resolved`), or why it
//! did not resolve (`RegistryError`, with a short cell text and a hint). Plain data, produced by
//! `registry::Resolver` and read by the pure model (`state`, `plan`), which must not depend on
//! the client that fills it.

use oci_client::manifest::{IMAGE_MANIFEST_LIST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE};
use serde::Serialize;

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
    #[error("{host}: unauthorized to pull {repository}{}", if *with_credentials { " with the configured credentials" } else { " anonymously" })]
    Unauthorized {
        host: String,
        repository: String,
        with_credentials: bool,
    },
    #[error("{host}: access to {repository} denied (403)")]
    Denied { host: String, repository: String },
    #[error("{host}/{repository}:{reference}: not found in the registry")]
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
    #[error("{host}/{repository}:{reference}: {error}; refusing it")]
    BadDigest {
        host: String,
        repository: String,
        reference: String,
        error: Box<DigestError>,
    },
    #[error("{host}/{repository}:{reference}: the {what} is larger than {} MiB; refusing it (read stopped there)", *limit >> 20)]
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
    #[error("{host}/{repository}:{reference}: the manifest download was cut short ({detail}){}", tries(*attempts))]
    Truncated {
        host: String,
        repository: String,
        reference: String,
        detail: String,
        attempts: u32,
    },
    #[error("{host}/{repository}:{reference}: manifest body hashes to {computed}, but the registry said {expected}; refusing it")]
    DigestMismatch {
        host: String,
        repository: String,
        reference: String,
        expected: String,
        computed: String,
    },
    #[error("{host}/{repository}:{reference}: {detail}")]
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

/// " (4 attempts)" when a request was retried before giving up.
fn tries(attempts: u32) -> String {
    if attempts > 1 {
        format!(" ({attempts} attempts)")
    } else {
        String::new()
    }
}

impl RegistryError {
    /// A few words for a table cell.
    pub(crate) fn short(&self) -> String {
        match self {
            RegistryError::Invalid(_) => "invalid reference".into(),
            RegistryError::Unauthorized { .. } => "unauthorized".into(),
            RegistryError::Denied { .. } => "denied".into(),
            RegistryError::NotFound { .. } => "not found".into(),
            RegistryError::Tls { .. } => "tls error".into(),
            RegistryError::Timeout { .. } => "timeout".into(),
            RegistryError::Connect { .. } => "unreachable".into(),
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
            RegistryError::Unauthorized { host, with_credentials, .. } => {
                if *with_credentials {
                    format!("check the credentials for {host} in your docker config (docker login {host}) or the workload's imagePullSecrets")
                } else {
                    format!("log in with `docker login {host}` (or set DOCKER_CONFIG to a config.json with credentials for {host}); pull secrets of the workload are used automatically")
                }
            }
            RegistryError::Denied { host, .. } => format!("the account used for {host} lacks pull permission on this repository"),
            RegistryError::NotFound { .. } => "check the tag exists (a typo, or a version not mirrored yet); with a mirror, check --registry-mirror".into(),
            RegistryError::Tls { host, .. } => format!("if {host} uses a private CA, pass --registry-ca FILE; for a plain-HTTP registry or to skip verification for this host only, --insecure-registry {host}"),
            RegistryError::Timeout { .. } => "check the network path to the registry, or raise --registry-timeout".into(),
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
