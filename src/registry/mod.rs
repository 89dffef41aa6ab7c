//! The registry resolver: tag -> digest, for every command.
//!
//! Why not `oci_client::Client::fetch_manifest_digest`: the commands here need what that call does
//! not surface — the media type from a HEAD, the HTTP status and `Retry-After` for retries, per-host
//! TLS choices, request counters for the benchmarks, and one token per repository shared by every
//! tag. So the few distribution-API requests are made here with reqwest (the HTTP client oci-client
//! itself uses), while reference parsing and manifest types come from oci-client.
//!
//! Request budget per run: one `/v2/` ping per host, one token per repository (Bearer registries),
//! and one manifest request per unique reference: a HEAD when only the digest is needed (a GET
//! follows only when the HEAD carries no digest), a GET straight away when the body is wanted
//! for platforms (except on Docker Hub, where GETs count as pulls: HEAD, then GET for indexes).

pub mod auth;
pub mod reference;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::error::error_chain;
use oci_client::manifest::{
    OciImageIndex, IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use reqwest::{header, Method, StatusCode};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::{Mutex, OnceCell};

pub use auth::{Credential, PullSecretCredentials};
pub use reference::{ImageRef, InvalidReference, Location, Mirror};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
const USER_AGENT: &str = concat!("kubectl-astro-sha/", env!("CARGO_PKG_VERSION"));
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Resolver settings, from the command line.
#[derive(Clone, Debug)]
pub struct Options {
    pub ca_files: Vec<PathBuf>,
    /// Hosts that may be spoken to over plain HTTP or with an unverified certificate.
    pub insecure: Vec<String>,
    pub mirrors: Vec<Mirror>,
    pub concurrency: usize,
    pub timeout: Duration,
    pub retries: u32,
    pub platform: Option<PlatformSpec>,
    /// Fetch index bodies to list platforms (costs a GET per multi-arch tag).
    pub list_platforms: bool,
    /// Read docker's config.json for credentials.
    pub docker_config: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ca_files: vec![],
            insecure: vec![],
            mirrors: vec![],
            concurrency: 16,
            timeout: Duration::from_secs(20),
            retries: 3,
            platform: None,
            list_platforms: false,
            docker_config: true,
        }
    }
}

/// `--platform os/arch[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlatformSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl PlatformSpec {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(PlatformSpec {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(PlatformSpec {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(v.to_string()),
                })
            }
            _ => Err(format!(
                "--platform {s:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
            )),
        }
    }
}

impl std::fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// One platform's manifest inside an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlatformDigest {
    pub platform: String,
    pub digest: String,
}

/// What a reference resolved to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolved {
    /// Where it was looked up (differs from the image when a mirror applied).
    pub source: String,
    pub mirrored: bool,
    /// The top-level digest: the index digest for a multi-arch tag.
    pub digest: String,
    pub media_type: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformDigest>,
    /// The `--platform` manifest digest, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_digest: Option<String>,
}

impl Resolved {
    pub fn is_index(&self) -> bool {
        is_index_media_type(&self.media_type)
    }
    /// The digest to pin: the platform's when `--platform` was given, else the top-level one.
    pub fn pin_digest(&self) -> &str {
        self.platform_digest.as_deref().unwrap_or(&self.digest)
    }
}

pub fn is_index_media_type(mt: &str) -> bool {
    mt == OCI_IMAGE_INDEX_MEDIA_TYPE || mt == IMAGE_MANIFEST_LIST_MEDIA_TYPE
}

