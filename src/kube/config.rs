//! Where the API server is and who we are to it, decided the way kubectl decides it (client-go's
//! `tools/clientcmd`): the kubeconfig files, kubectl's generic flags on top of the chosen context,
//! and the pod's service account when there is no kubeconfig.
//!
//! - Files: `--kubeconfig FILE` (must exist); else every file `$KUBECONFIG` lists that exists
//!   (missing ones are skipped, as kubectl skips them), merged, first value wins; else
//!   `~/.kube/config` if it exists.
//! - A usable kubeconfig wins. Without one, `--server` (with `--token`, `--certificate-authority`,
//!   ...) is the whole configuration; without that, a process that sees `KUBERNETES_SERVICE_HOST`,
//!   `KUBERNETES_SERVICE_PORT` and a service-account token file runs as that service account:
//!   token and CA from `/var/run/secrets/kubernetes.io/serviceaccount/`, the namespace from
//!   `$POD_NAMESPACE` or the `namespace` file there (rest.InClusterConfig).
//! - `--server`, `--certificate-authority` and `--insecure-skip-tls-verify` replace the chosen
//!   cluster's values (a CA flag clears the kubeconfig's CA data; the insecure flag clears its CA);
//!   `--token` replaces the user's credentials (token file, exec plugin, auth provider, basic
//!   auth; a client certificate stays, as in kubectl); `--as`, `--as-group`, `--as-uid`
//!   impersonate.
//! - Every request says `User-Agent: kubectl-astro-sha/<version>`; every write names the field
//!   manager `kubectl-astro-sha` (see `FIELD_MANAGER`).

use std::fmt;
use std::path::{Path, PathBuf};

use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedCluster, NamedContext,
};
use kube::Config;
use reqwest::header::{HeaderValue, USER_AGENT as USER_AGENT_HEADER};

use crate::error::{Error, Result};

pub(crate) use crate::core::names::USER_AGENT;

/// The field manager of every write, as it appears in `managedFields`.
pub(crate) const FIELD_MANAGER: &str = "kubectl-astro-sha";

/// Where the kubelet mounts a pod's service-account token, CA and namespace.
pub(crate) const SERVICEACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// For tests only: another directory in place of [`SERVICEACCOUNT_DIR`] (kube-rs reads fixed
/// paths, and a test cannot write to `/var/run/secrets` on a shared machine). Whoever can set
/// this can also set `KUBECONFIG`, so it opens nothing new.
pub(crate) const SERVICEACCOUNT_DIR_ENV: &str = "ASTRO_SHA_SERVICEACCOUNT_DIR";

/// A bearer token given on the command line. Never shown: `Debug` prints a placeholder.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Token(String);

impl Token {
    /// `--token`'s value parser: an empty token is refused (kubectl would send no credentials).
    pub(crate) fn parse(s: &str) -> std::result::Result<Token, String> {
        if s.trim().is_empty() {
            return Err("the token is empty".into());
        }
        Ok(Token(s.trim().to_string()))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// kubectl's generic connection flags, applied on top of the chosen context.
#[derive(Clone, Debug, Default)]
pub(crate) struct Overrides {
    /// `--server`
    pub(crate) server: Option<String>,
    /// `--token`
    pub(crate) token: Option<Token>,
    /// `--certificate-authority`
    pub(crate) certificate_authority: Option<PathBuf>,
    /// `--insecure-skip-tls-verify`
    pub(crate) insecure_skip_tls_verify: bool,
    /// `--as`
    pub(crate) impersonate: Option<String>,
    /// `--as-group` (repeatable)
    pub(crate) impersonate_groups: Vec<String>,
    /// `--as-uid`
    pub(crate) impersonate_uid: Option<String>,
}

/// Where the configuration came from (said at `-v`, and in errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Kubeconfig files (the ones read).
    Kubeconfig(Vec<PathBuf>),
    /// `--server` and the other flags alone.
    Flags,
    /// The pod's service account, from this directory.
    ServiceAccount(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Kubeconfig(files) => {
                let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                write!(f, "kubeconfig {}", names.join(", "))
            }
            Source::Flags => f.write_str("--server and the command-line flags"),
            Source::ServiceAccount(dir) => {
                write!(f, "the in-cluster service account ({})", dir.display())
            }
        }
    }
}

/// The selection flags (`--kubeconfig`, `--context`, `--cluster`, `--user`) and the overrides.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selection<'a> {
    pub(crate) kubeconfig: Option<&'a Path>,
    pub(crate) context: Option<&'a str>,
    pub(crate) cluster: Option<&'a str>,
    pub(crate) user: Option<&'a str>,
    pub(crate) overrides: Overrides,
}

