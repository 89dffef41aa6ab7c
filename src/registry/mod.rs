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
//!
//! Trust nothing a registry says: every digest (headers, index entries) is a [`Digest`] before it
//! is used or printed, a body must hash to every digest that names it, reads are bounded
//! ([`http::MAX_MANIFEST_BYTES`] and friends), registry text is cleaned of control characters
//! ([`text`]), and a credential goes only over TLS or to a host listed with
//! `--insecure-registry`, never across a redirect to another host or from HTTPS to HTTP.

pub(crate) mod auth;
pub(crate) mod http;
pub(crate) mod proxy;
pub(crate) mod text;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::core::digest::{Digest, DigestError};
use crate::error::error_chain;
use oci_client::manifest::{
    OciImageIndex, IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use reqwest::{header, Method, StatusCode};
use serde::Serialize;
use tokio::sync::{Mutex, OnceCell, Semaphore};

pub(crate) use auth::{Credential, CredentialSource, SourcedCredential};
// The data types of resolution live in the pure core, so the model never depends on this client.
pub(crate) use crate::core::image_ref::{ImageRef, Location, Mirror};
pub(crate) use crate::core::resolution::{
    is_index_media_type, PlatformDigest, RegistryError, Resolved,
};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Resolver settings, from the command line.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) ca_files: Vec<PathBuf>,
    /// Hosts that may be spoken to over plain HTTP or with an unverified certificate.
    pub(crate) insecure: Vec<String>,
    pub(crate) mirrors: Vec<Mirror>,
    pub(crate) concurrency: usize,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) platform: Option<PlatformSpec>,
    /// Fetch index bodies to list platforms (costs a GET per multi-arch tag).
    pub(crate) list_platforms: bool,
    /// Read this machine's credential files (podman's auth.json, docker's config.json and its
    /// helpers) for registries that ask for auth.
    pub(crate) docker_config: bool,
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
pub(crate) struct PlatformSpec {
    pub(crate) os: String,
    pub(crate) architecture: String,
    pub(crate) variant: Option<String>,
}

impl PlatformSpec {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
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

/// Counters for the benchmarks and `-v` logs.
#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub(crate) ping_requests: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) manifest_requests: AtomicU64,
    pub(crate) retries: AtomicU64,
}

impl Stats {
    /// Logs the request counters so far (info: `-v`), the one place they are read.
    pub(crate) fn log(&self, what: &str) {
        tracing::info!(
            pings = self.ping_requests.load(Ordering::Relaxed),
            tokens = self.token_requests.load(Ordering::Relaxed),
            manifests = self.manifest_requests.load(Ordering::Relaxed),
            retries = self.retries.load(Ordering::Relaxed),
            "{what}"
        );
    }
}

#[derive(Clone, Debug)]
struct Host {
    base: String,
    verify: bool,
    challenge: auth::Challenge,
    /// Resolutions in flight against this host: `--concurrency` over HTTP/1.1 (a connection
    /// each), [`H2_STREAMS`] (or `--concurrency`, if more) when the probe was answered over
    /// HTTP/2 (the server chose `h2` by ALPN), whose one connection then carries every request.
    gate: Arc<Semaphore>,
}

/// Requests one HTTP/2 connection carries at once: RFC 9113 section 6.5.2 recommends that a
/// server allow at least 100 concurrent streams (distribution's Go server allows 250, nginx 128);
/// a server that allows fewer says so in its SETTINGS, and the client waits for a free stream.
pub(crate) const H2_STREAMS: usize = 100;

type Shared<T> = Arc<OnceCell<T>>;
/// One token slot per (host, repository, credential), filled by the first request that needs it:
/// a token fetched with one pull secret's credential never serves a request made for another.
type TokenSlots = HashMap<(String, String, Option<Credential>), Arc<Mutex<Option<String>>>>;
/// Results per (location, tag or digest, pull-secret credential), errors included.
type ResultCache =
    HashMap<(Location, String, Option<Credential>), Shared<Result<Resolved, RegistryError>>>;