/// Why a reference did not resolve. Cloneable so one failure can be shared by every workload that
/// uses the same image (the cache stores results, errors included).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
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
    #[error("{host}/{repository}: registry answered HTTP {status}{}", tries(*attempts))]
    Status {
        host: String,
        repository: String,
        status: u16,
        attempts: u32,
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
    pub fn short(&self) -> String {
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
        }
    }

    /// What to do next.
    pub fn hint(&self) -> Option<String> {
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
            RegistryError::Status { .. } => "the registry failed; retry later (--registry-retries sets how often a 429/5xx is retried)".into(),
            RegistryError::Truncated { .. } => "the connection dropped mid-transfer; retry, and check any proxy in between".into(),
            RegistryError::DigestMismatch { .. } => "the response was corrupted or tampered with in transit; retry, and check any proxy in between".into(),
            RegistryError::BadManifest { .. } => "the registry returned something that is not an image manifest".into(),
            RegistryError::NoPlatform { .. } => "pick one of the listed platforms with --platform".into(),
            RegistryError::Token { host, .. } => format!("the token service for {host} refused or failed; check credentials and retry"),
        })
    }
}

/// Counters for the benchmarks and `-v` logs.
#[derive(Default, Debug)]
pub struct Stats {
    pub ping_requests: AtomicU64,
    pub token_requests: AtomicU64,
    pub manifest_requests: AtomicU64,
    pub retries: AtomicU64,
}

#[derive(Clone, Debug)]
struct Host {
    base: String,
    verify: bool,
    challenge: auth::Challenge,
}

type Shared<T> = Arc<OnceCell<T>>;
/// One token slot per (host, repository), filled by the first request that needs it.
type TokenSlots = HashMap<(String, String), Arc<Mutex<Option<String>>>>;
/// Results per (location, tag or digest), errors included.
type ResultCache = HashMap<(Location, String), Shared<Result<Resolved, RegistryError>>>;

pub struct Resolver {
    opts: Options,
    /// Built on first use: building it loads the system's CA roots (145 on Debian, ~20 ms), which
    /// a run that only talks to `--insecure-registry` hosts never needs.
    verified: std::sync::OnceLock<Result<reqwest::Client, String>>,
    ca_certs: Vec<reqwest::Certificate>,
    unverified: reqwest::Client,
    hosts: Mutex<HashMap<String, Shared<Result<Host, RegistryError>>>>,
    tokens: Mutex<TokenSlots>,
    cache: Mutex<ResultCache>,
    pull_secrets: PullSecretCredentials,
    docker_creds: std::sync::Mutex<HashMap<String, Option<Credential>>>,
    pub stats: Stats,
}