/// The kube client configuration kubectl would use, with the plugin's User-Agent.
pub(crate) async fn load(sel: &Selection<'_>) -> Result<(Config, Source)> {
    let overrides = check_flags(&sel.overrides)?;
    let (files, loaded) = read_kubeconfigs(sel.kubeconfig)?;
    let (mut kubeconfig, source) = choose(loaded, files, sel, InCluster::from_env)?;
    let opts = KubeConfigOptions {
        context: sel.context.map(String::from),
        cluster: sel.cluster.map(String::from),
        user: sel.user.map(String::from),
    };
    override_cluster(&mut kubeconfig, &opts, &overrides);
    let kubeconfig_proxy = kubeconfig_proxy_url(&kubeconfig, &opts);
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &opts)
        .await
        .map_err(|e| {
            if let Some(err) = proxy_config_error(&e) {
                return err;
            }
            let hint = match &source {
                Source::Kubeconfig(_) => {
                    "check --context/--cluster/--user against `kubectl config get-contexts`"
                }
                Source::Flags => "check --server, --certificate-authority and --token",
                Source::ServiceAccount(_) => {
                    "check the pod's service-account mount (automountServiceAccountToken), or give a kubeconfig"
                }
            };
            Error::new(format!(
                "cannot configure the API client from {source}: {}",
                kubeconfig_error_text(&e)
            ))
            .hint(hint)
        })?;
    set_proxy(&mut config, kubeconfig_proxy)?;
    override_user(&mut config.auth_info, &overrides);
    config
        .headers
        .push((USER_AGENT_HEADER, HeaderValue::from_static(USER_AGENT)));
    tracing::debug!(server = %config.cluster_url, %source, "API server");
    Ok((config, source))
}

/// The `proxy-url` of the kubeconfig cluster the options select (`--cluster`, else the
/// context's), if it has one.
fn kubeconfig_proxy_url(kc: &Kubeconfig, opts: &KubeConfigOptions) -> Option<String> {
    let context = opts.context.as_ref().or(kc.current_context.as_ref());
    let cluster = opts.cluster.clone().or_else(|| {
        kc.contexts
            .iter()
            .find(|c| Some(&c.name) == context)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
    })?;
    kc.clusters
        .iter()
        .find(|c| c.name == cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.proxy_url.clone())
        .filter(|u| !u.trim().is_empty())
}

/// The proxy to the API server (`scheme://host:port`), as kubectl picks it: the kubeconfig's
/// `proxy-url` for every request, else `HTTPS_PROXY`/`HTTP_PROXY` unless `NO_PROXY` (or loopback)
/// says direct (`core::proxy`). This replaces kube's own choice, which matches `NO_PROXY` against
/// the proxy's address instead of the server's.
fn api_server_proxy(
    kubeconfig_proxy: Option<String>,
    scheme: &str,
    host: &str,
    port: Option<u16>,
) -> Result<Option<crate::core::proxy::Proxy>> {
    let hint = "fix the proxy setting (a proxy URL is http://HOST:PORT), or unset it";
    let chosen = match kubeconfig_proxy {
        Some(u) => Some(
            crate::core::proxy::Proxy::parse(&u)
                .map_err(|e| Error::new(format!("kubeconfig proxy-url: {e}")).hint(hint))?,
        ),
        None => {
            let env = crate::core::proxy::ProxyEnv::read(|k| std::env::var(k).ok());
            let port = port.unwrap_or(if scheme == "http" { 80 } else { 443 });
            env.proxy_for(scheme, host, port)
                .map_err(|e| Error::new(format!("proxy for the API server: {e}")).hint(hint))?
        }
    };
    if let Some(p) = &chosen {
        tracing::info!(proxy = %p.shown(), server = %format!("{scheme}://{host}"), "API server through a proxy");
    }
    Ok(chosen)
}

/// A kubeconfig error as a message that names a file once, unquoted: kube's own puts the
/// Debug form of the path in quotes (`failed to read file '"/nope/ca.crt"'`, issue 23).
pub(crate) fn kubeconfig_error_text(e: &kube::config::KubeconfigError) -> String {
    use kube::config::{KubeconfigError as K, LoadDataError as L};
    let (what, data) = match e {
        K::ReadConfig(io, path) => {
            return format!("cannot read kubeconfig {}: {io}", path.display())
        }
        K::LoadCertificateAuthority(d) => ("certificate authority", d),
        K::LoadClientCertificate(d) => ("client certificate", d),
        K::LoadClientKey(d) => ("client key", d),
        other => return other.to_string(),
    };
    match data {
        L::ReadFile(io, path) => format!("cannot read the {what} file {}: {io}", path.display()),
        other => format!("cannot load the {what}: {other}"),
    }
}

