//! Talking to the API server: client construction that honours kubectl's flags, errors that name
//! the verb, resource and namespace, and the list calls that feed every command. Reading is done
//! with a fixed number of lists (never a GET per object), each read in pages (`--chunk-size`,
//! `limit`/`continue`, as kubectl does) and each page reduced to what the model reads before the
//! next is asked for (see `kube::slim`), so memory holds one page plus the reduced fleet.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::{Client, Resource};

use crate::core::credentials::PullSecretCredentials;
pub(crate) use crate::core::inventory::Snapshot;
use crate::core::inventory::{self, Workload};
use crate::error::{error_chain, Error, ErrorKind, Result};
use crate::kube::slim::{
    SlimConfigMap, SlimCronJob, SlimPod, SlimSecret, SlimServiceAccount, SlimWorkload,
};

/// Label every Airflow-chart object carries.
pub(crate) use crate::core::names::AIRFLOW_SELECTOR;

/// How to reach the API server, as kubectl's generic flags say.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnectOptions {
    pub(crate) kubeconfig: Option<std::path::PathBuf>,
    pub(crate) context: Option<String>,
    pub(crate) cluster: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) request_timeout: Option<std::time::Duration>,
    /// `--chunk-size`: objects per page of a list; 0 = one request for the whole list.
    pub(crate) chunk_size: u32,
    /// `--server`, `--token`, `--certificate-authority`, `--insecure-skip-tls-verify`, `--as*`
    pub(crate) overrides: super::config::Overrides,
}

pub(crate) use super::config::FIELD_MANAGER;

/// Parameters of every PATCH: the plugin's field manager, and `dryRun=All` when asked.
pub(crate) fn patch_params(server_dry_run: bool) -> kube::api::PatchParams {
    kube::api::PatchParams {
        dry_run: server_dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Parameters of every create and replace: the plugin's field manager, and `dryRun=All` when asked.
pub(crate) fn post_params(server_dry_run: bool) -> kube::api::PostParams {
    kube::api::PostParams {
        dry_run: server_dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
    }
}

/// `-n NAMESPACE` and `-A` as given; `Cluster::scope` turns them into a `Scope`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Namespaces {
    pub(crate) namespace: Option<String>,
    pub(crate) all: bool,
}

pub(crate) struct Cluster {
    pub(crate) client: Client,
    pub(crate) default_namespace: String,
    pub(crate) server: String,
    /// Objects per page of a list (`--chunk-size`); 0 = unpaged.
    pub(crate) chunk_size: u32,
}

/// kubectl's default `--chunk-size`.
pub(crate) const DEFAULT_CHUNK_SIZE: u32 = 500;

/// How often a list whose continue token expired (410 Gone) is started over before giving up.
const LIST_RESTARTS: u32 = 2;

/// Namespaces whose pods are listed at once when named releases are looked up everywhere
/// (see [`Cluster::fetch_airflow`]).
const POD_LISTS_IN_FLIGHT: usize = 16;

/// One page of a list, its items read as `T` (a slim shape or the full object).
#[derive(serde::Deserialize)]
#[serde(bound(deserialize = "T: serde::de::DeserializeOwned"))]
struct Page<T> {
    #[serde(default)]
    metadata: PageMeta,
    #[serde(default)]
    items: Option<Vec<T>>,
}

#[derive(serde::Deserialize, Default)]
struct PageMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
}

