//! Which proxy a connection goes through, decided as kubectl, docker and containerd decide it:
//! they are Go programs and use `net/http.ProxyFromEnvironment` (golang.org/x/net/http/httpproxy).
//!
//! - `HTTPS_PROXY`/`https_proxy` for `https://` targets, `HTTP_PROXY`/`http_proxy` for `http://`
//!   ones (the upper-case name first; `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set, as
//!   in a CGI process). `ALL_PROXY` is not read: Go does not read it.
//! - A proxy value without a scheme means `http://` (`proxy.corp:3128`).
//! - `localhost` and loopback addresses never go through a proxy.
//! - `NO_PROXY`/`no_proxy`: comma-separated; `*` matches everything; an IP address or CIDR range
//!   matches those addresses; `example.com` matches it and its subdomains, `.example.com` and
//!   `*.example.com` only its subdomains. Any entry may carry `:port` and then matches only that
//!   port. Empty entries are skipped.
//! - For the API server, kubectl uses the kubeconfig cluster's `proxy-url` when set, for every
//!   request (client-go's `http.ProxyURL`, no `NO_PROXY`, no loopback exception); otherwise the
//!   variables above.
//!
//! Pure: the variables come in as a `ProxyEnv`; callers read the process environment once.

use std::net::IpAddr;

/// The proxy variables as read from the environment (or given by a test).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProxyEnv {
    pub(crate) https: Option<String>,
    pub(crate) http: Option<String>,
    pub(crate) no_proxy: Option<String>,
    /// `REQUEST_METHOD` is set: a CGI process, where `HTTP_PROXY` may come from a request header.
    pub(crate) cgi: bool,
}

impl ProxyEnv {
    /// Reads the variables through `get` (`|k| std::env::var(k).ok()` for the process).
    pub(crate) fn read(get: impl Fn(&str) -> Option<String>) -> ProxyEnv {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()))
        };
        ProxyEnv {
            https: first(&["HTTPS_PROXY", "https_proxy"]),
            http: first(&["HTTP_PROXY", "http_proxy"]),
            no_proxy: first(&["NO_PROXY", "no_proxy"]),
            cgi: get("REQUEST_METHOD").is_some(),
        }
    }

    /// The proxy for a connection to `scheme://host:port`, or `None` for a direct one. `Err` when
    /// the variable that applies is not a usable proxy URL (named, without credentials).
    pub(crate) fn proxy_for(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
    ) -> Result<Option<Proxy>, String> {
        let (var, value) = match scheme {
            "https" => ("HTTPS_PROXY", self.https.as_deref()),
            "http" if !self.cgi => ("HTTP_PROXY", self.http.as_deref()),
            _ => return Ok(None),
        };
        let Some(value) = value else { return Ok(None) };
        if !use_proxy(host, port, self.no_proxy.as_deref().unwrap_or_default()) {
            return Ok(None);
        }
        Proxy::parse(value)
            .map(Some)
            .map_err(|why| format!("{var}: {why}"))
    }
}

/// A proxy URL, normalized (`http://` added when the value had no scheme).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proxy {
    url: String,
}

impl Proxy {
    /// Parses a proxy value as Go does: with a scheme (http, https), or host:port meaning http.
    /// SOCKS proxies are refused by name: neither HTTP client here is built with SOCKS support.
    pub(crate) fn parse(value: &str) -> Result<Proxy, String> {
        let value = value.trim();
        let url = match value.split_once("://") {
            Some((scheme, _)) => match scheme.to_ascii_lowercase().as_str() {
                "http" | "https" => value.to_string(),
                "socks5" | "socks5h" => {
                    return Err(format!(
                    "{} is a SOCKS proxy, which this tool does not support; use an http:// proxy",
                    redact(value)
                ))
                }
                other => {
                    return Err(format!(
                        "{} has scheme {other:?}; a proxy URL is http://HOST:PORT (or https://)",
                        redact(value)
                    ))
                }
            },
            None => format!("http://{value}"),
        };
        if host_of(&url).is_empty() {
            return Err(format!("{} names no host", redact(&url)));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{} is not a URL", redact(&url)));
        }
        Ok(Proxy { url })
    }