/// kube's own errors about proxy settings, said as such (kube reads NO_PROXY itself when a proxy
/// is set, more strictly than kubectl); `None` for every other kubeconfig error.
fn proxy_config_error(e: &kube::config::KubeconfigError) -> Option<Error> {
    use kube::config::KubeconfigError as K;
    match e {
        K::ParseNoProxy(e) => Some(Error::new(format!("NO_PROXY (or no_proxy) cannot be read: {e}"))
            .hint("write it as comma-separated hosts, domains, IP addresses or CIDR ranges, without empty entries (a trailing comma)")),
        K::ParseProxyUrl(e) => Some(Error::new(format!("the proxy URL (kubeconfig proxy-url or HTTPS_PROXY) is not a URL: {e}"))
            .hint("a proxy URL is http://HOST:PORT")),
        _ => None,
    }
}

/// The API server's proxy, chosen as kubectl chooses it (`api_server_proxy`).
fn set_proxy(config: &mut Config, kubeconfig_proxy: Option<String>) -> Result<()> {
    let u = &config.cluster_url;
    let proxy = api_server_proxy(
        kubeconfig_proxy,
        u.scheme_str().unwrap_or("https"),
        u.host().unwrap_or_default(),
        u.port_u16(),
    )?;
    config.proxy_url = match proxy {
        Some(p) => Some(p.url().parse().map_err(|e| {
            Error::new(format!("proxy {} is not a URL ({e})", p.shown()))
                .hint("a proxy URL is http://HOST:PORT")
        })?),
        None => None,
    };
    Ok(())
}

/// What kubectl refuses before sending anything; the overrides with `--server` normalised
/// (`host:port` means `https://host:port`, as in kubectl).
fn check_flags(o: &Overrides) -> Result<Overrides> {
    if o.insecure_skip_tls_verify && o.certificate_authority.is_some() {
        return Err(Error::new(
            "--certificate-authority and --insecure-skip-tls-verify contradict each other: a CA to verify with, and no verification",
        )
        .hint("drop one of them (kubectl refuses the pair too)"));
    }
    let mut o = o.clone();
    if let Some(server) = &o.server {
        o.server = Some(normalise_server(server)?);
    }
    if let Some(ca) = &o.certificate_authority {
        check_ca_file(ca, "--certificate-authority")?;
    }
    Ok(o)
}

fn normalise_server(server: &str) -> Result<String> {
    let url = if server.contains("://") {
        server.to_string()
    } else {
        format!("https://{server}")
    };
    match reqwest::Url::parse(&url) {
        Ok(u)
            if matches!(u.scheme(), "https" | "http")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(url)
        }
        _ => Err(
            Error::new(format!("--server {server:?} is not an API server address")).hint(
                "give it as https://host:port (or host:port), e.g. --server https://10.0.0.1:6443",
            ),
        ),
    }
}

/// A CA file is read and looks like PEM before it is used, so a wrong path is named as such
/// instead of surfacing as a TLS failure.
fn check_ca_file(path: &Path, what: &str) -> Result<()> {
    let text = std::fs::read(path).map_err(|e| {
        Error::new(format!("cannot read {what} {}: {e}", path.display()))
            .hint("give the PEM file of the CA that signed the API server's certificate")
    })?;
    if !String::from_utf8_lossy(&text).contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::new(format!(
            "{what} {} holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)",
            path.display()
        ))
        .hint("give the PEM file of the CA that signed the API server's certificate"));
    }
    Ok(())
}