impl Cluster {
    pub(crate) async fn connect(g: &ConnectOptions) -> Result<Cluster> {
        let (mut config, _source) = super::config::load(&super::config::Selection {
            kubeconfig: g.kubeconfig.as_deref(),
            context: g.context.as_deref(),
            cluster: g.cluster.as_deref(),
            user: g.user.as_deref(),
            overrides: g.overrides.clone(),
        })
        .await?;
        if let Some(t) = g.request_timeout {
            config.read_timeout = Some(t);
            config.connect_timeout = Some(t);
            config.write_timeout = Some(t);
        }
        let default_namespace = config.default_namespace.clone();
        let server = config.cluster_url.to_string();
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| {
                let why = match &e {
                    kube::Error::InferKubeconfig(k) => super::config::kubeconfig_error_text(k),
                    other => other.to_string(),
                };
                Error::new(format!("cannot create a Kubernetes client: {why}"))
            })?
            .with_layer(&super::request_log::RequestLog::new(&server))
            .build();
        Ok(Cluster {
            client,
            default_namespace,
            server,
            chunk_size: g.chunk_size,
        })
    }

    /// Maps a kube error to a message naming what was attempted.
    pub(crate) fn err(
        &self,
        e: kube::Error,
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Error {
        api_error(e, verb, resource, namespace, &self.server)
    }

    /// Which namespace(s) a command looks at: `-A` = all, `-n` = that one, otherwise the context's.
    pub(crate) fn scope(&self, g: &Namespaces) -> Scope {
        if g.all {
            Scope::All
        } else {
            Scope::Namespace(
                g.namespace
                    .clone()
                    .unwrap_or_else(|| self.default_namespace.clone()),
            )
        }
    }

    /// Every object of a list (`path`: the collection's URL path; `lp`: its selectors), asked
    /// for `chunk_size` at a time, each page handed item by item to `keep` before the next page
    /// is requested: what `keep` returns is all that stays. A continue token that expired
    /// between pages (410 Gone, etcd compacted meanwhile) starts the list over from the first
    /// page, at most [`LIST_RESTARTS`] times; what was kept of the abandoned pass is dropped.
    pub(crate) async fn list_pages<T, R>(
        &self,
        path: &str,
        lp: &ListParams,
        resource: &str,
        mut keep: impl FnMut(T) -> Option<R>,
    ) -> std::result::Result<Vec<R>, kube::Error>
    where
        T: serde::de::DeserializeOwned,
    {
        let mut restarts = 0;
        'list: loop {
            let mut out = vec![];
            let mut token: Option<String> = None;
            loop {
                let mut p = lp.clone();
                p.limit = (self.chunk_size > 0).then_some(self.chunk_size);
                p.continue_token = token.take();
                let paged = p.continue_token.is_some();
                let req = kube::core::Request::new(path)
                    .list(&p)
                    .map_err(kube::Error::BuildRequest)?;
                match self.client.request::<Page<T>>(req).await {
                    Ok(page) => {
                        out.extend(page.items.into_iter().flatten().filter_map(&mut keep));
                        match page.metadata.continue_token.filter(|c| !c.is_empty()) {
                            Some(c) => token = Some(c),
                            None => return Ok(out),
                        }
                    }
                    Err(kube::Error::Api(s))
                        if s.code == 410 && paged && restarts < LIST_RESTARTS =>
                    {
                        restarts += 1;
                        tracing::warn!(
                            "the list of {resource} expired between pages (410 Gone: its continue token is too old); listing {resource} again from the start ({restarts} of at most {LIST_RESTARTS} times)"
                        );
                        continue 'list;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// A paged list of a namespaced resource type `K` over `scope`, each item read as `T` and
    /// reduced by `keep`; errors name the resource.
    pub(crate) async fn list_as<K, T, R>(
        &self,
        scope: &Scope,
        lp: &ListParams,
        resource: &str,
        keep: impl FnMut(T) -> Option<R>,
    ) -> Result<Vec<R>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
        T: serde::de::DeserializeOwned,
    {
        let path = K::url_path(&Default::default(), scope.namespace());
        self.list_pages(&path, lp, resource, keep)
            .await
            .map_err(|e| self.err(e, "list", resource, scope.namespace()))
    }

    /// Full objects of `K` matching `selector`, paged (platform reads: a namespace's worth).
    pub(crate) async fn list<K>(
        &self,
        scope: &Scope,
        selector: &str,
        resource: &str,
    ) -> Result<Vec<K>>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + serde::de::DeserializeOwned,
        <K as kube::Resource>::DynamicType: Default,
    {
        let lp = ListParams::default().labels(selector);
        self.list_as::<K, K, K>(scope, &lp, resource, Some).await
    }

    /// Fails clearly for `-n typo` (a list in a missing namespace is silently empty). A user who
    /// may not read namespaces is not stopped: the check is skipped.
    pub(crate) async fn check_namespace(&self, scope: &Scope) -> Result<()> {
        let Scope::Namespace(ns) = scope else {
            return Ok(());
        };
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get(ns).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(Error::new(format!(
                "namespace {ns:?} not found"
            ))
            .hint("check the name with `kubectl get namespaces`, or use -A to look everywhere")),
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
            Err(e) => Err(self.err(e, "get", "namespaces", None)),
        }
    }

    /// CronJobs are `batch/v1` from Kubernetes 1.21 and `batch/v1beta1` before: ask the server.
    /// `None` when neither is served (treated as "no CronJobs here").
    pub(crate) async fn cronjob_resource(&self) -> Result<Option<ApiResource>> {
        for version in ["v1", "v1beta1"] {
            match self
                .client
                .list_api_group_resources(&format!("batch/{version}"))
                .await
            {
                Ok(list) if list.resources.iter().any(|r| r.name == "cronjobs") => {
                    return Ok(Some(ApiResource {
                        group: "batch".into(),
                        version: version.into(),
                        api_version: format!("batch/{version}"),
                        kind: "CronJob".into(),
                        plural: "cronjobs".into(),
                    }))
                }
                Ok(_) => continue,
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(e) => return Err(self.err(e, "discover", "batch API group", None)),
            }
        }
        Ok(None)
    }

    /// CronJobs (full objects) matching `selector`, paged.
    pub(crate) async fn list_cronjobs(
        &self,
        scope: &Scope,
        selector: &str,
        ar: &ApiResource,
    ) -> Result<Vec<DynamicObject>> {
        self.cronjobs_as(scope, selector, ar, Some).await
    }

    async fn cronjobs_as<T: serde::de::DeserializeOwned, R>(
        &self,
        scope: &Scope,
        selector: &str,
        ar: &ApiResource,
        keep: impl FnMut(T) -> Option<R>,
    ) -> Result<Vec<R>> {
        let path = DynamicObject::url_path(ar, scope.namespace());
        self.list_pages(
            &path,
            &ListParams::default().labels(selector),
            "cronjobs",
            keep,
        )
        .await
        .map_err(|e| self.err(e, "list", "cronjobs", scope.namespace()))
    }

    /// Everything an Airflow Deployment is made of, in five lists (paged) and one discovery
    /// request. Every item is reduced as its page arrives: read into a slim shape
    /// (`kube::slim`), turned into its workload (`core::inventory`) or its pod's image IDs.
    /// `releases` narrows the lists to those releases (all Airflow releases when empty).
    ///
    /// Named releases in every namespace (`pin a b c` without `-n`): their pods are listed
    /// namespace by namespace once the workloads say where the releases live, up to
    /// [`POD_LISTS_IN_FLIGHT`] at a time. A label selector does not spare the API server a
    /// pod list over all namespaces reading every pod of the cluster to find the releases' few
    /// (on a fleet of 10,000 KubernetesExecutor task pods, seconds of its time for every page);
    /// a namespace's list reads that namespace only.
    pub(crate) async fn fetch_airflow(
        &self,
        scope: &Scope,
        releases: &[String],
    ) -> Result<Snapshot> {
        let cron = self.cronjob_resource().await?;
        let lp = ListParams::default().labels(&airflow_selector(releases));
        let pods_per_namespace = !releases.is_empty() && scope.namespace().is_none();
        let pods_in_scope = async {
            if pods_per_namespace {
                Ok(vec![])
            } else {
                self.list_as::<Pod, _, _>(scope, &lp, "pods", |p: SlimPod| {
                    Some(p.into_pod_images())
                })
                .await
            }
        };
        // All five lists run at once, and each is awaited to its end: the error reported is the
        // first in this fixed order, not whichever answered first, so a run without rights
        // names the same resource every time.
        let (deployments, statefulsets, pods, templates, cronjobs) = tokio::join!(
            self.list_as::<Deployment, _, _>(scope, &lp, "deployments.apps", |w: SlimWorkload| {
                inventory::deployment(&w.into_deployment())
            }),
            self.list_as::<StatefulSet, _, _>(
                scope,
                &lp,
                "statefulsets.apps",
                |w: SlimWorkload| { inventory::statefulset(&w.into_statefulset()) }
            ),
            pods_in_scope,
            self.list_as::<ConfigMap, _, _>(scope, &lp, "configmaps", |c: SlimConfigMap| {
                c.into_pod_template()
                    .as_ref()
                    .and_then(inventory::pod_template)
            }),
            async {
                match &cron {
                    Some(ar) => {
                        self.cronjobs_as(
                            scope,
                            &airflow_selector(releases),
                            ar,
                            |c: SlimCronJob| inventory::cronjob(&c.into_dynamic()),
                        )
                        .await
                    }
                    None => Ok(vec![]),
                }
            },
        );
        let mut workloads = deployments?;
        workloads.extend(statefulsets?);
        let mut pods = pods?;
        let templates = templates?;
        workloads.extend(cronjobs?);
        workloads.extend(templates);
        inventory::sort(&mut workloads);
        if pods_per_namespace {
            let namespaces: BTreeSet<&str> =
                workloads.iter().map(|w| w.namespace.as_str()).collect();
            pods = self.pods_in(&namespaces, &lp).await?;
        }
        Ok(Snapshot { workloads, pods })
    }

    /// The pods of each namespace (`lp`: their selectors), in namespace order, up to
    /// [`POD_LISTS_IN_FLIGHT`] lists at a time; the first error in that order is the answer.
    async fn pods_in(
        &self,
        namespaces: &BTreeSet<&str>,
        lp: &ListParams,
    ) -> Result<Vec<inventory::PodImages>> {
        use futures::StreamExt;
        let lists: Vec<Result<Vec<inventory::PodImages>>> = futures::stream::iter(namespaces)
            .map(|ns| {
                let scope = Scope::Namespace(ns.to_string());
                async move {
                    self.list_as::<Pod, _, _>(&scope, lp, "pods", |p: SlimPod| {
                        Some(p.into_pod_images())
                    })
                    .await
                }
            })
            .buffered(POD_LISTS_IN_FLIGHT)
            .collect()
            .await;
        let mut pods = vec![];
        for list in lists {
            pods.extend(list?);
        }
        Ok(pods)
    }

    /// The docker-config Secrets and (when a workload names no pull secret itself) the
    /// ServiceAccounts that the workloads' pods would pull with: at most one list call each over
    /// the whole scope (never one per namespace), so `show -A` costs the same for 2 or 200
    /// releases. The Secrets come first: where there are none, no ServiceAccount could name one,
    /// and the second call is not made. Missing rights only cost the credentials (an info log),
    /// never the run.
    pub(crate) async fn pull_secrets(
        &self,
        scope: &Scope,
        workloads: &[&Workload],
    ) -> crate::core::pullsecrets::PullSecrets {
        let mut out = crate::core::pullsecrets::PullSecrets::default();
        if workloads.is_empty() {
            return out;
        }
        let lp = ListParams::default().fields("type=kubernetes.io/dockerconfigjson");
        let path = Secret::url_path(&(), scope.namespace());
        match self
            .list_pages(&path, &lp, "secrets", |s: SlimSecret| {
                Some(s.docker_config())
            })
            .await
        {
            Ok(list) => {
                for (key, config) in list {
                    let mut creds = PullSecretCredentials::default();
                    if let Some(v) = config {
                        creds.add_docker_config_json(&v);
                    }
                    out.secrets.insert(key, creds);
                }
            }
            Err(e) => {
                tracing::info!(error = %e, "cannot list image pull secrets; resolving without them");
                return out;
            }
        }
        let with_secrets: BTreeSet<&str> = out.secrets.keys().map(|(ns, _)| ns.as_str()).collect();
        if !workloads
            .iter()
            .any(|w| w.pull_secrets.is_empty() && with_secrets.contains(w.namespace.as_str()))
        {
            return out;
        }
        let path = ServiceAccount::url_path(&(), scope.namespace());
        let keep = |sa: SlimServiceAccount| Some(sa.pull_secrets()).filter(|(_, n)| !n.is_empty());
        match self
            .list_pages(&path, &ListParams::default(), "serviceaccounts", keep)
            .await
        {
            Ok(list) => out.service_accounts.extend(list),
            Err(e) => tracing::info!(
                error = %e,
                "cannot list service accounts; their image pull secrets are not used"
            ),
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    All,
    Namespace(String),
}

impl Scope {
    pub(crate) fn namespace(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Namespace(n) => Some(n),
        }
    }
}

/// Label selector for the Airflow objects of the given releases (all when empty).
pub(crate) fn airflow_selector(releases: &[String]) -> String {
    if releases.is_empty() {
        AIRFLOW_SELECTOR.to_string()
    } else {
        format!("{AIRFLOW_SELECTOR},release in ({})", releases.join(","))
    }
}

pub(crate) fn api_error(
    e: kube::Error,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    server: &str,
) -> Error {
    let where_ = match namespace {
        Some(ns) => format!(" in namespace {ns:?}"),
        None => String::new(),
    };
    let object = match namespace {
        Some(ns) => format!("{resource} in namespace {ns}"),
        None => resource.to_string(),
    };
    match e {
        kube::Error::Api(s) => api_status(&s, verb, resource, &where_).about(object),
        other => transport_error(&other, verb, resource, &where_, server),
    }
}

/// The error for a status the API server answered with.
fn api_status(s: &kube::core::Status, verb: &str, resource: &str, where_: &str) -> Error {
    match s.code {
            401 => Error::new(format!("the API server rejected the credentials ({verb} {resource}{where_}): {}", s.message))
                .hint("refresh your kubeconfig credentials (token expired?) or pick another --context/--user")
                .kind(ErrorKind::Unauthorized),
            403 if s.message.contains("cannot impersonate") => Error::new(format!("forbidden: cannot {verb} {resource}{where_} as the --as user or group: {}", s.message))
                .hint("you may not act as that user or group: ask a cluster admin for RBAC `impersonate` on it, or drop --as/--as-group")
                .kind(ErrorKind::Forbidden),
            403 => Error::new(format!("forbidden: cannot {verb} {resource}{where_}: {}", s.message)).hint(format!(
                "ask a cluster admin for a Role granting `{verb}` on `{resource}`{where_}; the README lists the Role each command needs"
            )).kind(ErrorKind::Forbidden),
            404 => Error::new(format!("not found: {verb} {resource}{where_}: {}", s.message))
                .hint("check the name and namespace; list what exists with kubectl get")
                .kind(ErrorKind::NotFound),
            409 => Error::new(format!("conflict: {verb} {resource}{where_}: {}", s.message))
                .hint("another writer changed the object; re-run the command")
                .kind(ErrorKind::Conflict),
            413 => Error::new(format!("the API server refused the request as too large (413, {verb} {resource}{where_}): {}", s.message))
                .hint("the object would exceed the API server's request size limit; check its size with kubectl get -o yaml")
                .kind(ErrorKind::ApiStatus),
            422 => Error::new(format!("the API server refused the change as invalid (422, {verb} {resource}{where_}): {}", s.message))
                .hint("an admission policy or validation rejected the new object; the message above says which field")
                .kind(ErrorKind::ApiStatus),
            code if code >= 500 => Error::new(format!("API server answered {code} to {verb} {resource}{where_}: {}", s.message))
                .hint("the API server failed, or its etcd is down; retry when it is healthy again")
                .kind(ErrorKind::ApiStatus),
            code => Error::new(format!("API server answered {code} to {verb} {resource}{where_}: {}", s.message))
                .kind(ErrorKind::ApiStatus),
    }
}

/// The error for a request that got no status back: TLS, timeout, connection.
fn transport_error(
    other: &kube::Error,
    verb: &str,
    resource: &str,
    where_: &str,
    server: &str,
) -> Error {
    {
        let text = error_chain(other);
        if text.contains("certificate") {
            Error::new(format!("cannot reach the API server at {server} ({verb} {resource}{where_}): {text}"))
                    .hint("its TLS certificate was not accepted: give the CA that signed it with --certificate-authority FILE (or fix certificate-authority in the kubeconfig); --insecure-skip-tls-verify turns verification off")
                    .kind(ErrorKind::Unreachable)
        } else if is_timeout(&text) {
            Error::new(format!("the API server at {server} did not answer in time ({verb} {resource}{where_}): {text}"))
                    .hint("it accepts connections but does not answer: overloaded, or its etcd is down; retry, or raise --request-timeout")
                    .kind(ErrorKind::Timeout)
        } else {
            Error::new(format!("cannot reach the API server at {server} ({verb} {resource}{where_}): {text}"))
                    .hint("check --context/--kubeconfig, the network path to the cluster, or raise --request-timeout")
                    .kind(ErrorKind::Unreachable)
        }
    }
}

fn is_timeout(chain: &str) -> bool {
    let lower = chain.to_ascii_lowercase();
    lower.contains("timed out") || lower.contains("timeout") || lower.contains("elapsed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_scopes_releases() {
        assert_eq!(airflow_selector(&[]), "tier=airflow");
        assert_eq!(
            airflow_selector(&["a".into(), "b".into()]),
            "tier=airflow,release in (a,b)"
        );
    }

    #[test]
    fn a_timeout_is_told_apart_from_an_unreachable_server() {
        assert!(is_timeout(
            "ServiceError: client error (SendRequest): operation timed out"
        ));
        assert!(!is_timeout(
            "ServiceError: client error (Connect): tcp connect error: Connection refused (os error 111)"
        ));
    }

    #[test]
    fn a_refused_impersonation_says_so_and_not_which_role_to_ask_for() {
        let e = api_error(
            kube::Error::Api(Box::new(
                kube::core::Status::failure(
                    "users \"jane\" is forbidden: User \"limited1\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
                    "Forbidden",
                )
                .with_code(403),
            )),
            "list",
            "deployments.apps",
            Some("ns1"),
            "https://x",
        );
        assert_eq!(e.kind, ErrorKind::Forbidden);
        assert!(e.message.contains("cannot impersonate"), "{}", e.message);
        assert!(e.hint.unwrap().contains("impersonate"));
    }

    #[test]
    fn forbidden_names_verb_resource_namespace() {
        let e = api_error(
            kube::Error::Api(Box::new(
                kube::core::Status::failure("no", "Forbidden").with_code(403),
            )),
            "patch",
            "statefulsets.apps",
            Some("ns1"),
            "https://x",
        );
        assert!(
            e.message
                .contains("cannot patch statefulsets.apps in namespace \"ns1\""),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("Role"));
    }

    /// With etcd gone, kube-apiserver answers 500 `transport is closing` when it does not time
    /// out first: the message names the API server and its etcd and says to retry, as the
    /// timeout's does (the bed's etcd test meets either).
    #[test]
    fn a_5xx_names_the_api_server_and_its_etcd_and_says_to_retry() {
        let e = api_error(
            kube::Error::Api(Box::new(
                kube::core::Status::failure(
                    "rpc error: code = Unavailable desc = transport is closing",
                    "InternalError",
                )
                .with_code(500),
            )),
            "list",
            "deployments.apps",
            Some("ns1"),
            "https://x",
        );
        assert_eq!(e.code(), 2);
        let text = e.to_string();
        assert!(
            text.contains("API server answered 500 to list deployments.apps in namespace \"ns1\"")
                && text.contains("its etcd is down")
                && text.contains("retry"),
            "{text}"
        );
    }
}