pub(crate) struct Resolver {
    opts: Options,
    /// Built on first use: building it loads the system's CA roots (145 on Debian, ~20 ms), which
    /// a run that only talks to `--insecure-registry` hosts never needs.
    verified: std::sync::OnceLock<Result<reqwest::Client, String>>,
    unverified: reqwest::Client,
    /// Clients that follow no redirect, for the refresh-token POST (a 307/308 would resend its
    /// body, refresh token included, to wherever the redirect points). Built on first use.
    no_redirect: std::sync::OnceLock<(reqwest::Client, reqwest::Client)>,
    roots: Vec<reqwest::Certificate>,
    hosts: Mutex<HashMap<String, Shared<Result<Host, RegistryError>>>>,
    tokens: Mutex<TokenSlots>,
    cache: Mutex<ResultCache>,
    local_files: Arc<std::sync::OnceLock<auth::LocalCredentials>>,
    local_creds: Mutex<HashMap<(String, String), Option<SourcedCredential>>>,
    pub(crate) stats: Stats,
}

/// What one resolution is about, for its error messages.
struct Ctx<'a> {
    loc: &'a Location,
    reference: &'a str,
    /// The pull-secret credential this resolution is for (`None`: this machine's, or none).
    pull: Option<&'a SourcedCredential>,
}

impl Ctx<'_> {
    fn bad_digest(&self, e: DigestError) -> RegistryError {
        RegistryError::BadDigest {
            host: self.loc.host.clone(),
            repository: self.loc.repository.clone(),
            reference: self.reference.to_string(),
            error: Box::new(e),
        }
    }
    fn bad_manifest(&self, detail: String) -> RegistryError {
        RegistryError::BadManifest {
            host: self.loc.host.clone(),
            repository: self.loc.repository.clone(),
            reference: self.reference.to_string(),
            detail,
        }
    }
    fn mismatch(&self, expected: &Digest, computed: &Digest) -> RegistryError {
        RegistryError::DigestMismatch {
            host: self.loc.host.clone(),
            repository: self.loc.repository.clone(),
            reference: self.reference.to_string(),
            expected: expected.to_string(),
            computed: computed.to_string(),
        }
    }
    /// The `Docker-Content-Digest` header, validated: absent is `None`, malformed is an error.
    fn header_digest(&self, resp: &reqwest::Response) -> Result<Option<Digest>, RegistryError> {
        match resp.headers().get("docker-content-digest") {
            None => Ok(None),
            Some(v) => {
                let text = String::from_utf8_lossy(v.as_bytes());
                Digest::parse_from(text.trim(), "Docker-Content-Digest header")
                    .map(Some)
                    .map_err(|e| self.bad_digest(e))
            }
        }
    }
}

/// Where the credential of a request came from, for a refusal to name.
fn source_of(cred: Option<&SourcedCredential>) -> CredentialSource {
    cred.map_or(CredentialSource::Anonymous, |c| c.source.clone())
}

/// A manifest body that was checked against every digest that names it.
struct Body {
    digest: Digest,
    media_type: String,
    bytes: Vec<u8>,
}

fn build_client(
    opts: &Options,
    roots: &[reqwest::Certificate],
    verify: bool,
    redirects: bool,
) -> crate::error::Result<reqwest::Client> {
    http::build_client(&http::ClientSettings {
        timeout: opts.timeout,
        roots,
        verify,
        redirects,
    })
}

fn read_roots(files: &[PathBuf]) -> crate::error::Result<Vec<reqwest::Certificate>> {
    let mut roots = vec![];
    for path in files {
        let hint = "pass a PEM file holding the CA certificate(s) of the registry";
        let pem = std::fs::read(path).map_err(|e| {
            crate::error::Error::new(format!("cannot read --registry-ca {}: {e}", path.display()))
                .hint(hint)
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            crate::error::Error::new(format!(
                "--registry-ca {}: not a PEM certificate bundle: {e}",
                path.display()
            ))
            .hint(hint)
        })?;
        if certs.is_empty() {
            return Err(crate::error::Error::new(format!(
                "--registry-ca {}: no certificate found in the file",
                path.display()
            ))
            .hint(hint));
        }
        roots.extend(certs);
    }
    Ok(roots)
}

