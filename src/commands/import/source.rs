//! Where `import` reads the catalog from: a file, stdin or a URL (downloaded by the registry's
//! client rules), each read bounded by `catalog::MAX_SOURCE_BYTES`.

use std::path::PathBuf;

use super::ImportArgs;
use crate::core::catalog;
use crate::error::{Error, Result};
use crate::registry::http::{read_limited, send_with_retries, ReadError, RetryPolicy};
use crate::registry::text::{redact_url, redact_urls_in};
use crate::registry::{RegistryError, Resolver};

/// Where the catalog came from, for errors and the `source` annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Url(String),
    File(PathBuf),
    Stdin,
}

impl Source {
    pub(crate) fn parse(s: &str) -> Source {
        if s == "-" {
            Source::Stdin
        } else if s.starts_with("http://") || s.starts_with("https://") {
            Source::Url(s.to_string())
        } else {
            Source::File(PathBuf::from(s))
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Url(u) => redact_url(u),
            Source::File(p) => format!("file {}", p.display()),
            Source::Stdin => "stdin".into(),
        }
    }

    /// The annotation value: the URL or path as given, or `stdin`.
    pub(crate) fn annotation(&self) -> String {
        match self {
            Source::Url(u) => redact_url(u),
            Source::File(p) => p.display().to_string(),
            Source::Stdin => "stdin".into(),
        }
    }
}

/// The catalog source is over [`catalog::MAX_SOURCE_BYTES`]: the read stopped there.
fn too_large(what: &str, limit: usize) -> Error {
    Error::new(format!(
        "{what}: the catalog is larger than {} MiB; the read stopped there and nothing was imported",
        limit >> 20
    ))
}

/// Reads at most `limit` bytes (plus one, to tell "exactly the limit" from "more").
fn read_bounded(r: impl std::io::Read, limit: usize) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut text = String::new();
    r.take(limit as u64 + 1).read_to_string(&mut text)?;
    Ok((text.len() <= limit).then_some(text))
}

pub(super) async fn read_source(
    src: &Source,
    args: &ImportArgs,
    resolver: &Resolver,
) -> Result<String> {
    let limit = catalog::MAX_SOURCE_BYTES;
    match src {
        Source::Stdin => tokio::task::spawn_blocking(move || read_bounded(std::io::stdin(), limit))
            .await
            .map_err(|e| Error::new(format!("reading the catalog from stdin: {e}")))?
            .map_err(|e| Error::new(format!("reading the catalog from stdin: {e}")))?
            .ok_or_else(|| too_large("stdin", limit)),
        Source::File(p) => {
            let fail = |e: std::io::Error| {
                Error::new(format!("cannot read catalog file {}: {e}", p.display()))
                    .hint("check the --source path; `-` reads the catalog from stdin")
            };
            let path = p.clone();
            tokio::task::spawn_blocking(move || {
                std::fs::File::open(&path).and_then(|f| read_bounded(f, limit))
            })
            .await
            .map_err(|e| Error::new(format!("cannot read catalog file {}: {e}", p.display())))?
            .map_err(fail)?
            .ok_or_else(|| too_large(&format!("catalog file {}", p.display()), limit))
        }
        Source::Url(u) => fetch_url(u, args, resolver).await,
    }
}

/// Downloads the catalog with the registry's client rules (`Resolver::download_client`): the
/// roots of --registry-ca (read once, strictly, by the resolver), proxies as docker chooses them,
/// certificate verification, redirects never from HTTPS to plain HTTP; --source-timeout bounds
/// each attempt.
async fn fetch_url(url: &str, args: &ImportArgs, resolver: &Resolver) -> Result<String> {
    let shown = redact_url(url);
    let client = resolver.download_client(args.source_timeout)?;
    let offline = "on an air-gapped platform, download the catalog elsewhere and pass --source FILE (or - for stdin)";
    // The one retry loop (registry::http): 429/5xx, transport errors and cut bodies are retried
    // with backoff, Retry-After honoured; TLS failures and refused redirects are not.
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| shown.clone());
    let policy = RetryPolicy {
        retries: args.source_retries,
        timeout: args.source_timeout,
    };
    let tries = |attempts: u32| {
        if attempts > 1 {
            format!(" (after {attempts} attempts)")
        } else {
            String::new()
        }
    };
    let (resp, attempts) = match send_with_retries(&host, policy, None, || client.get(url)).await {
        Ok(sent) => sent,
        Err(RegistryError::Timeout { attempts, .. }) => {
            return Err(Error::new(format!(
                "GET {shown}: no answer within {:#}{}",
                jiff::SignedDuration::try_from(args.source_timeout).unwrap_or_default(),
                tries(attempts)
            ))
            .hint(format!("raise --source-timeout; {offline}")))
        }
        Err(e) => {
            return Err(Error::new(format!("GET {shown}: {e}")).hint(format!(
                "check the network path (HTTPS_PROXY is honoured); {offline}"
            )))
        }
    };
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::new(format!(
            "GET {shown}: the server answered HTTP {status}{}",
            tries(attempts)
        ))
        .hint(format!("check the --source URL; {offline}")));
    }
    // Bounded: the read stops at the limit, whatever the server announces or streams.
    let body = read_limited(resp, catalog::MAX_SOURCE_BYTES)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge { limit } => {
                too_large(&shown, limit).hint(format!("check the --source URL; {offline}"))
            }
            ReadError::Transport(e) => Error::new(format!(
                "GET {shown}: reading the body: {}",
                redact_urls_in(&crate::error::error_chain(&e))
            ))
            .hint(format!("retry; {offline}")),
        })?;
    String::from_utf8(body).map_err(|e| {
        Error::new(format!("GET {shown}: the catalog is not UTF-8 text ({e})"))
            .hint(format!("check the --source URL; {offline}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn sources() {
        assert_eq!(Source::parse("-"), Source::Stdin);
        assert_eq!(
            Source::parse("https://x/y"),
            Source::Url("https://x/y".into())
        );
        assert_eq!(Source::parse("./c.json"), Source::File("./c.json".into()));
        assert_eq!(
            Source::parse("https://u:secret@mirror.corp/cat.json").annotation(),
            "https://mirror.corp/cat.json"
        );
        // A signed download URL's query is a credential: never in an annotation or an error.
        assert_eq!(
            Source::parse("https://mirror.corp/cat.json?X-Amz-Signature=s3cret&X-Amz-Credential=k")
                .annotation(),
            "https://mirror.corp/cat.json"
        );
    }
}
