//! Registry credentials as data: one credential, and the credentials of Kubernetes pull secrets by
//! registry host, decoded from a `.dockerconfigjson` payload. Pure (no files, no helpers, no
//! network): `registry::auth` adds this machine's files and credential helpers, and the pull-secret
//! order per workload (`core::pullsecrets`) works on these types. A credential is never formatted
//! into a message: `Debug` is redacted on purpose.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use base64::Engine;

#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Credential {
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

/// Where a credential came from, to name in a refusal (never the credential itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CredentialSource {
    /// No credential: the request went anonymously.
    Anonymous,
    /// A docker-config Secret the workload pulls with.
    PullSecret { namespace: String, name: String },
    /// podman/skopeo's auth.json.
    ContainersAuthFile(PathBuf),
    /// docker's config.json (`auths`).
    DockerConfig(PathBuf),
    /// A docker credential helper (`credHelpers`/`credsStore`): the program's name.
    Helper(String),
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Anonymous => f.write_str("no credential"),
            CredentialSource::PullSecret { namespace, name } => {
                write!(f, "the pull secret {namespace}/{name}")
            }
            CredentialSource::ContainersAuthFile(p) => {
                write!(f, "the containers auth file {}", p.display())
            }
            CredentialSource::DockerConfig(p) => write!(f, "the docker config {}", p.display()),
            CredentialSource::Helper(h) => write!(f, "the credential helper {h}"),
        }
    }
}

/// A credential and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SourcedCredential {
    pub(crate) credential: Credential,
    pub(crate) source: CredentialSource,
}

/// Credentials known for registry hosts from Kubernetes pull secrets.
#[derive(Default, Clone, Debug)]
pub(crate) struct PullSecretCredentials {
    by_host: HashMap<String, Credential>,
}

impl PullSecretCredentials {
    /// Reads a `.dockerconfigjson` (or legacy `.dockercfg`) payload. Entries that do not decode are
    /// skipped: a broken pull secret must not stop resolution of images that do not need it.
    pub(crate) fn add_docker_config_json(&mut self, raw: &[u8]) {
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

    pub(crate) fn get(&self, host: &str) -> Option<&Credential> {
        self.by_host.get(host)
    }
}

pub(crate) fn credential_from_entry(entry: &serde_json::Value) -> Option<Credential> {
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
pub(crate) fn normalize_server(server: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_named_without_the_credential() {
        let s = CredentialSource::PullSecret {
            namespace: "ns".into(),
            name: "regcred".into(),
        };
        assert_eq!(s.to_string(), "the pull secret ns/regcred");
        let s = CredentialSource::DockerConfig(PathBuf::from("/home/u/.docker/config.json"));
        assert_eq!(
            s.to_string(),
            "the docker config /home/u/.docker/config.json"
        );
        let s = CredentialSource::Helper("docker-credential-ecr-login".into());
        assert_eq!(
            s.to_string(),
            "the credential helper docker-credential-ecr-login"
        );
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
}