impl Resolver {
    pub(crate) fn new(opts: Options) -> crate::error::Result<Self> {
        // ring, not aws-lc-rs: no CPU-jitter entropy collection on first use (scripts/bench,
        // benches/results.md). The process default, so kube's client uses it too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let roots = read_roots(&opts.ca_files)?;
        let unverified = build_client(&opts, &roots, false, true)?;
        Ok(Resolver {
            opts,
            verified: std::sync::OnceLock::new(),
            unverified,
            no_redirect: std::sync::OnceLock::new(),
            roots,
            hosts: Mutex::default(),
            tokens: Mutex::default(),
            cache: Mutex::default(),
            local_files: Arc::default(),
            local_creds: Mutex::default(),
            stats: Stats::default(),
        })
    }

    /// A client for another download (the catalog `import` reads) built as every verified
    /// registry client is: the roots of `--registry-ca`, proxies, certificate verification and
    /// the redirect rule; `timeout` bounds each attempt.
    pub(crate) fn download_client(
        &self,
        timeout: std::time::Duration,
    ) -> crate::error::Result<reqwest::Client> {
        http::build_client(&http::ClientSettings {
            timeout,
            roots: &self.roots,
            verify: true,
            redirects: true,
        })
    }

    /// The retry rules of this resolver, for [`http::send_with_retries`].
    pub(crate) fn retry_policy(&self) -> http::RetryPolicy {
        http::RetryPolicy {
            retries: self.opts.retries,
            timeout: self.opts.timeout,
        }
    }

    /// This machine's credentials: podman's auth.json, then docker's config (see
    /// [`auth::LocalCredentials`]). File reads and credential helpers run on a blocking thread, a
    /// helper at most the registry timeout; the answer is kept per (host, repository) for the run.
    /// (A workload's pull secrets are passed to [`Resolver::resolve_as`] instead.)
    async fn credential(&self, loc: &Location) -> Option<SourcedCredential> {
        if !self.opts.docker_config {
            return None;
        }
        let mut map = self.local_creds.lock().await;
        if self.local_files.get().is_none() {
            let files = self.local_files.clone();
            let _ = tokio::task::spawn_blocking(move || {
                files.get_or_init(auth::LocalCredentials::load);
            })
            .await;
        }
        // One lookup (one helper run) per host, unless the auth file scopes credentials by
        // namespace on that host; the lock makes concurrent requests share it.
        let scoped = self
            .local_files
            .get()
            .is_some_and(|f| f.scoped_by_repository(&loc.host));
        let key = (
            loc.host.clone(),
            if scoped {
                loc.repository.clone()
            } else {
                String::new()
            },
        );
        if let Some(c) = map.get(&key) {
            return c.clone();
        }
        let files = self.local_files.clone();
        let (host, repo, timeout) = (loc.host.clone(), loc.repository.clone(), self.opts.timeout);
        let found = tokio::task::spawn_blocking(move || {
            files
                .get_or_init(auth::LocalCredentials::load)
                .lookup(&host, &repo, timeout)
        })
        .await
        .unwrap_or(None);
        map.insert(key, found.clone());
        found
    }

    fn is_insecure(&self, host: &str) -> bool {
        self.opts.insecure.iter().any(|h| h == host)
    }

    /// Resolve one image with this machine's credentials (or none); every later call for the same
    /// location and tag shares the first result.
    pub(crate) async fn resolve(&self, image: &ImageRef) -> Result<Resolved, RegistryError> {
        self.resolve_with(image, None).await
    }

    /// Resolve one image for a workload, as the kubelet pulls it: with each credential its pull
    /// secrets hold for the image's registry, in order, until one is accepted; then with this
    /// machine's credentials (docker's config), else anonymously. `candidates` come from the
    /// workload's own namespace only (see `core::pullsecrets`). An answer that is not a refusal
    /// (found, not found, a bad digest) ends the search: another credential would not change it.
    pub(crate) async fn resolve_as(
        &self,
        image: &ImageRef,
        candidates: &[SourcedCredential],
    ) -> Result<Resolved, RegistryError> {
        let mut first_refusal = None;
        for c in candidates {
            match self.resolve_with(image, Some(c)).await {
                // The cached answer may have been asked for another secret holding the same
                // credential: name this workload's.
                Err(RegistryError::Unauthorized {
                    host, repository, ..
                }) => {
                    first_refusal.get_or_insert(RegistryError::Unauthorized {
                        host,
                        repository,
                        credential: c.source.clone(),
                    });
                }
                Err(e @ RegistryError::Denied { .. }) => {
                    first_refusal.get_or_insert(e);
                }
                other => return other,
            }
        }
        match (self.resolve_with(image, None).await, first_refusal) {
            // Every credential refused, and so did the fallback: the pull secret's refusal is the
            // one to report (it names "the configured credentials").
            (
                Err(RegistryError::Unauthorized { .. } | RegistryError::Denied { .. }),
                Some(refusal),
            ) => Err(refusal),
            (other, _) => other,
        }
    }

