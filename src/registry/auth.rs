//! Registry credentials and the auth challenge.
//!
//! Credentials come, in this order, from the workload's `imagePullSecrets` (added by commands that
//! read the cluster), then the files of this machine ([`LocalCredentials`]: podman/skopeo's
//! `auth.json`, then docker's `config.json` with `auths`, `credHelpers` and `credsStore`), then
//! anonymous. A credential is never formatted into a message: `Debug` is redacted on purpose, and
//! a credential helper's output is never logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::credentials::credential_from_entry;
pub(crate) use crate::core::credentials::{
    normalize_server, Credential, CredentialSource, SourcedCredential,
};

/// Where credentials on this machine are looked up, in order (podman documents the same kind of
/// list in containers-auth.json(5)):
/// 1. the containers auth file: `$REGISTRY_AUTH_FILE` when set, else
///    `$XDG_RUNTIME_DIR/containers/auth.json` (podman/skopeo/buildah write it on `podman login`);
/// 2. docker's config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, with `auths`,
///    `credHelpers` and `credsStore`.
///
/// The first file with an entry for the registry wins; in the auth file a `host/namespace` key
/// beats a plain `host` key for repositories under that namespace, as podman does.
#[derive(Debug, Default)]
pub(crate) struct LocalCredentials {
    /// The containers auth file read, if any (to name it in a refusal).
    containers_file: Option<PathBuf>,
    containers: Vec<(String, Credential)>,
    docker: Option<DockerConfig>,
}

#[derive(Debug, Default)]
struct DockerConfig {
    path: PathBuf,
    auths: Vec<(String, Credential)>,
    cred_helpers: HashMap<String, String>,
    creds_store: Option<String>,
}

/// The containers auth file podman/skopeo read: `$REGISTRY_AUTH_FILE`, else
/// `$XDG_RUNTIME_DIR/containers/auth.json`.
pub(crate) fn containers_auth_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty())?;
    Some(PathBuf::from(runtime).join("containers/auth.json"))
}

fn docker_config_file() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
    Some(PathBuf::from(home).join(".docker/config.json"))
}

/// A credentials file as JSON, or `None` when it does not exist. A file that exists but cannot
/// be read or parsed is reported once (naming the file, never its content) and skipped.
fn read_json(path: &Path, what: &str) -> Option<serde_json::Value> {
    let raw = match std::fs::read(path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(
                "cannot read {what} {}: {e}; its credentials are not used",
                path.display()
            );
            return None;
        }
    };
    match serde_json::from_slice(&raw) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(
                "{what} {} is not valid JSON (line {}, column {}); its credentials are not used",
                path.display(),
                e.line(),
                e.column()
            );
            None
        }
    }
}