impl Resolver {
    pub fn new(opts: Options) -> crate::error::Result<Self> {
        // ring, not aws-lc-rs: no CPU-jitter entropy collection on first use (scripts/bench,
        // benches/results.md). The process default, so kube's client uses it too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut ca_certs = vec![];
        for path in &opts.ca_files {
            let pem = std::fs::read(path).map_err(|e| {
                crate::error::Error::new(format!(
                    "cannot read --registry-ca {}: {e}",
                    path.display()
                ))
                .hint("pass a PEM file holding the CA certificate(s) of the registry")
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                crate::error::Error::new(format!(
                    "--registry-ca {}: not a PEM certificate bundle: {e}",
                    path.display()
                ))
                .hint("pass a PEM file holding the CA certificate(s) of the registry")
            })?;
            if certs.is_empty() {
                return Err(crate::error::Error::new(format!(
                    "--registry-ca {}: no certificate found in the file",
                    path.display()
                )));
            }
            ca_certs.extend(certs);
        }
        let unverified = builder_clone(&opts)
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| crate::error::Error::new(format!("cannot build the HTTP client: {e}")))?;
        Ok(Resolver {
            opts,
            verified: std::sync::OnceLock::new(),
            ca_certs,
            unverified,
            hosts: Mutex::default(),
            tokens: Mutex::default(),
            cache: Mutex::default(),
            pull_secrets: PullSecretCredentials::default(),
            docker_creds: std::sync::Mutex::default(),
            stats: Stats::default(),
        })
    }

    /// Credentials from the cluster's pull secrets, tried before docker's config.
    pub fn with_pull_secrets(mut self, creds: PullSecretCredentials) -> Self {
        self.pull_secrets = creds;
        self
    }

    fn credential(&self, host: &str) -> Option<Credential> {
        if let Some(c) = self.pull_secrets.get(host) {
            return Some(c.clone());
        }
        if !self.opts.docker_config {
            return None;
        }
        let mut map = self.docker_creds.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(host.to_string())
            .or_insert_with(|| auth::docker_config_credential(host))
            .clone()
    }

    fn is_insecure(&self, host: &str) -> bool {
        self.opts.insecure.iter().any(|h| h == host)
    }

    /// Resolve one image; every later call for the same location and tag shares the first result.
    pub async fn resolve(&self, image: &ImageRef) -> Result<Resolved, RegistryError> {
        let loc = image.locate(&self.opts.mirrors);
        let reference = image
            .tag()
            .map(str::to_string)
            .or_else(|| image.digest().map(str::to_string))
            .unwrap_or_else(|| "latest".into());
        let cell = {
            let mut cache = self.cache.lock().await;
            cache
                .entry((loc.clone(), reference.clone()))
                .or_default()
                .clone()
        };
        cell.get_or_init(|| self.resolve_uncached(loc, reference))
            .await
            .clone()
    }

    /// Resolve many images with bounded concurrency, ticking `progress` as each finishes. The
    /// results come back in input order.
    pub async fn resolve_many(
        &self,
        images: &[ImageRef],
        progress: &indicatif::ProgressBar,
    ) -> Vec<Result<Resolved, RegistryError>> {
        let mut out: Vec<Option<Result<Resolved, RegistryError>>> = vec![None; images.len()];
        let mut stream = futures::stream::iter(images.iter().enumerate())
            .map(|(i, img)| async move { (i, self.resolve(img).await) })
            .buffer_unordered(self.opts.concurrency.max(1));
        while let Some((i, r)) = stream.next().await {
            progress.inc(1);
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(RegistryError::Status {
                        host: String::new(),
                        repository: String::new(),
                        status: 0,
                        attempts: 0,
                    })
                })
            })
            .collect()
    }

    async fn resolve_uncached(
        &self,
        loc: Location,
        reference: String,
    ) -> Result<Resolved, RegistryError> {
        let host = self.host(&loc.host).await?;
        let url = format!(
            "{}/v2/{}/manifests/{}",
            host.base, loc.repository, reference
        );
        let want_body = self.opts.platform.is_some() || self.opts.list_platforms;
        let (header_digest, mut media_type, needs_body) = if get_first(&loc.host, want_body) {
            (None, String::new(), true)
        } else {
            let head = self
                .manifest_request(&host, &loc, &reference, Method::HEAD, &url)
                .await?;
            let header_digest = digest_header(&head);
            let media_type = content_type(&head);
            let needs_body =
                header_digest.is_none() || (is_index_media_type(&media_type) && want_body);
            (header_digest, media_type, needs_body)
        };
        let (digest, body) = if needs_body {
            let (get_digest, get_type, body) =
                self.get_manifest(&host, &loc, &reference, &url).await?;
            let get_digest = get_digest.or(header_digest.clone());
            let computed = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
            let mismatch = |expected: &str| RegistryError::DigestMismatch {
                host: loc.host.clone(),
                repository: loc.repository.clone(),
                reference: reference.clone(),
                expected: expected.to_string(),
                computed: computed.clone(),
            };
            if let Some(expected) = &get_digest {
                if expected.starts_with("sha256:") && *expected != computed {
                    return Err(mismatch(expected));
                }
            }
            if reference.starts_with("sha256:") && reference != computed {
                return Err(mismatch(&reference));
            }
            // With no digest header to check against, the body's hash IS the answer: it must at
            // least be a whole manifest (a cut-short body with a matching Content-Length is not).
            if let Some(problem) = manifest_shape_problem(&body) {
                return Err(RegistryError::BadManifest {
                    host: loc.host.clone(),
                    repository: loc.repository.clone(),
                    reference: reference.clone(),
                    detail: problem,
                });
            }
            if !get_type.is_empty() {
                media_type = get_type;
            }
            if media_type.is_empty() {
                media_type = body_media_type(&body).unwrap_or_default();
            }
            (get_digest.unwrap_or(computed), Some(body))
        } else {
            (header_digest.unwrap_or_default(), None)
        };

        let mut resolved = Resolved {
            source: format!("{loc}:{reference}"),
            mirrored: loc.mirrored,
            digest,
            media_type,
            platforms: vec![],
            platform_digest: None,
        };
        if let Some(body) = body.filter(|_| resolved.is_index()) {
            let index: OciImageIndex =
                serde_json::from_slice(&body).map_err(|e| RegistryError::BadManifest {
                    host: loc.host.clone(),
                    repository: loc.repository.clone(),
                    reference: reference.clone(),
                    detail: format!("index does not parse: {e}"),
                })?;
            resolved.platforms = index
                .manifests
                .iter()
                .filter_map(|m| {
                    let p = m.platform.as_ref()?;
                    let mut name = format!("{}/{}", p.os, p.architecture);
                    if let Some(v) = p.variant.as_deref().filter(|v| !v.is_empty()) {
                        name = format!("{name}/{v}");
                    }
                    Some(PlatformDigest {
                        platform: name,
                        digest: m.digest.clone(),
                    })
                })
                .collect();
            if let Some(want) = &self.opts.platform {
                let hit = index.manifests.iter().find(|m| {
                    m.platform.as_ref().is_some_and(|p| {
                        p.os.to_string() == want.os
                            && p.architecture.to_string() == want.architecture
                            && (want.variant.is_none()
                                || p.variant.as_deref() == want.variant.as_deref())
                    })
                });
                match hit {
                    Some(m) => resolved.platform_digest = Some(m.digest.clone()),
                    None => {
                        return Err(RegistryError::NoPlatform {
                            reference: format!("{loc}:{reference}"),
                            platform: want.to_string(),
                            available: resolved
                                .platforms
                                .iter()
                                .map(|p| p.platform.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        })
                    }
                }
            }
        } else if self.opts.platform.is_some() {
            // A single-platform manifest is its own platform digest.
            resolved.platform_digest = Some(resolved.digest.clone());
        }
        Ok(resolved)
    }

    /// Learns once per host which scheme answers and which auth it wants (`GET /v2/`).
    async fn host(&self, name: &str) -> Result<Host, RegistryError> {
        let cell = {
            let mut hosts = self.hosts.lock().await;
            hosts.entry(name.to_string()).or_default().clone()
        };
        cell.get_or_init(|| self.probe_host(name)).await.clone()
    }

    async fn probe_host(&self, name: &str) -> Result<Host, RegistryError> {
        let insecure = self.is_insecure(name);
        let attempts: Vec<(&str, bool)> = if insecure {
            vec![("https", false), ("http", false)]
        } else {
            vec![("https", true)]
        };
        let mut last_err = None;
        for (scheme, verify) in attempts {
            let base = format!("{scheme}://{name}");
            let client = if verify {
                self.verified(name)?
            } else {
                &self.unverified
            };
            self.stats.ping_requests.fetch_add(1, Ordering::Relaxed);
            // Trying HTTPS on a host that may speak plain HTTP: a handshake failure is the answer,
            // not a transient fault, so that attempt is not retried.
            let retries = if insecure && scheme == "https" {
                0
            } else {
                self.opts.retries
            };
            let res = self
                .send_with_retries(name, retries, || client.get(format!("{base}/v2/")))
                .await;
            match res {
                Ok((resp, _)) => {
                    let challenge = if resp.status() == StatusCode::UNAUTHORIZED {
                        resp.headers()
                            .get(header::WWW_AUTHENTICATE)
                            .and_then(|h| h.to_str().ok())
                            .map(auth::Challenge::parse)
                            .unwrap_or(auth::Challenge::None)
                    } else {
                        auth::Challenge::None
                    };
                    tracing::debug!(host = name, %base, ?challenge, "registry probed");
                    return Ok(Host {
                        base,
                        verify,
                        challenge,
                    });
                }
                Err(e) => {
                    tracing::debug!(host = name, %base, error = %e, "registry probe failed");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or(RegistryError::Connect {
            host: name.into(),
            detail: "no scheme to try".into(),
            attempts: 0,
            established: false,
        }))
    }

    fn client(&self, host: &Host) -> Result<&reqwest::Client, RegistryError> {
        if host.verify {
            self.verified(host.base.trim_start_matches("https://"))
        } else {
            Ok(&self.unverified)
        }
    }

    fn verified(&self, host: &str) -> Result<&reqwest::Client, RegistryError> {
        self.verified
            .get_or_init(|| {
                let mut builder = builder_clone(&self.opts);
                for c in &self.ca_certs {
                    builder = builder.add_root_certificate(c.clone());
                }
                builder.build().map_err(|e| error_chain(&e))
            })
            .as_ref()
            .map_err(|e| RegistryError::Tls {
                host: host.into(),
                detail: format!("cannot set up certificate verification: {e}"),
            })
    }

    async fn manifest_request(
        &self,
        host: &Host,
        loc: &Location,
        reference: &str,
        method: Method,
        url: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let cred = self.credential(&loc.host);
        // The token this request was refused with, once: a refresh replaces exactly that token.
        let mut refused: Option<String> = None;
        let mut refreshed = false;
        loop {
            let mut bearer = None;
            let authz = match &host.challenge {
                auth::Challenge::None => None,
                auth::Challenge::Basic => cred.as_ref().and_then(basic_header),
                auth::Challenge::Bearer { realm, service } => {
                    let t = self
                        .token(
                            host,
                            loc,
                            realm,
                            service.as_deref(),
                            cred.as_ref(),
                            refused.as_deref(),
                        )
                        .await?;
                    bearer = Some(t.clone());
                    Some(format!("Bearer {t}"))
                }
            };
            self.stats.manifest_requests.fetch_add(1, Ordering::Relaxed);
            let client = self.client(host)?;
            let (resp, attempts) = self
                .send_with_retries(&loc.host, self.opts.retries, || {
                    let mut rb = client
                        .request(method.clone(), url)
                        .header(header::ACCEPT, ACCEPT);
                    if let Some(a) = &authz {
                        rb = rb.header(header::AUTHORIZATION, a);
                    }
                    rb
                })
                .await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            match status {
                // A token that expired mid-run: fetch a fresh one, once.
                StatusCode::UNAUTHORIZED
                    if matches!(host.challenge, auth::Challenge::Bearer { .. }) && !refreshed =>
                {
                    refreshed = true;
                    refused = bearer;
                    continue;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(RegistryError::Unauthorized {
                        host: loc.host.clone(),
                        repository: loc.repository.clone(),
                        with_credentials: cred.is_some(),
                    })
                }
                StatusCode::FORBIDDEN => {
                    return Err(RegistryError::Denied {
                        host: loc.host.clone(),
                        repository: loc.repository.clone(),
                    })
                }
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound {
                        host: loc.host.clone(),
                        repository: loc.repository.clone(),
                        reference: reference.to_string(),
                    })
                }
                s => {
                    return Err(RegistryError::Status {
                        host: loc.host.clone(),
                        repository: loc.repository.clone(),
                        status: s.as_u16(),
                        attempts,
                    })
                }
            }
        }
    }

    /// GETs a manifest and reads its body. A transfer that breaks off mid-body (connection reset,
    /// fewer bytes than announced) is retried like a failed request, then reported as truncated.
    async fn get_manifest(
        &self,
        host: &Host,
        loc: &Location,
        reference: &str,
        url: &str,
    ) -> Result<(Option<String>, String, Vec<u8>), RegistryError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let get = self
                .manifest_request(host, loc, reference, Method::GET, url)
                .await?;
            let digest = digest_header(&get);
            let media_type = content_type(&get);
            let announced = get.content_length();
            match get.bytes().await {
                Ok(body) => return Ok((digest, media_type, body.to_vec())),
                Err(e) if attempt <= self.opts.retries => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let backoff = Self::backoff(attempt);
                    tracing::debug!(host = %loc.host, attempt, ?backoff, error = %e, "manifest body cut short; retrying");
                    tokio::time::sleep(backoff).await;
                }
                Err(e) if e.is_timeout() => {
                    return Err(self.transport_error(&loc.host, e, attempt));
                }
                Err(e) => {
                    let size = announced
                        .map(|n| format!("{n} bytes announced: "))
                        .unwrap_or_default();
                    return Err(RegistryError::Truncated {
                        host: loc.host.clone(),
                        repository: loc.repository.clone(),
                        reference: reference.to_string(),
                        detail: format!("{size}{}", error_chain(&e)),
                        attempts: attempt,
                    });
                }
            }
        }
    }

    /// One token per repository per run. `refused` is a token the registry answered 401 to: it is
    /// replaced once, and requests that were refused with the same token concurrently share the
    /// replacement instead of each fetching their own.
    async fn token(
        &self,
        host: &Host,
        loc: &Location,
        realm: &str,
        service: Option<&str>,
        cred: Option<&Credential>,
        refused: Option<&str>,
    ) -> Result<String, RegistryError> {
        let slot = {
            let mut tokens = self.tokens.lock().await;
            tokens
                .entry((loc.host.clone(), loc.repository.clone()))
                .or_default()
                .clone()
        };
        let mut guard = slot.lock().await;
        if let Some(t) = reusable_token(guard.as_deref(), refused) {
            return Ok(t);
        }
        let scope = format!("repository:{}:pull", loc.repository);
        let client = self.client(host)?;
        let token_err = |detail: String| RegistryError::Token {
            host: loc.host.clone(),
            detail,
        };
        self.stats.token_requests.fetch_add(1, Ordering::Relaxed);
        let (resp, _) = self
            .send_with_retries(&loc.host, self.opts.retries, || {
                let mut rb = match cred {
                    Some(Credential::IdentityToken(t)) => {
                        let mut form = vec![
                            ("grant_type", "refresh_token"),
                            ("refresh_token", t.as_str()),
                            ("scope", scope.as_str()),
                            ("client_id", "kubectl-astro-sha"),
                        ];
                        if let Some(s) = service {
                            form.push(("service", s));
                        }
                        client.post(realm).form(&form)
                    }
                    _ => {
                        let mut q = vec![("scope", scope.as_str())];
                        if let Some(s) = service {
                            q.push(("service", s));
                        }
                        client.get(realm).query(&q)
                    }
                };
                if let Some(Credential::Basic { username, password }) = cred {
                    rb = rb.basic_auth(username, Some(password));
                }
                rb
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                host: loc.host.clone(),
                repository: loc.repository.clone(),
                with_credentials: cred.is_some(),
            });
        }
        if !status.is_success() {
            return Err(token_err(format!("HTTP {status}")));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body: TokenResponse = resp
            .json()
            .await
            .map_err(|e| token_err(format!("response is not a token: {e}")))?;
        let token = body
            .token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_err("response holds no token".into()))?;
        *guard = Some(token.clone());
        Ok(token)
    }

    /// Sends, retrying 429/502/503/504 and transport failures with exponential backoff, honouring
    /// `Retry-After` (capped at a minute).
    async fn send_with_retries(
        &self,
        host: &str,
        retries: u32,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::Response, u32), RegistryError> {
        let mut attempt = 0u32;
        loop {
            let result = build().send().await;
            let retry_after = match &result {
                Ok(resp) if is_retryable(resp.status()) => Some(retry_after(resp)),
                Ok(_) => None,
                Err(e) if is_tls_failure(&error_chain(e)) => None,
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() => {
                    Some(None)
                }
                Err(_) => None,
            };
            match (retry_after, attempt < retries) {
                (Some(wait), true) => {
                    attempt += 1;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let backoff = wait.unwrap_or_else(|| Self::backoff(attempt));
                    tracing::debug!(host, attempt, ?backoff, "retrying registry request");
                    tokio::time::sleep(backoff.min(MAX_RETRY_AFTER)).await;
                }
                _ => {
                    return result
                        .map(|r| (r, attempt + 1))
                        .map_err(|e| self.transport_error(host, e, attempt + 1))
                }
            }
        }
    }

    /// Backoff before retry number `attempt` (1-based) when the server named no `Retry-After`.
    fn backoff(attempt: u32) -> Duration {
        Duration::from_millis(200 * 2u64.pow(attempt.saturating_sub(1).min(8)))
    }

    fn transport_error(&self, host: &str, e: reqwest::Error, attempts: u32) -> RegistryError {
        if e.is_timeout() {
            return RegistryError::Timeout {
                host: host.into(),
                secs: self.opts.timeout.as_secs().max(1),
                attempts,
            };
        }
        let detail = error_chain(&e);
        let lower = detail.to_ascii_lowercase();
        if lower.contains("invalidcontenttype") || lower.contains("corrupt message") {
            return RegistryError::Tls {
                host: host.into(),
                detail: "the server does not answer TLS (a plain-HTTP registry?)".into(),
            };
        }
        if is_tls_failure(&detail) {
            return RegistryError::Tls {
                host: host.into(),
                detail,
            };
        }
        RegistryError::Connect {
            host: host.into(),
            established: !e.is_connect(),
            detail,
            attempts,
        }
    }
}