    /// How many resolutions are started at once, across hosts: enough to fill an HTTP/2
    /// connection. Each host bounds its own share (see [`Host::gate`]): `--concurrency` over
    /// HTTP/1.1, [`H2_STREAMS`] over HTTP/2.
    pub(crate) fn concurrency(&self) -> usize {
        self.opts.concurrency.max(H2_STREAMS)
    }

    /// The host a credential for `image` is looked up by (after `--registry-mirror`).
    pub(crate) fn credential_host(&self, image: &ImageRef) -> String {
        image.locate(&self.opts.mirrors).host
    }

    async fn resolve_with(
        &self,
        image: &ImageRef,
        pull: Option<&SourcedCredential>,
    ) -> Result<Resolved, RegistryError> {
        let loc = image.locate(&self.opts.mirrors);
        let reference = image
            .tag()
            .map(str::to_string)
            .or_else(|| image.digest().map(str::to_string))
            .unwrap_or_else(|| "latest".into());
        let cell = {
            let mut cache = self.cache.lock().await;
            cache
                .entry((
                    loc.clone(),
                    reference.clone(),
                    pull.map(|p| p.credential.clone()),
                ))
                .or_default()
                .clone()
        };
        cell.get_or_init(|| self.resolve_uncached(loc, reference, pull))
            .await
            .clone()
    }