fn auth_entries(v: &serde_json::Value) -> Vec<(String, Credential)> {
    v.get("auths")
        .and_then(|a| a.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, e)| Some((normalize_key(k), credential_from_entry(e)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// `https://quay.io/v1/` and `quay.io` name the same host; `host/namespace` keys keep their path.
/// A key written with a scheme is docker's legacy form: only its host counts (containers/image
/// reads such keys the same way).
fn normalize_key(key: &str) -> String {
    let key = key.trim();
    let legacy = key.starts_with("https://") || key.starts_with("http://");
    let s = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let (host, path) = s.split_once('/').unwrap_or((s, ""));
    let host = normalize_server(host);
    if legacy || path.is_empty() {
        host
    } else {
        format!("{host}/{path}")
    }
}

impl LocalCredentials {
    /// Reads the files once (small JSON files); helpers run later, per host, in [`Self::lookup`].
    pub(crate) fn load() -> LocalCredentials {
        let containers_file = containers_auth_file();
        let containers = containers_file
            .as_deref()
            .and_then(|p| read_json(p, "containers auth file"))
            .map(|v| auth_entries(&v))
            .unwrap_or_default();
        let docker = docker_config_file().and_then(|path| {
            let v = read_json(&path, "docker config")?;
            Some(DockerConfig {
                path,
                auths: auth_entries(&v),
                cred_helpers: v
                    .get("credHelpers")
                    .and_then(|h| h.as_object())
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, h)| Some((normalize_key(k), h.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default(),
                creds_store: v
                    .get("credsStore")
                    .and_then(|s| s.as_str())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            })
        });
        LocalCredentials {
            containers_file,
            containers,
            docker,
        }
    }

    /// Whether the containers auth file has `host/namespace` keys for `host` (then the answer
    /// depends on the repository).
    pub(crate) fn scoped_by_repository(&self, host: &str) -> bool {
        self.containers
            .iter()
            .any(|(k, _)| k.strip_prefix(host).is_some_and(|r| r.starts_with('/')))
    }

    /// The credential for `repository` on `host`. Blocking (a credential helper is a process):
    /// call it off the async runtime. A helper gets `timeout`, then is killed.
    pub(crate) fn lookup(
        &self,
        host: &str,
        repository: &str,
        timeout: Duration,
    ) -> Option<SourcedCredential> {
        let from = |credential, source| SourcedCredential { credential, source };
        if let Some(c) = best_match(&self.containers, host, repository) {
            tracing::debug!(host, "credential from the containers auth file");
            let path = self.containers_file.clone().unwrap_or_default();
            return Some(from(c, CredentialSource::ContainersAuthFile(path)));
        }
        let docker = self.docker.as_ref()?;
        let helper = |name: &str| {
            let c = run_helper(name, &helper_server(host), timeout)?;
            Some(from(c, CredentialSource::Helper(helper_program(name))))
        };
        if let Some(name) = docker.cred_helpers.get(host) {
            return helper(name);
        }
        if let Some(c) = best_match(&docker.auths, host, repository) {
            tracing::debug!(host, "credential from the docker config");
            return Some(from(c, CredentialSource::DockerConfig(docker.path.clone())));
        }
        helper(docker.creds_store.as_ref()?)
    }
}

/// The entry for `host` whose namespace (if any) is the longest prefix of `repository`.
fn best_match(
    entries: &[(String, Credential)],
    host: &str,
    repository: &str,
) -> Option<Credential> {
    entries
        .iter()
        .filter(|(k, _)| match k.strip_prefix(host) {
            Some("") => true,
            Some(rest) => rest
                .strip_prefix('/')
                .is_some_and(|ns| repository == ns || repository.starts_with(&format!("{ns}/"))),
            None => false,
        })
        .max_by_key(|(k, _)| k.len())
        .map(|(_, c)| c.clone())
}

/// The server name a docker credential helper is asked for.
fn helper_server(host: &str) -> String {
    if host == "registry-1.docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        host.to_string()
    }
}

/// The program docker runs for a `credHelpers`/`credsStore` value.
fn helper_program(helper: &str) -> String {
    format!("docker-credential-{helper}")
}

/// Runs `docker-credential-<helper> get`, killing it after `timeout`. Its output is a secret:
/// it is parsed and never logged (a failure logs the helper's name and exit status only).
fn run_helper(helper: &str, server: &str, timeout: Duration) -> Option<Credential> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let name = helper_program(helper);
    let mut child = match Command::new(&name)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                "cannot run the credential helper {name}: {e}; trying without credentials"
            );
            return None;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stdout).take(64 * 1024).read_to_end(&mut buf);
        buf
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(
                    "the credential helper {name} did not answer within {}s; killed it, trying without credentials",
                    timeout.as_secs().max(1)
                );
                return None;
            }
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        tracing::debug!(helper = %name, %status, "credential helper has no credential");
        return None;
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HelperResponse {
        username: String,
        secret: String,
    }
    let Ok(r) = serde_json::from_slice::<HelperResponse>(&out) else {
        tracing::warn!("the credential helper {name} answered something that is not a credential");
        return None;
    };
    Some(if r.username == "<token>" {
        Credential::IdentityToken(r.secret)
    } else {
        Credential::Basic {
            username: r.username,
            password: r.secret,
        }
    })
}

/// A parsed `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    pub(crate) fn parse(header: &str) -> Challenge {
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
    fn auth_file_keys_match_by_host_and_the_longest_namespace() {
        let basic = |u: &str| Credential::Basic {
            username: u.into(),
            password: "p".into(),
        };
        let entries = vec![
            (normalize_key("https://quay.io/v1/"), basic("host")),
            (normalize_key("quay.io/astronomer"), basic("ns")),
            (
                normalize_key("quay.io/astronomer/astro-runtime"),
                basic("repo"),
            ),
            (normalize_key("https://index.docker.io/v1/"), basic("hub")),
        ];
        let user = |host: &str, repo: &str| match best_match(&entries, host, repo) {
            Some(Credential::Basic { username, .. }) => username,
            _ => "-".into(),
        };
        assert_eq!(user("quay.io", "astronomer/astro-runtime"), "repo");
        assert_eq!(user("quay.io", "astronomer/other"), "ns");
        assert_eq!(user("quay.io", "astronomer-x/y"), "host");
        assert_eq!(user("registry-1.docker.io", "library/redis"), "hub");
        assert_eq!(user("quay.io.evil", "astronomer/astro-runtime"), "-");
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