fn builder_clone(opts: &Options) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(opts.timeout)
        .timeout(opts.timeout)
        .redirect(reqwest::redirect::Policy::limited(5))
}

/// Whether to GET a manifest straight away instead of HEAD first. When the body is wanted
/// (platforms of an index), a GET answers everything a HEAD would in the same single request,
/// and multi-arch tags (the Runtime's) would otherwise cost a HEAD and a GET. Docker Hub is the
/// exception: there a GET counts against the pull rate limit and a HEAD does not.
fn get_first(host: &str, want_body: bool) -> bool {
    want_body && host != "registry-1.docker.io"
}

/// The cached token, unless it is the one the registry just refused.
fn reusable_token(cached: Option<&str>, refused: Option<&str>) -> Option<String> {
    cached.filter(|t| Some(*t) != refused).map(str::to_string)
}

fn basic_header(c: &Credential) -> Option<String> {
    use base64::Engine;
    match c {
        Credential::Basic { username, password } => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        )),
        Credential::IdentityToken(_) => None,
    }
}

/// Statuses worth another try of an idempotent manifest/token request: rate limiting, and server
/// or gateway failures that are usually transient (a storage backend hiccup answers 500).
fn is_retryable(s: StatusCode) -> bool {
    matches!(s.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = v
        .parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| httpdate(v))
        .map(std::time::SystemTime::from)?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

fn httpdate(v: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(v)
        .ok()
}

fn digest_header(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
        .filter(|s| {
            [
                OCI_IMAGE_INDEX_MEDIA_TYPE,
                OCI_IMAGE_MEDIA_TYPE,
                IMAGE_MANIFEST_LIST_MEDIA_TYPE,
                IMAGE_MANIFEST_MEDIA_TYPE,
            ]
            .contains(&s.as_str())
        })
        .unwrap_or_default()
}

fn body_media_type(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return Some(mt.to_string());
    }
    if v.get("manifests").is_some() {
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE.into())
    } else {
        Some(OCI_IMAGE_MEDIA_TYPE.into())
    }
}