    /// The URL to connect through, credentials included: never print it, use `shown()`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The URL without credentials, for messages and logs.
    pub(crate) fn shown(&self) -> String {
        redact(&self.url)
    }
}

/// The host of `scheme://[userinfo@]host[:port][/...]` (brackets kept for IPv6).
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.starts_with('[') {
        return hostport.split_inclusive(']').next().unwrap_or(hostport);
    }
    hostport.split(':').next().unwrap_or(hostport)
}

/// `scheme://user:pass@host:port/...` → `scheme://***@host:port`: a proxy URL as it may be shown.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}***@{host}"),
        None => format!("{scheme}{authority}"),
    }
}

/// Go's `useProxy`: false for localhost, loopback addresses and anything `NO_PROXY` matches.
pub(crate) fn use_proxy(host: &str, port: u16, no_proxy: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    if host == "localhost" {
        return false;
    }
    let ip = host.parse::<IpAddr>().ok();
    if ip.is_some_and(|ip| ip.is_loopback()) {
        return false;
    }
    !no_proxy
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|e| entry_matches(&e, host, ip, port))
}

/// One `NO_PROXY` entry against a target.
fn entry_matches(entry: &str, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    if let Some((net, bits)) = entry.split_once('/') {
        return match (net.parse::<IpAddr>(), bits.parse::<u8>(), ip) {
            (Ok(net), Ok(bits), Some(ip)) => in_cidr(ip, net, bits),
            _ => false,
        };
    }
    let (ehost, eport) = split_port(entry);
    let port_ok = eport.is_none_or(|p| p == port);
    if let Ok(eip) = ehost.parse::<IpAddr>() {
        return ip == Some(eip) && port_ok;
    }
    if ehost.is_empty() {
        return false;
    }
    // `*.d` is `.d`; `d` also matches `d` itself; `.d` only its subdomains.
    let ehost = ehost.strip_prefix('*').unwrap_or(ehost);
    let (suffix, match_host) = match ehost.strip_prefix('.') {
        Some(_) => (ehost.to_string(), false),
        None => (format!(".{ehost}"), true),
    };
    (host.ends_with(&suffix) || (match_host && host == &suffix[1..])) && port_ok
}

