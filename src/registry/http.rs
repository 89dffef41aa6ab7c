//! The HTTP pieces every registry request shares, public so that other downloads (the catalog's
//! `import` fetch) use the same rules: one client construction (roots, proxies, timeouts), one
//! retry loop, bounded body reads, error texts without credentials or control characters, and a
//! redirect policy that never downgrades to plain HTTP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{header, StatusCode};

use super::text::{clean, redact_url, redact_urls_in};
use super::RegistryError;
use crate::error::error_chain;

/// `Retry-After` is honoured up to this long.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Manifests and indexes: containerd's limit (`images.MaxManifestSize`/`remotes` 4 MiB).
pub(crate) const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Token responses: a JWT with an `x5c` chain is a few KiB; 1 MiB is far past any real one.
pub(crate) const MAX_TOKEN_BYTES: usize = 1 << 20;
/// Error bodies: only the first message is shown.
pub(crate) const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// How a request is retried: 429 and 500/502/503/504 and transport failures, with exponential
/// backoff from 200 ms or the server's `Retry-After` (capped at [`MAX_RETRY_AFTER`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// The client's whole-request timeout, to name it in a timeout error.
    pub(crate) timeout: Duration,
}

/// Sends the request `build` makes, retrying as [`RetryPolicy`] says. `host` names the server in
/// errors; `retried` (if given) counts retries. Returns the response and the number of attempts.
/// TLS failures and refused redirects are permanent and never retried.
pub(crate) async fn send_with_retries(
    host: &str,
    policy: RetryPolicy,
    retried: Option<&AtomicU64>,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<(reqwest::Response, u32), RegistryError> {
    let mut attempt = 0u32;
    loop {
        let result = send_logged(build()).await;
        let retry_after = match &result {
            Ok(resp) if is_retryable(resp.status()) => Some(retry_after(resp)),
            Ok(_) => None,
            Err(e) if e.is_redirect() || is_tls_failure(&error_chain(e)) => None,
            Err(e) if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() => {
                Some(None)
            }
            Err(_) => None,
        };
        match (retry_after, attempt < policy.retries) {
            (Some(wait), true) => {
                attempt += 1;
                if let Some(c) = retried {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                let backoff = wait.unwrap_or_else(|| backoff(attempt));
                tracing::debug!(host, attempt, ?backoff, "retrying registry request");
                tokio::time::sleep(backoff.min(MAX_RETRY_AFTER)).await;
            }
            _ => {
                return result
                    .map(|r| (r, attempt + 1))
                    .map_err(|e| transport_error(host, policy.timeout, e, attempt + 1))
            }
        }
    }
}

/// Sends `request`; at `-v=6` logs it as the API server's requests are (`kube::request_log`):
/// method, URL without userinfo or query (where a credential could be), status, milliseconds.
async fn send_logged(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    use crate::core::names::REQUEST_LOG_TARGET as TARGET;
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return request.send().await;
    }
    let (client, built) = request.build_split();
    let req = built?;
    let (method, url) = (req.method().clone(), redact_url(req.url().as_str()));
    let start = std::time::Instant::now();
    let result = client.execute(req).await;
    // A failure's text is left out: reqwest's error may quote the URL with its query.
    let status = result.as_ref().map(reqwest::Response::status);
    let outcome = match &status {
        Ok(s) => Ok(s as &dyn std::fmt::Display),
        Err(_) => Err(None),
    };
    let line = crate::core::request_line(&method, &url, outcome, start.elapsed());
    tracing::info!(target: TARGET, "{line}");
    result
}

/// Backoff before retry number `attempt` (1-based) when the server named no `Retry-After`.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 * 2u64.pow(attempt.saturating_sub(1).min(8)))
}

/// A transport failure as a [`RegistryError`], its text without URLs' userinfo and query.
pub(crate) fn transport_error(
    host: &str,
    timeout: Duration,
    e: reqwest::Error,
    attempts: u32,
) -> RegistryError {
    if e.is_timeout() {
        return RegistryError::Timeout {
            host: host.into(),
            secs: timeout.as_secs().max(1),
            attempts,
        };
    }
    let detail = redact_urls_in(&error_chain(&e));
    if e.is_redirect() {
        return RegistryError::Refused {
            host: host.into(),
            detail,
            hint: "a registry redirect may not go from HTTPS to plain HTTP; if the registry really serves plain HTTP, list it with --insecure-registry".into(),
        };
    }
    if e.is_connect() && is_dns_failure(&detail) {
        return RegistryError::UnknownHost {
            host: host.into(),
            detail,
            attempts,
        };
    }
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

/// How a client is built; every registry client and the catalog download are built here.
pub(crate) struct ClientSettings<'a> {
    /// Connecting, and the whole request (headers and body): a server that drips bytes cannot
    /// hold a run.
    pub(crate) timeout: Duration,
    /// Trusted besides the system's roots (`--registry-ca`, read strictly by the resolver).
    pub(crate) roots: &'a [reqwest::Certificate],
    /// Whether certificates are verified (not for `--insecure-registry` hosts).
    pub(crate) verify: bool,
    /// Whether redirects are followed ([`redirect_policy`]); not for the refresh-token POST.
    pub(crate) redirects: bool,
}