/// Why a manifest body cannot be trusted as a manifest, if it cannot: not JSON (cut short or
/// corrupted), or JSON that is no manifest at all.
fn manifest_shape_problem(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Some(format!(
                "the manifest body ({} bytes) is not valid JSON ({e}): cut short or corrupted in transit",
                body.len()
            ))
        }
    };
    match v.as_object() {
        Some(o) if o.contains_key("schemaVersion") => None,
        _ => Some("the body is JSON but not an image manifest (no schemaVersion)".into()),
    }
}

/// Handshake and certificate failures: permanent for this run, so never retried.
fn is_tls_failure(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "unknownissuer",
        "invalidcontenttype",
        "corrupt message",
    ]
    .iter()
    .any(|k| lower.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_http_dates() {
        // RFC 9110's IMF-fixdate (and its obsolete RFC 850 zone name GMT) and an RFC 3339 time.
        let t = httpdate("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.as_second(), 784111777);
        assert!(httpdate("in a minute").is_none());
        assert_eq!(
            "1994-11-06T08:49:37Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second(),
            784111777
        );
    }

    #[test]
    fn platform_spec_parses() {
        assert_eq!(
            PlatformSpec::parse("linux/arm64/v8")
                .unwrap()
                .variant
                .as_deref(),
            Some("v8")
        );
        assert_eq!(
            PlatformSpec::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert!(PlatformSpec::parse("linux").is_err());
        assert!(PlatformSpec::parse("linux//").is_err());
    }

    #[test]
    fn body_media_type_falls_back_on_shape() {
        assert_eq!(
            body_media_type(br#"{"manifests":[]}"#).as_deref(),
            Some(OCI_IMAGE_INDEX_MEDIA_TYPE)
        );
        assert_eq!(
            body_media_type(
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            )
            .as_deref(),
            Some(IMAGE_MANIFEST_MEDIA_TYPE)
        );
    }

    #[test]
    fn one_request_per_tag_when_the_body_is_wanted_except_on_docker_hub() {
        assert!(get_first("quay.io", true));
        assert!(
            !get_first("quay.io", false),
            "digest only: a HEAD is enough"
        );
        assert!(
            !get_first("registry-1.docker.io", true),
            "GETs count as pulls on Docker Hub"
        );
    }

    #[test]
    fn a_refused_token_is_replaced_once_for_everyone() {
        // First request: nothing cached, nothing refused -> fetch.
        assert_eq!(reusable_token(None, None), None);
        // Cached and not refused -> reuse.
        assert_eq!(reusable_token(Some("a"), None).as_deref(), Some("a"));
        // The cached token is the refused one -> fetch a new one.
        assert_eq!(reusable_token(Some("a"), Some("a")), None);
        // Someone already replaced the refused token -> share the replacement.
        assert_eq!(reusable_token(Some("b"), Some("a")).as_deref(), Some("b"));
    }

    #[test]
    fn cut_short_or_foreign_bodies_are_not_manifests() {
        let whole = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        assert_eq!(manifest_shape_problem(whole), None);
        let half = &whole[..whole.len() / 2];
        assert!(manifest_shape_problem(half)
            .unwrap()
            .contains("not valid JSON"));
        assert!(manifest_shape_problem(b"{\"errors\":[]}")
            .unwrap()
            .contains("not an image manifest"));
        assert!(manifest_shape_problem(b"<html>").is_some());
    }

    #[test]
    fn server_errors_are_retried_client_errors_are_not() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 501] {
            assert!(!is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn errors_after_retries_say_how_many_attempts() {
        let e = RegistryError::Status {
            host: "h".into(),
            repository: "r".into(),
            status: 503,
            attempts: 4,
        };
        assert_eq!(
            e.to_string(),
            "h/r: registry answered HTTP 503 (4 attempts)"
        );
        let e = RegistryError::Timeout {
            host: "h:5000".into(),
            secs: 1,
            attempts: 1,
        };
        assert_eq!(e.to_string(), "h:5000: no answer within 1s");
    }

    #[test]
    fn every_error_has_a_hint_and_short_form() {
        let e = RegistryError::Unauthorized {
            host: "h".into(),
            repository: "r".into(),
            with_credentials: false,
        };
        assert!(e.hint().unwrap().contains("docker login h"));
        assert_eq!(e.short(), "unauthorized");
        let e = RegistryError::Tls {
            host: "h".into(),
            detail: "x".into(),
        };
        assert!(e.hint().unwrap().contains("--registry-ca"));
    }
}