/// The kubeconfig files kubectl would read, merged: `--kubeconfig`, else `$KUBECONFIG`'s files that
/// exist, else `~/.kube/config` if it exists. Returns the files read and the merged config (None
/// when no file was there).
fn read_kubeconfigs(explicit: Option<&Path>) -> Result<(Vec<PathBuf>, Option<Kubeconfig>)> {
    let read = |path: &Path| {
        Kubeconfig::read_from(path).map_err(|e| {
            // kube's ReadConfig names the path again, quoted twice ('"/nope"'): only its cause
            let why = match &e {
                kube::config::KubeconfigError::ReadConfig(io, _) => io.to_string(),
                other => other.to_string(),
            };
            Error::new(format!("cannot read kubeconfig {}: {why}", path.display()))
                .hint("fix or remove that file, or point --kubeconfig / KUBECONFIG at another one")
        })
    };
    if let Some(path) = explicit {
        return Ok((vec![path.to_path_buf()], Some(read(path)?)));
    }
    let candidates: Vec<PathBuf> = match std::env::var_os("KUBECONFIG") {
        Some(v) if !v.is_empty() => std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        _ => std::env::home_dir()
            .map(|h| vec![h.join(".kube").join("config")])
            .unwrap_or_default(),
    };
    let mut files = vec![];
    let mut merged: Option<Kubeconfig> = None;
    for path in candidates.iter().filter(|p| p.exists()) {
        let next = read(path)?;
        merged = Some(match merged {
            None => next,
            Some(m) => m.merge(next).map_err(|e| {
                Error::new(format!("cannot merge kubeconfig {}: {e}", path.display()))
                    .hint("fix that file, or name one file with --kubeconfig")
            })?,
        });
        files.push(path.clone());
    }
    if files.is_empty() && std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        tracing::warn!(
            "KUBECONFIG names no file that exists ({}); looking for an in-cluster service account",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok((files, merged))
}

/// An empty kubeconfig is no kubeconfig (kubectl then tries the in-cluster configuration).
fn is_empty(k: &Kubeconfig) -> bool {
    k.clusters.is_empty()
        && k.contexts.is_empty()
        && k.auth_infos.is_empty()
        && k.current_context.is_none()
}

/// The name of the context the flags-only and in-cluster configurations are built under.
const SYNTHETIC: &str = "kubectl-astro-sha";

/// kubectl's order: a usable kubeconfig; else `--server` and the flags; else the in-cluster
/// service account; else an error that says what was looked for.
fn choose(
    loaded: Option<Kubeconfig>,
    files: Vec<PathBuf>,
    sel: &Selection<'_>,
    in_cluster: impl FnOnce() -> std::result::Result<InCluster, String>,
) -> Result<(Kubeconfig, Source)> {
    if let Some(k) = loaded.filter(|k| !is_empty(k)) {
        return Ok((k, Source::Kubeconfig(files)));
    }
    if sel.overrides.server.is_some() {
        return Ok((
            synthetic(Cluster::default(), AuthInfo::default(), None),
            Source::Flags,
        ));
    }
    let searched = match (sel.kubeconfig, files.is_empty()) {
        (Some(p), _) => format!("{} is empty", p.display()),
        (None, false) => "the kubeconfig files are empty".to_string(),
        (None, true) => match std::env::var_os("KUBECONFIG") {
            Some(v) if !v.is_empty() => {
                format!("no file $KUBECONFIG names exists ({})", v.to_string_lossy())
            }
            _ => "no ~/.kube/config".to_string(),
        },
    };
    if let Some(flag) = [
        sel.context.map(|c| format!("--context {c}")),
        sel.cluster.map(|c| format!("--cluster {c}")),
        sel.user.map(|u| format!("--user {u}")),
    ]
    .into_iter()
    .flatten()
    .next()
    {
        return Err(
            Error::new(format!("{flag}: no kubeconfig to find it in ({searched})"))
                .hint("pass --kubeconfig FILE or set KUBECONFIG"),
        );
    }
    match in_cluster() {
        Ok(ic) => {
            let dir = ic.dir.clone();
            Ok((ic.kubeconfig()?, Source::ServiceAccount(dir)))
        }
        Err(why) => Err(Error::new(format!(
            "no kubeconfig ({searched}) and no in-cluster service account ({why})"
        ))
        .hint("pass --kubeconfig FILE or set KUBECONFIG; or name the API server with --server URL (with --token and --certificate-authority)")),
    }
}

/// A kubeconfig of one context, for the flags-only and in-cluster configurations.
fn synthetic(cluster: Cluster, user: AuthInfo, namespace: Option<String>) -> Kubeconfig {
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: SYNTHETIC.into(),
            cluster: Some(cluster),
            ..Default::default()
        }],
        auth_infos: vec![kube::config::NamedAuthInfo {
            name: SYNTHETIC.into(),
            auth_info: Some(user),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: SYNTHETIC.into(),
            context: Some(Context {
                cluster: SYNTHETIC.into(),
                user: Some(SYNTHETIC.into()),
                namespace,
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(SYNTHETIC.into()),
        ..Default::default()
    }
}

/// `--server`, `--certificate-authority`, `--insecure-skip-tls-verify` on the chosen cluster
/// (created when the context names one that is not there, as kubectl merges flags over nothing).
fn override_cluster(k: &mut Kubeconfig, opts: &KubeConfigOptions, o: &Overrides) {
    if o.server.is_none() && o.certificate_authority.is_none() && !o.insecure_skip_tls_verify {
        return;
    }
    let context = opts.context.clone().or_else(|| k.current_context.clone());
    let Some(name) = opts.cluster.clone().or_else(|| {
        k.contexts
            .iter()
            .find(|c| Some(&c.name) == context.as_ref())
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
    }) else {
        return; // no such context: kube's loader says so
    };
    let idx = match k.clusters.iter().position(|c| c.name == name) {
        Some(i) => i,
        None => {
            k.clusters.push(NamedCluster {
                name,
                cluster: Some(Cluster::default()),
                ..Default::default()
            });
            k.clusters.len() - 1
        }
    };
    let cluster = k.clusters[idx].cluster.get_or_insert_with(Cluster::default);
    if let Some(server) = &o.server {
        cluster.server = Some(server.clone());
    }
    if let Some(ca) = &o.certificate_authority {
        cluster.certificate_authority = Some(ca.to_string_lossy().into_owned());
        cluster.certificate_authority_data = None;
        cluster.insecure_skip_tls_verify = Some(false);
    } else if o.insecure_skip_tls_verify {
        cluster.insecure_skip_tls_verify = Some(true);
        cluster.certificate_authority = None;
        cluster.certificate_authority_data = None;
    }
}

/// `--token` and `--as*` on the chosen user's credentials.
fn override_user(auth: &mut AuthInfo, o: &Overrides) {
    if let Some(token) = &o.token {
        auth.token = Some(token.expose().to_string().into());
        auth.token_file = None;
        auth.exec = None;
        auth.auth_provider = None;
        auth.username = None;
        auth.password = None;
    }
    if let Some(user) = &o.impersonate {
        auth.impersonate = Some(user.clone());
        auth.impersonate_uid = o.impersonate_uid.clone();
        auth.impersonate_groups =
            (!o.impersonate_groups.is_empty()).then(|| o.impersonate_groups.clone());
        auth.impersonate_user_extra = None;
    }
}

/// What a pod sees: the API server's service address and the mounted service-account files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InCluster {
    pub(crate) host: String,
    pub(crate) port: String,
    pub(crate) dir: PathBuf,
    pub(crate) pod_namespace: Option<String>,
}

impl InCluster {
    /// client-go's test for "in a pod": both variables set and a token file there.
    fn from_env() -> std::result::Result<InCluster, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let dir = match var(SERVICEACCOUNT_DIR_ENV) {
            Some(d) => {
                tracing::debug!(dir = %d, "service-account directory from {SERVICEACCOUNT_DIR_ENV} (tests)");
                PathBuf::from(d)
            }
            None => PathBuf::from(SERVICEACCOUNT_DIR),
        };
        InCluster::detect(
            var("KUBERNETES_SERVICE_HOST"),
            var("KUBERNETES_SERVICE_PORT"),
            dir,
            var("POD_NAMESPACE"),
        )
    }

    fn detect(
        host: Option<String>,
        port: Option<String>,
        dir: PathBuf,
        pod_namespace: Option<String>,
    ) -> std::result::Result<InCluster, String> {
        let (Some(host), Some(port)) = (host, port) else {
            return Err("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set".into());
        };
        if !dir.join("token").is_file() {
            return Err(format!(
                "KUBERNETES_SERVICE_HOST is set, but there is no token file {}",
                dir.join("token").display()
            ));
        }
        Ok(InCluster {
            host,
            port,
            dir,
            pod_namespace,
        })
    }

    /// `https://host:port`, IPv6 addresses in brackets.
    fn server(&self) -> String {
        let host = match self.host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.host.clone(),
        };
        format!("https://{host}:{}", self.port)
    }

    /// The service account as a one-context kubeconfig: the token as a token file (re-read by
    /// the client, so the kubelet's rotation is seen), the CA, the namespace.
    fn kubeconfig(&self) -> Result<Kubeconfig> {
        let ca = self.dir.join("ca.crt");
        check_ca_file(&ca, "the service account's CA certificate").map_err(|e| {
            e.hint("the pod's service-account mount is incomplete; check automountServiceAccountToken, or give a kubeconfig")
        })?;
        let namespace = self.pod_namespace.clone().or_else(|| {
            std::fs::read_to_string(self.dir.join("namespace"))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        });
        let cluster = Cluster {
            server: Some(self.server()),
            certificate_authority: Some(ca.to_string_lossy().into_owned()),
            ..Default::default()
        };
        let user = AuthInfo {
            token_file: Some(self.dir.join("token").to_string_lossy().into_owned()),
            ..Default::default()
        };
        Ok(synthetic(
            cluster,
            user,
            namespace.or(Some("default".into())),
        ))
    }
}