/// The one HTTP client construction: User-Agent, timeouts, redirect rule, proxies as docker and
/// containerd choose them (HTTPS_PROXY/HTTP_PROXY/NO_PROXY, loopback direct), trusted roots.
pub(crate) fn build_client(s: &ClientSettings<'_>) -> crate::error::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(crate::core::names::USER_AGENT)
        .connect_timeout(s.timeout)
        .timeout(s.timeout)
        .redirect(if s.redirects {
            redirect_policy()
        } else {
            reqwest::redirect::Policy::none()
        });
    b = super::proxy::with_proxies(b)?;
    if s.verify {
        for c in s.roots {
            b = b.add_root_certificate(c.clone());
        }
    } else {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build()
        .map_err(|e| crate::error::Error::new(format!("cannot build the HTTP client: {e}")))
}

/// Follows at most 5 redirects, never from HTTPS to plain HTTP. (reqwest itself drops the
/// `Authorization` header when a redirect leaves the scheme, host or port.)
pub(crate) fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > 5 {
            return attempt.error("too many redirects (more than 5)");
        }
        let from_https = attempt
            .previous()
            .last()
            .is_some_and(|p| p.scheme() == "https");
        if from_https && attempt.url().scheme() != "https" {
            let to = redact_url(attempt.url().as_str());
            return attempt.error(format!(
                "refusing a redirect from HTTPS to plain HTTP ({to})"
            ));
        }
        attempt.follow()
    })
}

/// Why a bounded read stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// More than the limit was announced or arrived; the read stopped there.
    TooLarge {
        limit: usize,
    },
    Transport(reqwest::Error),
}

/// Reads a response body chunk by chunk, stopping as soon as it passes `limit` bytes (or at once
/// when `Content-Length` already says so): an endless or huge body costs at most `limit` bytes.
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The registry's own words for a failed request, safe to print: the first `code: message` of a
/// distribution `{"errors":[…]}` body, else the start of a text body; read at most
/// [`MAX_ERROR_BODY_BYTES`], control characters removed, cut to 200 characters.
pub(crate) async fn error_message(resp: reqwest::Response) -> String {
    let Ok(body) = read_limited(resp, MAX_ERROR_BODY_BYTES).await else {
        return String::new();
    };
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(e) = v.get("errors").and_then(|e| e.get(0)) {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or_default();
            let msg = e
                .get("message")
                .and_then(|c| c.as_str())
                .unwrap_or_default();
            let text = match (code.is_empty(), msg.is_empty()) {
                (false, false) => format!("{code}: {msg}"),
                (false, true) => code.to_string(),
                _ => msg.to_string(),
            };
            return clean(&text, 200);
        }
        if let Some(m) = v.get("message").or(v.get("error")).and_then(|m| m.as_str()) {
            return clean(m, 200);
        }
        return String::new();
    }
    let text = String::from_utf8_lossy(&body);
    if text.trim_start().starts_with('<') {
        return String::new(); // an HTML error page says nothing useful in one line
    }
    clean(&text, 200)
}

/// Statuses worth another try of an idempotent request: rate limiting, and server or gateway
/// failures that are usually transient (a storage backend hiccup answers 500).
pub(crate) fn is_retryable(s: StatusCode) -> bool {
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

/// An HTTP date (RFC 9110's IMF-fixdate is RFC 2822's shape).
pub(crate) fn httpdate(v: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(v)
        .ok()
}

/// A host name that does not resolve. hyper-util's resolver reports it as a connect error whose
/// text starts with "dns error" (its `ConnectError` is not public, so the text is all there is),
/// above getaddrinfo's own words ("failed to lookup address information: Name or service not known").
pub(crate) fn is_dns_failure(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    lower.contains("dns error") || lower.contains("failed to lookup address")
}

/// Handshake and certificate failures: permanent for this run, so never retried.
pub(crate) fn is_tls_failure(detail: &str) -> bool {
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
    fn dns_failures_are_told_apart_from_refused_connections() {
        assert!(is_dns_failure("error sending request for url (https://nope.invalid/v2/): client error (Connect): dns error: failed to lookup address information: Name or service not known"));
        assert!(!is_dns_failure("error sending request for url (https://127.0.0.1:1/v2/): client error (Connect): tcp connect error: Connection refused (os error 111)"));
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
}
