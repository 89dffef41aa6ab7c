//! Proxies for registry (and catalog) connections, chosen as docker and containerd choose them:
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` with Go's rules (`core::proxy`), localhost and loopback
//! always direct. reqwest would otherwise apply its own, curl-like reading of the same variables
//! (`ALL_PROXY` too, no loopback exception), so the choice is made explicit here.

use crate::core::proxy::{Proxy, ProxyEnv};
use crate::error::{Error, Result};

/// `builder` with the process's proxy variables applied as docker applies them. A variable that
/// is not a usable proxy URL is an error now, not a failed request later.
pub(crate) fn with_proxies(builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder> {
    with_env(builder, ProxyEnv::read(|k| std::env::var(k).ok()))
}

fn with_env(builder: reqwest::ClientBuilder, env: ProxyEnv) -> Result<reqwest::ClientBuilder> {
    for (var, value) in [("HTTPS_PROXY", &env.https), ("HTTP_PROXY", &env.http)] {
        if let Some(v) = value {
            Proxy::parse(v).map_err(|why| {
                Error::new(format!("{var}: {why}"))
                    .hint("fix or unset the proxy variable (a proxy URL is http://HOST:PORT)")
            })?;
        }
    }
    // Never reqwest's own reading of the environment: only the decision below.
    let builder = builder.no_proxy();
    if env.https.is_none() && env.http.is_none() {
        return Ok(builder);
    }
    let proxy = reqwest::Proxy::custom(move |url| {
        let port = url.port_or_known_default().unwrap_or(443);
        let chosen = env
            .proxy_for(url.scheme(), url.host_str().unwrap_or_default(), port)
            .ok()
            .flatten()?;
        tracing::debug!(proxy = %chosen.shown(), host = url.host_str().unwrap_or_default(), "through a proxy");
        reqwest::Url::parse(chosen.url()).ok()
    });
    Ok(builder.proxy(proxy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_proxy_value_is_an_error_that_hides_credentials() {
        let env = ProxyEnv {
            https: Some("socks5://u:secret@p:1080".into()),
            ..ProxyEnv::default()
        };
        let e = with_env(reqwest::Client::builder(), env).unwrap_err();
        assert!(e.message.starts_with("HTTPS_PROXY: "), "{}", e.message);
        assert!(!e.message.contains("secret"), "{}", e.message);
        let ok = ProxyEnv {
            http: Some("proxy.corp:3128".into()),
            ..ProxyEnv::default()
        };
        assert!(with_env(reqwest::Client::builder(), ok).is_ok());
    }
}
