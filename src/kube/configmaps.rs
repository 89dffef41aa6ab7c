//! ConfigMaps read and written by name: the releases ConfigMap (`import` writes it, `status` and
//! `show` read it) and Houston's config ConfigMap (`enable` edits it). Every call maps the API
//! server's status to an `ErrorKind` here, once, through `Cluster::err`; commands branch on the
//! kind (`Conflict` to re-read and retry, `Forbidden` to report unreadable), never on a status
//! code or a message's text.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch};

use crate::core::names::HOUSTON_SELECTOR;
use crate::error::{Error, ErrorKind, Result};
use crate::kube::client::{patch_params, post_params, Cluster};

impl Cluster {
    fn configmaps(&self, ns: &str) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// The ConfigMap, or `None` when it does not exist (404). Other failures keep their kind.
    pub(crate) async fn get_configmap(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>> {
        self.configmaps(ns)
            .get_opt(name)
            .await
            .map_err(|e| self.err(e, "get", "configmaps", Some(ns)))
    }

    /// Creates `cm` in `ns`. A missing namespace is `ErrorKind::NotFound` with a message naming
    /// the namespace (the API server answers 404 with `details.kind: namespaces`); an object
    /// created meanwhile by someone else is `ErrorKind::Conflict` (409 AlreadyExists).
    pub(crate) async fn create_configmap(
        &self,
        ns: &str,
        cm: &ConfigMap,
        server_dry_run: bool,
    ) -> Result<ConfigMap> {
        match self
            .configmaps(ns)
            .create(&post_params(server_dry_run), cm)
            .await
        {
            Ok(c) => Ok(c),
            Err(kube::Error::Api(s))
                if s.code == 404 && s.details.as_ref().is_some_and(|d| d.kind == "namespaces") =>
            {
                Err(Error::new(format!(
                    "namespace {ns:?} not found: cannot create configmap {:?} there",
                    cm.metadata.name.as_deref().unwrap_or_default()
                ))
                .hint(format!(
                    "pass the namespace Houston runs in with --platform-namespace \
                     (`kubectl get deployments -A -l {HOUSTON_SELECTOR}` finds it)"
                ))
                .kind(ErrorKind::NotFound))
            }
            Err(e) => Err(self.err(e, "create", "configmaps", Some(ns))),
        }
    }

    /// Replaces the ConfigMap `cm` names; its `resourceVersion` makes this a compare-and-swap,
    /// so another writer in between is `ErrorKind::Conflict` (409).
    pub(crate) async fn replace_configmap(
        &self,
        ns: &str,
        cm: &ConfigMap,
        server_dry_run: bool,
    ) -> Result<ConfigMap> {
        let name = cm.metadata.name.as_deref().unwrap_or_default();
        self.configmaps(ns)
            .replace(name, &post_params(server_dry_run), cm)
            .await
            .map_err(|e| self.err(e, "update", "configmaps", Some(ns)))
    }

    /// Patches the named ConfigMap (a JSON merge or JSON patch that carries its own checks, such
    /// as a `resourceVersion` or a `test` operation; a failed check is `ErrorKind::Conflict`).
    pub(crate) async fn patch_configmap(
        &self,
        ns: &str,
        name: &str,
        patch: &Patch<serde_json::Value>,
        server_dry_run: bool,
    ) -> Result<ConfigMap> {
        self.configmaps(ns)
            .patch(name, &patch_params(server_dry_run), patch)
            .await
            .map_err(|e| self.err(e, "patch", "configmaps", Some(ns)))
    }
}