/// `host:port`, `[v6]:port`, `v6` (no port), `host`.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once("]:") {
            return (h, p.parse().ok());
        }
        return (rest.trim_end_matches(']'), None);
    }
    if entry.matches(':').count() == 1 {
        if let Some((h, p)) = entry.split_once(':') {
            if let Ok(p) = p.parse() {
                return (h, Some(p));
            }
        }
    }
    (entry, None)
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(https: &str, http: &str, no: &str) -> ProxyEnv {
        let o = |s: &str| (!s.is_empty()).then(|| s.to_string());
        ProxyEnv {
            https: o(https),
            http: o(http),
            no_proxy: o(no),
            cgi: false,
        }
    }

    #[test]
    fn reads_upper_case_first_and_skips_empty_values() {
        let vars = [
            ("HTTPS_PROXY", ""),
            ("https_proxy", "http://lower:1"),
            ("HTTP_PROXY", "http://upper:2"),
            ("http_proxy", "http://lower:2"),
            ("no_proxy", "corp"),
        ];
        let e = ProxyEnv::read(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        });
        assert_eq!(e.https.as_deref(), Some("http://lower:1"));
        assert_eq!(e.http.as_deref(), Some("http://upper:2"));
        assert_eq!(e.no_proxy.as_deref(), Some("corp"));
        assert!(!e.cgi);
    }

    #[test]
    fn scheme_picks_the_variable() {
        let e = env("http://s:1", "http://p:2", "");
        assert_eq!(
            e.proxy_for("https", "reg.corp", 443)
                .unwrap()
                .unwrap()
                .url(),
            "http://s:1"
        );
        assert_eq!(
            e.proxy_for("http", "reg.corp", 80).unwrap().unwrap().url(),
            "http://p:2"
        );
        let only_http = env("", "http://p:2", "");
        assert_eq!(
            only_http.proxy_for("https", "reg.corp", 443).unwrap(),
            None,
            "no fallback"
        );
        let cgi = ProxyEnv { cgi: true, ..e };
        assert_eq!(cgi.proxy_for("http", "reg.corp", 80).unwrap(), None);
    }

    #[test]
    fn localhost_and_loopback_are_always_direct() {
        let e = env("http://s:1", "", "");
        for h in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
        ] {
            assert_eq!(e.proxy_for("https", h, 6443).unwrap(), None, "{h}");
        }
        assert!(e.proxy_for("https", "10.0.0.1", 6443).unwrap().is_some());
    }

    #[test]
    fn no_proxy_entries_as_go_reads_them() {
        let cases: &[(&str, &str, u16, bool)] = &[
            ("*", "anything.example", 443, false),
            ("example.com", "example.com", 443, false),
            ("example.com", "api.example.com", 443, false),
            ("example.com", "notexample.com", 443, true),
            (".example.com", "example.com", 443, true),
            (".example.com", "api.example.com", 443, false),
            ("*.example.com", "api.example.com", 443, false),
            ("example.com:6443", "example.com", 6443, false),
            ("example.com:6443", "example.com", 443, true),
            ("10.0.0.0/8", "10.1.2.3", 443, false),
            ("10.0.0.0/8", "11.1.2.3", 443, true),
            ("10.1.2.3", "10.1.2.3", 443, false),
            ("10.1.2.3:80", "10.1.2.3", 443, true),
            ("fd00::/8", "[fd00::1]", 443, false),
            ("[fd00::1]:443", "[fd00::1]", 443, false),
            (" API.Example.com , other", "api.example.com", 443, false),
            ("a,,b,", "c", 443, true),
            ("10.0.0.0/8", "host.corp", 443, true),
        ];
        for (no, host, port, proxied) in cases {
            assert_eq!(
                use_proxy(host, *port, no),
                *proxied,
                "NO_PROXY={no:?} {host}:{port}"
            );
        }
    }

    #[test]
    fn proxy_values_parse_as_go_does() {
        assert_eq!(
            Proxy::parse("proxy.corp:3128").unwrap().url(),
            "http://proxy.corp:3128"
        );
        assert_eq!(Proxy::parse("https://p:1").unwrap().url(), "https://p:1");
        let e = Proxy::parse("socks5://u:secret@p:1080").unwrap_err();
        assert!(e.contains("SOCKS") && !e.contains("secret"), "{e}");
        assert!(Proxy::parse("http://:3128")
            .unwrap_err()
            .contains("names no host"));
        assert!(Proxy::parse("http://u:p@")
            .unwrap_err()
            .contains("names no host"));
        assert!(Proxy::parse("http://[fd00::1]:3128").is_ok());
        let e = Proxy::parse("ftp://p:1").unwrap_err();
        assert!(e.contains("\"ftp\""), "{e}");
        let e = env("socks5://u:secret@p:1", "", "")
            .proxy_for("https", "r", 443)
            .unwrap_err();
        assert!(
            e.starts_with("HTTPS_PROXY: ") && !e.contains("secret"),
            "{e}"
        );
    }

    #[test]
    fn credentials_are_never_shown() {
        let p = Proxy::parse("http://user:s3cret@proxy.corp:3128").unwrap();
        assert_eq!(p.shown(), "http://***@proxy.corp:3128");
        assert_eq!(p.url(), "http://user:s3cret@proxy.corp:3128");
        assert_eq!(redact("http://proxy:1/path?q"), "http://proxy:1");
        assert_eq!(redact("p:1"), "p:1");
    }
}
