//! `-v=6` as kubectl means it: one line per API request on stderr, with the method, the URL, the
//! status and the time it took (kubectl's `round_trippers.go`: `GET https://… 200 OK in 5
//! milliseconds`). A tower layer around kube's client stack, so every request is seen once,
//! retries and token refreshes included; headers are never looked at, so no credential can show.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The log target of the request lines; `init_logging` turns it on from `-v=6`.
pub(crate) use crate::core::names::REQUEST_LOG_TARGET as TARGET;

/// Logs each request the client sends; `server` is the API server's URL, which kube adds to the
/// request's path further down the stack.
#[derive(Clone)]
pub(crate) struct RequestLog {
    server: Arc<str>,
}

impl RequestLog {
    pub(crate) fn new(server: &str) -> Self {
        RequestLog {
            server: server.trim_end_matches('/').into(),
        }
    }
}

impl<S> tower::Layer<S> for RequestLog {
    type Service = RequestLogService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLogService {
            inner,
            server: self.server.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct RequestLogService<S> {
    inner: S,
    server: Arc<str>,
}

impl<S, B, R> tower::Service<http::Request<B>> for RequestLogService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            return Box::pin(self.inner.call(req));
        }
        let method = req.method().clone();
        let url = url(&self.server, req.uri());
        let start = Instant::now();
        let sent = self.inner.call(req);
        Box::pin(async move {
            let res = sent.await;
            let outcome = match &res {
                Ok(r) => Outcome::Status(r.status()),
                Err(e) => Outcome::Failed(e.to_string()),
            };
            tracing::info!(target: TARGET, "{}", line(&method, &url, &outcome, start.elapsed()));
            res
        })
    }
}

/// What came back.
enum Outcome {
    Status(http::StatusCode),
    /// No response: the transport error.
    Failed(String),
}

/// The request's full URL: kube's requests carry only the path and query until its base-URI
/// layer (below this one) adds the server.
fn url(server: &str, uri: &http::Uri) -> String {
    if uri.scheme().is_some() {
        return uri.to_string();
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{server}{path}")
}

/// One log line, as kubectl prints it at `-v=6` (`core::request_line`).
fn line(method: &http::Method, url: &str, outcome: &Outcome, took: Duration) -> String {
    let outcome = match outcome {
        Outcome::Status(s) => Ok(s as &dyn std::fmt::Display),
        Outcome::Failed(e) => Err(Some(e.as_str())),
    };
    crate::core::request_line(method, url, outcome, took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_like_kubectls() {
        let uri: http::Uri = "/api/v1/namespaces?limit=500".parse().unwrap();
        let full = url("https://127.0.0.1:6443", &uri);
        assert_eq!(full, "https://127.0.0.1:6443/api/v1/namespaces?limit=500");
        assert_eq!(
            line(
                &http::Method::GET,
                &full,
                &Outcome::Status(http::StatusCode::OK),
                Duration::from_micros(5_400)
            ),
            "GET https://127.0.0.1:6443/api/v1/namespaces?limit=500 200 OK in 5 milliseconds"
        );
        assert_eq!(
            line(
                &http::Method::PATCH,
                "https://h/x",
                &Outcome::Failed("connection refused".into()),
                Duration::from_millis(12)
            ),
            "PATCH https://h/x failed in 12 milliseconds: connection refused"
        );
        let abs: http::Uri = "https://other:443/version".parse().unwrap();
        assert_eq!(
            url("https://127.0.0.1:6443", &abs),
            "https://other:443/version"
        );
        assert_eq!(
            RequestLog::new("https://h:1/").server.as_ref(),
            "https://h:1"
        );
    }
}