/// The names of the contexts of the kubeconfig kubectl would read (`--kubeconfig`, else every
/// file `$KUBECONFIG` names, merged, else `~/.kube/config`), in their order, for
/// `--contexts`/`--all-contexts` and for completing them. No kubeconfig is an error that says
/// what was looked for: several contexts need a kubeconfig.
pub(crate) fn context_names(explicit: Option<&Path>) -> Result<Vec<String>> {
    let (files, loaded) = read_kubeconfigs(explicit)?;
    match loaded {
        Some(k) => Ok(names_of(&k)),
        None => Err(Error::new(format!(
            "--contexts/--all-contexts: no kubeconfig to take contexts from ({})",
            if files.is_empty() {
                "no file found".to_string()
            } else {
                "the files are empty".to_string()
            }
        ))
        .hint("pass --kubeconfig FILE or set KUBECONFIG")),
    }
}

/// The context names of a kubeconfig, in order, each once (a merged kubeconfig keeps the first).
fn names_of(k: &Kubeconfig) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for c in &k.contexts {
        if !out.contains(&c.name) {
            out.push(c.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names_in_the_kubeconfigs_order() {
        let kc: Kubeconfig = serde_yaml_ng::from_str(
            "apiVersion: v1\nkind: Config\ncontexts:\n- name: prod-eu\n  context: {cluster: c, user: u}\n- name: dev\n  context: {cluster: c, user: u}\n",
        )
        .unwrap();
        assert_eq!(names_of(&kc), vec!["prod-eu", "dev"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
        assert_eq!(context_names(Some(&path)).unwrap(), vec!["prod-eu", "dev"]);
    }

    /// Issue 23: a file a kubeconfig names is said once, unquoted (kube's '"/nope"').
    #[test]
    fn files_a_kubeconfig_names_are_named_once_unquoted() {
        use kube::config::{KubeconfigError as K, LoadDataError as L};
        let gone = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let read = |p: &str| L::ReadFile(gone(), p.into());
        for (e, want) in [
            (
                K::LoadClientCertificate(read("/nope/client.crt")),
                "cannot read the client certificate file /nope/client.crt: entity not found",
            ),
            (
                K::LoadClientKey(read("/nope/client.key")),
                "cannot read the client key file /nope/client.key: entity not found",
            ),
            (
                K::LoadCertificateAuthority(read("/nope/ca.crt")),
                "cannot read the certificate authority file /nope/ca.crt: entity not found",
            ),
            (
                K::ReadConfig(gone(), "/nope/config".into()),
                "cannot read kubeconfig /nope/config: entity not found",
            ),
        ] {
            assert_eq!(kubeconfig_error_text(&e), want);
        }
    }

    #[tokio::test]
    async fn a_missing_certificate_authority_file_is_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://10.0.0.1:6443\n    certificate-authority: /nope/ca.crt\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n",
        )
        .unwrap();
        let e = load(&Selection {
            kubeconfig: Some(&path),
            context: None,
            cluster: None,
            user: None,
            overrides: Overrides::default(),
        })
        .await
        .unwrap_err();
        assert!(
            e.message.ends_with(
                "cannot read the certificate authority file /nope/ca.crt: No such file or directory (os error 2)"
            ),
            "{}",
            e.message
        );
        assert!(!e.message.contains('"'), "{}", e.message);
    }

    #[test]
    fn a_missing_kubeconfig_is_named_once_unquoted() {
        let e = read_kubeconfigs(Some(Path::new("/nope/kubeconfig"))).unwrap_err();
        assert_eq!(
            e.message,
            "cannot read kubeconfig /nope/kubeconfig: No such file or directory (os error 2)"
        );
    }

    /// kubectl takes `proxy-url` from the cluster the context (or `--cluster`) selects.
    #[test]
    fn proxy_url_of_the_selected_cluster() {
        let kc: Kubeconfig = serde_yaml_ng::from_str(
            "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: ca\n  cluster: {server: 'https://a:6443', proxy-url: 'http://proxy.corp:3128'}\n- name: cb\n  cluster: {server: 'https://b:6443'}\ncontexts:\n- name: a\n  context: {cluster: ca, user: u}\n- name: b\n  context: {cluster: cb, user: u}\nusers:\n- name: u\n  user: {token: t}\n",
        )
        .unwrap();
        let opts = |context: Option<&str>, cluster: Option<&str>| KubeConfigOptions {
            context: context.map(str::to_string),
            cluster: cluster.map(str::to_string),
            user: None,
        };
        assert_eq!(
            kubeconfig_proxy_url(&kc, &opts(None, None)).as_deref(),
            Some("http://proxy.corp:3128")
        );
        assert_eq!(kubeconfig_proxy_url(&kc, &opts(Some("b"), None)), None);
        assert_eq!(
            kubeconfig_proxy_url(&kc, &opts(Some("b"), Some("ca"))).as_deref(),
            Some("http://proxy.corp:3128")
        );
    }

    /// A kubeconfig proxy-url is used for every request, loopback included (client-go's
    /// `http.ProxyURL`), and a SOCKS one is named as unsupported without its credentials.
    #[test]
    fn kubeconfig_proxy_url_wins() {
        let server = |p: Option<String>| api_server_proxy(p, "https", "127.0.0.1", Some(6443));
        let p = server(Some("http://u:pw@proxy:3128".into())).unwrap();
        assert_eq!(p.unwrap().url(), "http://u:pw@proxy:3128");
        let e = server(Some("socks5://u:pw@proxy:1080".into())).unwrap_err();
        assert!(
            e.message.starts_with("kubeconfig proxy-url: "),
            "{}",
            e.message
        );
        assert!(!e.message.contains("pw"), "{}", e.message);
    }

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn kubeconfig(yaml: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(yaml).expect("kubeconfig parses")
    }

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
current-context: a
clusters:
- name: ca
  cluster: {server: "https://a:6443", certificate-authority-data: Zm9v}
- name: cb
  cluster: {server: "https://b:6443", insecure-skip-tls-verify: true}
users:
- name: ua
  user: {token: secret-a}
- name: ub
  user:
    exec: {command: get-token, apiVersion: client.authentication.k8s.io/v1}
contexts:
- name: a
  context: {cluster: ca, user: ua, namespace: nsa}
- name: b
  context: {cluster: cb, user: ub}
"#;

    fn cluster<'a>(k: &'a Kubeconfig, name: &str) -> &'a Cluster {
        k.clusters
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.cluster.as_ref())
            .expect("cluster")
    }

    fn no_pod() -> std::result::Result<InCluster, String> {
        Err("not in a pod".into())
    }

    #[test]
    fn server_and_ca_override_the_current_contexts_cluster_only() {
        let mut k = kubeconfig(TWO_CONTEXTS);
        let o = Overrides {
            server: Some("https://x:1".into()),
            certificate_authority: Some("/ca.pem".into()),
            ..Default::default()
        };
        override_cluster(&mut k, &KubeConfigOptions::default(), &o);
        let a = cluster(&k, "ca");
        assert_eq!(a.server.as_deref(), Some("https://x:1"));
        assert_eq!(a.certificate_authority.as_deref(), Some("/ca.pem"));
        assert_eq!(
            a.certificate_authority_data, None,
            "the CA flag replaces the CA data"
        );
        assert_eq!(cluster(&k, "cb").server.as_deref(), Some("https://b:6443"));
    }

    #[test]
    fn overrides_follow_context_and_cluster_flags() {
        let mut k = kubeconfig(TWO_CONTEXTS);
        let o = Overrides {
            insecure_skip_tls_verify: true,
            ..Default::default()
        };
        let opts = KubeConfigOptions {
            context: Some("b".into()),
            ..Default::default()
        };
        override_cluster(&mut k, &opts, &o);
        assert_eq!(cluster(&k, "cb").insecure_skip_tls_verify, Some(true));
        assert_eq!(cluster(&k, "ca").insecure_skip_tls_verify, None);

        let mut k = kubeconfig(TWO_CONTEXTS);
        let opts = KubeConfigOptions {
            cluster: Some("ca".into()),
            ..Default::default()
        };
        override_cluster(&mut k, &opts, &o);
        let a = cluster(&k, "ca");
        assert_eq!(a.insecure_skip_tls_verify, Some(true));
        assert_eq!(
            a.certificate_authority_data, None,
            "insecure drops the CA, so kube does not see both"
        );
    }

    #[test]
    fn no_overrides_change_nothing() {
        let mut k = kubeconfig(TWO_CONTEXTS);
        override_cluster(&mut k, &KubeConfigOptions::default(), &Overrides::default());
        assert_eq!(
            serde_json::to_value(&k).unwrap(),
            serde_json::to_value(kubeconfig(TWO_CONTEXTS)).unwrap()
        );
    }

    #[test]
    fn token_replaces_every_other_credential_and_as_impersonates() {
        let k = kubeconfig(TWO_CONTEXTS);
        let mut auth = k.auth_infos[1].auth_info.clone().expect("ub");
        assert!(auth.exec.is_some());
        let o = Overrides {
            token: Some(Token::parse("t0k").unwrap()),
            impersonate: Some("jane".into()),
            impersonate_groups: vec!["g1".into(), "g2".into()],
            impersonate_uid: Some("42".into()),
            ..Default::default()
        };
        override_user(&mut auth, &o);
        assert!(auth.exec.is_none(), "the exec plugin is not run");
        assert!(auth.token.is_some());
        assert_eq!(auth.impersonate.as_deref(), Some("jane"));
        assert_eq!(
            auth.impersonate_groups,
            Some(vec!["g1".to_string(), "g2".to_string()])
        );
        assert_eq!(auth.impersonate_uid.as_deref(), Some("42"));
    }

    #[test]
    fn a_token_is_never_shown() {
        let t = Token::parse(" s3cret\n").unwrap();
        assert_eq!(t.expose(), "s3cret");
        assert!(!format!("{t:?}").contains("s3cret"));
        let o = Overrides {
            token: Some(t),
            ..Default::default()
        };
        assert!(!format!("{o:?}").contains("s3cret"));
        assert!(Token::parse("  ").is_err());
    }

    #[test]
    fn order_kubeconfig_then_server_then_service_account() {
        let o = Overrides::default();
        let sel = Selection {
            overrides: o.clone(),
            ..Default::default()
        };
        let pod = || {
            Ok(InCluster {
                host: "10.0.0.1".into(),
                port: "443".into(),
                dir: "/nonexistent".into(),
                pod_namespace: None,
            })
        };
        // a kubeconfig wins over the pod
        let (_, src) =
            choose(Some(kubeconfig(TWO_CONTEXTS)), vec!["/k".into()], &sel, pod).unwrap();
        assert_eq!(src, Source::Kubeconfig(vec!["/k".into()]));
        // an empty one does not: the pod is tried (and here its CA is missing, named)
        let e = choose(Some(Kubeconfig::default()), vec!["/k".into()], &sel, pod).unwrap_err();
        assert!(e.message.contains("/nonexistent/ca.crt"), "{}", e.message);
        // --server without a kubeconfig: the flags alone
        let o = Overrides {
            server: Some("https://x:6443".into()),
            ..Default::default()
        };
        let sel = Selection {
            overrides: o.clone(),
            ..Default::default()
        };
        let (k, src) = choose(None, vec![], &sel, no_pod).unwrap();
        assert_eq!(src, Source::Flags);
        assert_eq!(k.current_context.as_deref(), Some(SYNTHETIC));
    }

    #[test]
    fn nothing_found_says_what_was_looked_for() {
        let o = Overrides::default();
        let sel = Selection {
            overrides: o.clone(),
            ..Default::default()
        };
        let e = choose(None, vec![], &sel, no_pod).unwrap_err();
        assert!(e.message.contains("no kubeconfig"), "{}", e.message);
        assert!(e.message.contains("not in a pod"), "{}", e.message);
        assert!(e.hint.unwrap().contains("--server"));
        let sel = Selection {
            context: Some("prod"),
            overrides: o.clone(),
            ..Default::default()
        };
        let e = choose(None, vec![], &sel, no_pod).unwrap_err();
        assert!(e.message.starts_with("--context prod"), "{}", e.message);
    }

    #[test]
    fn in_cluster_needs_both_variables_and_a_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let e = InCluster::detect(Some("h".into()), None, d.clone(), None).unwrap_err();
        assert!(e.contains("KUBERNETES_SERVICE_PORT"), "{e}");
        let e = InCluster::detect(Some("h".into()), Some("1".into()), d.clone(), None).unwrap_err();
        assert!(e.contains("token"), "{e}");
        std::fs::write(d.join("token"), "t").unwrap();
        assert!(InCluster::detect(Some("h".into()), Some("1".into()), d, None).is_ok());
    }

    #[test]
    fn in_cluster_kubeconfig_from_the_mounted_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("token"), "t").unwrap();
        std::fs::write(d.join("ca.crt"), CA).unwrap();
        std::fs::write(d.join("namespace"), "team-a\n").unwrap();
        let ic = InCluster {
            host: "fd00::1".into(),
            port: "443".into(),
            dir: d.to_path_buf(),
            pod_namespace: None,
        };
        let k = ic.kubeconfig().unwrap();
        let c = cluster(&k, SYNTHETIC);
        assert_eq!(c.server.as_deref(), Some("https://[fd00::1]:443"));
        assert_eq!(
            c.certificate_authority.as_deref(),
            Some(d.join("ca.crt").to_str().unwrap())
        );
        let user = k.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.token_file.as_deref(),
            Some(d.join("token").to_str().unwrap())
        );
        let ctx = k.contexts[0].context.as_ref().unwrap();
        assert_eq!(ctx.namespace.as_deref(), Some("team-a"));
        // $POD_NAMESPACE first, as client-go
        let ic = InCluster {
            pod_namespace: Some("from-env".into()),
            host: "10.0.0.1".into(),
            ..ic
        };
        let k = ic.kubeconfig().unwrap();
        assert_eq!(
            k.contexts[0].context.as_ref().unwrap().namespace.as_deref(),
            Some("from-env")
        );
        assert_eq!(
            cluster(&k, SYNTHETIC).server.as_deref(),
            Some("https://10.0.0.1:443")
        );
    }

    #[test]
    fn contradicting_or_bad_flags_are_refused_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, CA).unwrap();
        let both = Overrides {
            certificate_authority: Some(ca.clone()),
            insecure_skip_tls_verify: true,
            ..Default::default()
        };
        let e = check_flags(&both).unwrap_err();
        assert!(
            e.message.contains("--certificate-authority")
                && e.message.contains("--insecure-skip-tls-verify")
        );
        let missing = Overrides {
            certificate_authority: Some(dir.path().join("nope.pem")),
            ..Default::default()
        };
        let e = check_flags(&missing).unwrap_err();
        assert!(e.message.contains("nope.pem"), "{}", e.message);
        let not_pem = dir.path().join("x.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let e = check_flags(&Overrides {
            certificate_authority: Some(not_pem),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.message.contains("no PEM certificate"), "{}", e.message);
        for bad in ["not a url", "", "ftp://x", "https://"] {
            let e = check_flags(&Overrides {
                server: Some(bad.into()),
                ..Default::default()
            })
            .unwrap_err();
            assert!(e.message.contains("--server"), "{bad}: {}", e.message);
        }
        let ok = check_flags(&Overrides {
            server: Some("10.0.0.1:6443".into()),
            certificate_authority: Some(ca),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.server.as_deref(), Some("https://10.0.0.1:6443"));
    }
}