    /// Resolve many images with bounded concurrency, ticking `progress` as each finishes. The
    /// results come back in input order.
    pub(crate) async fn resolve_many(
        &self,
        images: &[ImageRef],
        progress: &indicatif::ProgressBar,
    ) -> Vec<Result<Resolved, RegistryError>> {
        let mut out: Vec<Option<Result<Resolved, RegistryError>>> = vec![None; images.len()];
        let mut stream = futures::stream::iter(images.iter().enumerate())
            .map(|(i, img)| async move { (i, self.resolve(img).await) })
            .buffer_unordered(self.concurrency());
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
                        message: String::new(),
                    })
                })
            })
            .collect()
    }

    async fn resolve_uncached(
        &self,
        loc: Location,
        reference: String,
        pull: Option<&SourcedCredential>,
    ) -> Result<Resolved, RegistryError> {
        let ctx = Ctx {
            loc: &loc,
            reference: &reference,
            pull,
        };
        // A digest reference is checked before anything is asked: only sha256 can be verified.
        let requested = if reference.contains(':') {
            Some(
                Digest::parse_from(&reference, "requested digest")
                    .map_err(|e| ctx.bad_digest(e))?,
            )
        } else {
            None
        };
        let host = self.host(&loc.host).await?;
        // Held until this resolution's requests are done (a body read included): over HTTP/1.1
        // each one in flight holds a connection. The gate is never closed.
        let _permit = host.gate.acquire().await.ok();
        let url = format!(
            "{}/v2/{}/manifests/{}",
            host.base, loc.repository, reference
        );
        let want_body = self.opts.platform.is_some() || self.opts.list_platforms;
        let (header_digest, media_type) = if get_first(&loc.host, want_body) {
            (None, String::new())
        } else {
            let head = self
                .manifest_request(&host, &ctx, Method::HEAD, &url)
                .await?;
            (ctx.header_digest(&head)?, content_type(&head))
        };
        let head_only = header_digest.is_some() && !(is_index_media_type(&media_type) && want_body);
        let (digest, media_type, body) = match &header_digest {
            Some(d) if head_only => {
                // A digest reference must be answered with itself.
                if let Some(r) = requested.as_ref().filter(|r| *r != d) {
                    return Err(ctx.mismatch(r, d));
                }
                (d.clone(), media_type, None)
            }
            _ => {
                let b = self
                    .checked_body(
                        &host,
                        &ctx,
                        &url,
                        header_digest.as_ref(),
                        requested.as_ref(),
                    )
                    .await?;
                let mt = if b.media_type.is_empty() {
                    media_type
                } else {
                    b.media_type
                };
                (b.digest, mt, Some(b.bytes))
            }
        };
        let mut resolved = Resolved {
            source: format!("{loc}:{reference}"),
            mirrored: loc.mirrored,
            digest: digest.to_string(),
            media_type,
            platforms: vec![],
            platform_digest: None,
        };
        match body.filter(|_| resolved.is_index()) {
            Some(body) => self.read_index(&ctx, &body, &mut resolved)?,
            // A single-platform manifest is its own platform digest.
            None if self.opts.platform.is_some() => {
                resolved.platform_digest = Some(resolved.digest.clone())
            }
            None => {}
        }
        Ok(resolved)
    }

    /// GETs the manifest body and checks it against the GET's digest header, the HEAD's, and
    /// the requested digest: every one that is present must be the body's sha256.
    async fn checked_body(
        &self,
        host: &Host,
        ctx: &Ctx<'_>,
        url: &str,
        head_digest: Option<&Digest>,
        requested: Option<&Digest>,
    ) -> Result<Body, RegistryError> {
        let (get_digest, get_type, bytes) = self.get_manifest(host, ctx, url).await?;
        let computed = Digest::of_bytes(&bytes);
        for expected in [get_digest.as_ref(), head_digest, requested]
            .into_iter()
            .flatten()
        {
            if *expected != computed {
                return Err(ctx.mismatch(expected, &computed));
            }
        }
        // With no digest anywhere to check against, the body's hash IS the answer: it must at
        // least be a whole manifest (a cut-short body with a matching Content-Length is not).
        if let Some(problem) = manifest_shape_problem(&bytes) {
            return Err(ctx.bad_manifest(problem));
        }
        let media_type = if get_type.is_empty() {
            body_media_type(&bytes).map_err(|e| ctx.bad_manifest(e))?
        } else {
            get_type
        };
        Ok(Body {
            digest: computed,
            media_type,
            bytes,
        })
    }

    /// Lists an index's platforms and picks `--platform`'s manifest. Every entry's digest is
    /// checked: one malformed entry makes the whole index untrusted.
    fn read_index(
        &self,
        ctx: &Ctx<'_>,
        body: &[u8],
        resolved: &mut Resolved,
    ) -> Result<(), RegistryError> {
        let index: OciImageIndex = serde_json::from_slice(body).map_err(|e| {
            ctx.bad_manifest(format!(
                "index does not parse: {}",
                text::clean(&e.to_string(), 200)
            ))
        })?;
        let mut entries = vec![];
        for (i, m) in index.manifests.iter().enumerate() {
            let name = m.platform.as_ref().map(|p| {
                let mut name = format!("{}/{}", p.os, p.architecture);
                if let Some(v) = p.variant.as_deref().filter(|v| !v.is_empty()) {
                    name = format!("{name}/{v}");
                }
                text::clean(&name, 100)
            });
            let source = match &name {
                Some(n) => format!("index entry {i} ({n})"),
                None => format!("index entry {i}"),
            };
            let digest = Digest::parse_from(&m.digest, source).map_err(|e| ctx.bad_digest(e))?;
            entries.push((m, name, digest));
        }
        resolved.platforms = entries
            .iter()
            .filter_map(|(_, name, d)| {
                Some(PlatformDigest {
                    platform: name.clone()?,
                    digest: d.to_string(),
                })
            })
            .collect();
        let Some(want) = &self.opts.platform else {
            return Ok(());
        };
        let hit = entries.iter().find(|(m, _, _)| {
            m.platform.as_ref().is_some_and(|p| {
                p.os.to_string() == want.os
                    && p.architecture.to_string() == want.architecture
                    && (want.variant.is_none() || p.variant.as_deref() == want.variant.as_deref())
            })
        });
        match hit {
            Some((_, _, d)) => {
                resolved.platform_digest = Some(d.to_string());
                Ok(())
            }
            None => Err(RegistryError::NoPlatform {
                reference: format!("{}:{}", ctx.loc, ctx.reference),
                platform: want.to_string(),
                available: resolved
                    .platforms
                    .iter()
                    .map(|p| p.platform.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
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
            let mut policy = self.retry_policy();
            if insecure && scheme == "https" {
                policy.retries = 0;
            }
            let res = http::send_with_retries(name, policy, Some(&self.stats.retries), || {
                client.get(format!("{base}/v2/"))
            })
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
                    let in_flight = if resp.version() == reqwest::Version::HTTP_2 {
                        self.opts.concurrency.max(H2_STREAMS)
                    } else {
                        self.opts.concurrency.max(1)
                    };
                    tracing::debug!(host = name, %base, ?challenge, version = ?resp.version(), in_flight, "registry probed");
                    return Ok(Host {
                        base,
                        verify,
                        challenge,
                        gate: Arc::new(Semaphore::new(in_flight)),
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
                build_client(&self.opts, &self.roots, true, true).map_err(|e| e.message)
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
        ctx: &Ctx<'_>,
        method: Method,
        url: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let loc = ctx.loc;
        // A registry that asked for no auth gets none: no file read, no helper run.
        let cred = match (&host.challenge, ctx.pull) {
            (auth::Challenge::None, _) => None,
            (_, Some(c)) => Some(c.clone()),
            (_, None) => self.credential(loc).await,
        };
        // The token this request was refused with, once: a refresh replaces exactly that token.
        let mut refused: Option<String> = None;
        let mut refreshed = false;
        loop {
            let mut bearer = None;
            let authz = match &host.challenge {
                auth::Challenge::None => None,
                auth::Challenge::Basic => cred.as_ref().and_then(|c| basic_header(&c.credential)),
                auth::Challenge::Bearer { realm, service } => {
                    let t = self
                        .token(
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
            let (resp, attempts) = http::send_with_retries(
                &loc.host,
                self.retry_policy(),
                Some(&self.stats.retries),
                || {
                    let mut rb = client
                        .request(method.clone(), url)
                        .header(header::ACCEPT, ACCEPT);
                    if let Some(a) = &authz {
                        rb = rb.header(header::AUTHORIZATION, a);
                    }
                    rb
                },
            )
            .await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            let bearer_host = matches!(host.challenge, auth::Challenge::Bearer { .. });
            return Err(match status {
                // A token that expired mid-run: fetch a fresh one, once.
                StatusCode::UNAUTHORIZED if bearer_host && !refreshed => {
                    refreshed = true;
                    refused = bearer;
                    continue;
                }
                StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
                    host: loc.host.clone(),
                    repository: loc.repository.clone(),
                    credential: source_of(cred.as_ref()),
                },
                StatusCode::FORBIDDEN => RegistryError::Denied {
                    host: loc.host.clone(),
                    repository: loc.repository.clone(),
                },
                StatusCode::NOT_FOUND => RegistryError::NotFound {
                    host: loc.host.clone(),
                    repository: loc.repository.clone(),
                    reference: ctx.reference.to_string(),
                },
                s => RegistryError::Status {
                    host: loc.host.clone(),
                    repository: loc.repository.clone(),
                    status: s.as_u16(),
                    attempts,
                    message: http::error_message(resp).await,
                },
            });
        }
    }

    /// GETs a manifest and reads at most [`http::MAX_MANIFEST_BYTES`] of its body. A transfer
    /// that breaks off mid-body (connection reset, fewer bytes than announced) is retried like a
    /// failed request, then reported as truncated; a body over the limit is refused at once.
    async fn get_manifest(
        &self,
        host: &Host,
        ctx: &Ctx<'_>,
        url: &str,
    ) -> Result<(Option<Digest>, String, Vec<u8>), RegistryError> {
        let loc = ctx.loc;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let get = self.manifest_request(host, ctx, Method::GET, url).await?;
            let digest = ctx.header_digest(&get)?;
            let media_type = content_type(&get);
            let announced = get.content_length();
            let e = match http::read_limited(get, http::MAX_MANIFEST_BYTES).await {
                Ok(body) => return Ok((digest, media_type, body)),
                Err(http::ReadError::TooLarge { limit }) => {
                    return Err(RegistryError::TooLarge {
                        host: loc.host.clone(),
                        repository: loc.repository.clone(),
                        reference: ctx.reference.to_string(),
                        what: "manifest".into(),
                        limit: limit as u64,
                    })
                }
                Err(http::ReadError::Transport(e)) => e,
            };
            if e.is_timeout() {
                return Err(http::transport_error(
                    &loc.host,
                    self.opts.timeout,
                    e,
                    attempt,
                ));
            }
            if attempt > self.opts.retries {
                let size = announced
                    .map(|n| format!("{n} bytes announced: "))
                    .unwrap_or_default();
                return Err(RegistryError::Truncated {
                    host: loc.host.clone(),
                    repository: loc.repository.clone(),
                    reference: ctx.reference.to_string(),
                    detail: format!("{size}{}", text::redact_urls_in(&error_chain(&e))),
                    attempts: attempt,
                });
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            let backoff = http::backoff(attempt);
            tracing::debug!(host = %loc.host, attempt, ?backoff, "manifest body cut short; retrying");
            tokio::time::sleep(backoff).await;
        }
    }

    /// The client for a token realm, chosen by the REALM's host (never the registry's
    /// `--insecure-registry`): verified TLS unless the realm host itself is listed. Plain HTTP
    /// carries a credential only to a listed host.
    fn realm_client(
        &self,
        registry: &str,
        realm: &str,
        cred: Option<&Credential>,
    ) -> Result<(bool, String), RegistryError> {
        let url = reqwest::Url::parse(realm).map_err(|_| RegistryError::Token {
            host: registry.into(),
            detail: format!("the token realm {:?} is not a URL", text::redact_url(realm)),
        })?;
        let realm_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => String::new(),
        };
        let listed = self.is_insecure(&realm_host);
        match url.scheme() {
            "https" => Ok((!listed, realm_host)),
            "http" if listed || cred.is_none() => Ok((false, realm_host)),
            "http" => Err(RegistryError::Refused {
                host: registry.into(),
                detail: format!(
                    "its token service {} is plain HTTP; refusing to send the credentials for {registry} there in clear text",
                    text::redact_url(realm)
                ),
                hint: format!("if that token service is trusted on this network, list it with --insecure-registry {realm_host}"),
            }),
            other => Err(RegistryError::Token {
                host: registry.into(),
                detail: format!("the token realm uses the scheme {:?}", text::clean(other, 20)),
            }),
        }
    }

    /// One token per repository per run. `refused` is a token the registry answered 401 to: it is
    /// replaced once, and requests that were refused with the same token concurrently share the
    /// replacement instead of each fetching their own.
    async fn token(
        &self,
        loc: &Location,
        realm: &str,
        service: Option<&str>,
        sourced: Option<&SourcedCredential>,
        refused: Option<&str>,
    ) -> Result<String, RegistryError> {
        let cred = sourced.map(|c| &c.credential);
        let slot = {
            let mut tokens = self.tokens.lock().await;
            tokens
                .entry((loc.host.clone(), loc.repository.clone(), cred.cloned()))
                .or_default()
                .clone()
        };
        let mut guard = slot.lock().await;
        if let Some(t) = reusable_token(guard.as_deref(), refused) {
            return Ok(t);
        }
        // Userinfo in a realm the registry named is dropped: reqwest would send it as Basic
        // auth (beside the user's own), and a registry's choice of credential is no credential.
        let realm = without_userinfo(realm);
        let realm = realm.as_str();
        let (verify, realm_host) = self.realm_client(&loc.host, realm, cred)?;
        self.stats.token_requests.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .token_request(&realm_host, verify, &loc.repository, realm, service, cred)
            .await?;
        let status = resp.status();
        let token_err = |detail: String| RegistryError::Token {
            host: loc.host.clone(),
            detail,
        };
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                host: loc.host.clone(),
                repository: loc.repository.clone(),
                credential: source_of(sourced),
            });
        }
        if status.is_redirection() {
            return Err(token_err(format!(
                "the token service {} redirected the refresh-token request; a refresh token is never sent on",
                text::redact_url(realm)
            )));
        }
        if !status.is_success() {
            let msg = http::error_message(resp).await;
            let msg = if msg.is_empty() {
                String::new()
            } else {
                format!(": {msg}")
            };
            return Err(token_err(format!("HTTP {status}{msg}")));
        }
        let body = http::read_limited(resp, http::MAX_TOKEN_BYTES)
            .await
            .map_err(|e| match e {
                http::ReadError::TooLarge { limit } => token_err(format!(
                    "the token response is larger than {} KiB; refusing it",
                    limit >> 10
                )),
                http::ReadError::Transport(e) => {
                    http::transport_error(&realm_host, self.opts.timeout, e, 1)
                }
            })?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            token_err(format!(
                "response is not a token (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let token = body
            .token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_err("response holds no token".into()))?;
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(token_err(
                "the token holds characters a token cannot have".into(),
            ));
        }
        *guard = Some(token.clone());
        Ok(token)
    }

    async fn token_request(
        &self,
        realm_host: &str,
        verify: bool,
        repository: &str,
        realm: &str,
        service: Option<&str>,
        cred: Option<&Credential>,
    ) -> Result<reqwest::Response, RegistryError> {
        let scope = format!("repository:{repository}:pull");
        let client = if verify {
            self.verified(realm_host)?
        } else {
            &self.unverified
        };
        let refresh = match cred {
            Some(Credential::IdentityToken(_)) => Some(self.no_redirect_client(verify)?),
            _ => None,
        };
        let (resp, _) = http::send_with_retries(
            realm_host,
            self.retry_policy(),
            Some(&self.stats.retries),
            || {
                let mut rb = match (cred, refresh) {
                    (Some(Credential::IdentityToken(t)), Some(c)) => {
                        let mut form = vec![
                            ("grant_type", "refresh_token"),
                            ("refresh_token", t.as_str()),
                            ("scope", scope.as_str()),
                            ("client_id", "kubectl-astro-sha"),
                        ];
                        if let Some(s) = service {
                            form.push(("service", s));
                        }
                        c.post(realm).form(&form)
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
            },
        )
        .await?;
        Ok(resp)
    }

    fn no_redirect_client(&self, verify: bool) -> Result<&reqwest::Client, RegistryError> {
        if self.no_redirect.get().is_none() {
            let build = |v| build_client(&self.opts, &self.roots, v, false);
            let pair = build(true)
                .and_then(|a| Ok((a, build(false)?)))
                .map_err(|e| RegistryError::Token {
                    host: String::new(),
                    detail: e.message,
                })?;
            let _ = self.no_redirect.set(pair);
        }
        let pair = self.no_redirect.get().ok_or_else(|| RegistryError::Token {
            host: String::new(),
            detail: "no HTTP client".into(),
        })?;
        Ok(if verify { &pair.0 } else { &pair.1 })
    }
}

/// `realm` without `user:password@`; unchanged if it is no URL (the caller reports that).
fn without_userinfo(realm: &str) -> String {
    match reqwest::Url::parse(realm) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => realm.to_string(),
    }
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

/// The body's `mediaType`, or the shape's when it names none. A media type is a token
/// (RFC 6838 characters, at most 255): anything else is refused rather than printed.
fn body_media_type(body: &[u8]) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the manifest is not JSON".to_string())?;
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$&^_.+-/".contains(c);
        if mt.is_empty() || mt.len() > 255 || !mt.chars().all(token) {
            return Err(format!(
                "the manifest's mediaType {:?} is not a media type",
                text::clean(mt, 80)
            ));
        }
        return Ok(mt.to_string());
    }
    Ok(if v.get("manifests").is_some() {
        OCI_IMAGE_INDEX_MEDIA_TYPE.into()
    } else {
        OCI_IMAGE_MEDIA_TYPE.into()
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_http_dates() {
        // RFC 9110's IMF-fixdate (and its obsolete RFC 850 zone name GMT) and an RFC 3339 time.
        let t = http::httpdate("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.as_second(), 784111777);
        assert!(http::httpdate("in a minute").is_none());
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
            Ok(OCI_IMAGE_INDEX_MEDIA_TYPE)
        );
        assert_eq!(
            body_media_type(
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            )
            .as_deref(),
            Ok(IMAGE_MANIFEST_MEDIA_TYPE)
        );
        assert!(body_media_type(br#"{"mediaType":"application/x\u001b[2J"}"#).is_err());
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
    fn errors_after_retries_say_how_many_attempts() {
        let e = RegistryError::Status {
            host: "h".into(),
            repository: "r".into(),
            status: 503,
            attempts: 4,
            message: String::new(),
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
            credential: CredentialSource::Anonymous,
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
