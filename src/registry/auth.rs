//! Registry credentials and the auth challenge.
//!
//! Credentials come, in this order, from the workload's `imagePullSecrets` (added by commands that
//! read the cluster), then docker's `config.json` (`$DOCKER_CONFIG`, `~/.docker/config.json`,
//! with `auths`, `credsStore` and `credHelpers`, through the `docker_credential` crate), then
//! anonymous. A credential is never formatted into a message: `Debug` is redacted on purpose.

use std::collections::HashMap;
use std::fmt;

use base64::Engine;

#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`).
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Credentials known for registry hosts from Kubernetes pull secrets.
#[derive(Default, Clone, Debug)]
pub struct PullSecretCredentials {
    by_host: HashMap<String, Credential>,
}

impl PullSecretCredentials {
    /// Reads a `.dockerconfigjson` (or legacy `.dockercfg`) payload. Entries that do not decode are
    /// skipped: a broken pull secret must not stop resolution of images that do not need it.
    pub fn add_docker_config_json(&mut self, raw: &[u8]) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
            return;
        };
        let auths = v.get("auths").unwrap_or(&v);
        let Some(map) = auths.as_object() else { return };
        for (server, entry) in map {
            if let Some(cred) = credential_from_entry(entry) {
                self.by_host.entry(normalize_server(server)).or_insert(cred);
            }
        }
    }

    pub fn get(&self, host: &str) -> Option<&Credential> {
        self.by_host.get(host)
    }
}

fn credential_from_entry(entry: &serde_json::Value) -> Option<Credential> {
    if let Some(t) = entry.get("identitytoken").and_then(|t| t.as_str()) {
        if !t.is_empty() {
            return Some(Credential::IdentityToken(t.to_string()));
        }
    }
    let user = entry.get("username").and_then(|u| u.as_str());
    let pass = entry.get("password").and_then(|u| u.as_str());
    if let (Some(u), Some(p)) = (user, pass) {
        return Some(Credential::Basic {
            username: u.to_string(),
            password: p.to_string(),
        });
    }
    let auth = entry.get("auth").and_then(|a| a.as_str())?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some(Credential::Basic {
        username: u.to_string(),
        password: p.to_string(),
    })
}

/// `https://index.docker.io/v1/` and `quay.io` both name a host; keys are compared by host.
pub fn normalize_server(server: &str) -> String {
    let s = server
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "docker.io" | "registry-1.docker.io" => "registry-1.docker.io".into(),
        h => h.to_string(),
    }
}

/// Looks the host up in docker's config (and its credential helpers). Any failure means
/// "no credential": anonymous access is then tried, and a 401 says how to add credentials.
pub fn docker_config_credential(host: &str) -> Option<Credential> {
    let candidates: Vec<String> = if host == "registry-1.docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ]
    } else {
        vec![
            host.to_string(),
            format!("https://{host}"),
            format!("http://{host}"),
        ]
    };
    for server in candidates {
        match docker_credential::get_credential(&server) {
            Ok(docker_credential::DockerCredential::UsernamePassword(u, p)) => {
                return Some(Credential::Basic {
                    username: u,
                    password: p,
                })
            }
            Ok(docker_credential::DockerCredential::IdentityToken(t)) => {
                return Some(Credential::IdentityToken(t))
            }
            Err(e) => tracing::debug!(server, error = %e, "no docker config credential"),
        }
    }
    None
}

/// A parsed `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    pub fn parse(header: &str) -> Challenge {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Challenge::Basic;
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Challenge::None;
        }
        let params = parse_params(rest);
        match params.get("realm") {
            Some(realm) => Challenge::Bearer {
                realm: realm.clone(),
                service: params.get("service").cloned(),
            },
            None => Challenge::None,
        }
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            val = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="reg,1",scope="repository:a/b:pull""#,
        );
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg,1".into())
            }
        );
        assert_eq!(Challenge::parse(r#"Basic realm="x""#), Challenge::Basic);
        assert_eq!(Challenge::parse("Bearer service=x"), Challenge::None);
    }

    #[test]
    fn pull_secret_payloads_decode_all_forms() {
        let mut c = PullSecretCredentials::default();
        c.add_docker_config_json(
            br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"quay.io":{"username":"a","password":"b"},"r.io":{"identitytoken":"t"}}}"#,
        );
        assert_eq!(
            c.get("registry-1.docker.io"),
            Some(&Credential::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(
            c.get("quay.io"),
            Some(&Credential::Basic {
                username: "a".into(),
                password: "b".into()
            })
        );
        assert_eq!(c.get("r.io"), Some(&Credential::IdentityToken("t".into())));
        c.add_docker_config_json(b"not json");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credential::Basic {
            username: "me".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credential::IdentityToken("tok".into())).contains("tok"));
    }
}
