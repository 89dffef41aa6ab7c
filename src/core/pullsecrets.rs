//! Which registry credentials resolve which workload's images: the kubelet's rules, pure.
//!
//! A pod pulls with the pull secrets its spec names (`imagePullSecrets`, in order). A pod that
//! names none gets its ServiceAccount's at admission: the ServiceAccount admission plugin copies
//! `serviceAccount.imagePullSecrets` into a pod without any (kubernetes
//! `plugin/pkg/admission/serviceaccount/admission.go`), so a Deployment's template that names
//! none is pulled with its ServiceAccount's (`default` when the template names none). Secrets are
//! looked up in the workload's own namespace only, as the kubelet does: one namespace's secret never
//! resolves another namespace's image. For a registry, the kubelet tries every credential those
//! secrets hold for it, in order, then the node's own; here the node's own is this machine's docker
//! config, then anonymous (`registry::Resolver::resolve_as`).
//!
//! What was read from the cluster (ServiceAccounts and docker-config Secrets, one list call each)
//! goes in as a [`PullSecrets`]; per workload and registry host comes out the ordered list of
//! credentials. A secret that is missing, unreadable or broken costs only the workloads that use it.

use std::collections::HashMap;

use crate::core::credentials::{CredentialSource, PullSecretCredentials, SourcedCredential};
use crate::core::inventory::{Kind, Workload};
use crate::core::resolution::{RegistryError, Resolved};

/// The ServiceAccounts and pull secrets of the namespaces in scope, by (namespace, name).
#[derive(Default, Debug, Clone)]
pub(crate) struct PullSecrets {
    /// ServiceAccount → the names of its `imagePullSecrets`, in order.
    pub(crate) service_accounts: HashMap<(String, String), Vec<String>>,
    /// docker-config Secret → its credentials by registry host.
    pub(crate) secrets: HashMap<(String, String), PullSecretCredentials>,
}

impl PullSecrets {
    /// The pull secrets the pods of `w` are created with: the pod spec's own, else its
    /// ServiceAccount's.
    pub(crate) fn secret_names<'a>(&'a self, w: &'a Workload) -> &'a [String] {
        if !w.pull_secrets.is_empty() {
            return &w.pull_secrets;
        }
        let sa = w.service_account.as_deref().unwrap_or("default");
        self.service_accounts
            .get(&(w.namespace.clone(), sa.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The credentials for `host` that the pods of `w` would try, in order (one per secret that
    /// holds one for the host; secrets of other namespaces are never consulted).
    /// Each comes with the secret it is from, for a refusal to name.
    pub(crate) fn candidates(&self, w: &Workload, host: &str) -> Vec<SourcedCredential> {
        let mut out: Vec<SourcedCredential> = vec![];
        for name in self.secret_names(w) {
            let key = (w.namespace.clone(), name.clone());
            if let Some(c) = self.secrets.get(&key).and_then(|s| s.get(host)) {
                if !out.iter().any(|o| o.credential == *c) {
                    out.push(SourcedCredential {
                        credential: c.clone(),
                        source: CredentialSource::PullSecret {
                            namespace: w.namespace.clone(),
                            name: name.clone(),
                        },
                    });
                }
            }
        }
        out
    }
}

type Results = HashMap<String, Result<Resolved, RegistryError>>;

/// Registry answers per workload: the same image may resolve for one namespace's workload (its
/// pull secret is good) and not for another's (its secret is broken). Built by the read pipeline;
/// looked up with the workload and the image's lookup key.
#[derive(Default, Debug, Clone)]
pub(crate) struct Resolutions {
    /// (namespace, kind, name) of a workload → index into `sets`.
    of: HashMap<(String, Kind, String), usize>,
    sets: Vec<Results>,
    /// For workloads not listed (and for callers that resolve without workloads).
    shared: Results,
}

impl Resolutions {
    /// Adds the answers for one group of workloads that share their credentials.
    pub(crate) fn add_group<'a>(
        &mut self,
        workloads: impl IntoIterator<Item = &'a Workload>,
        results: Results,
    ) {
        let i = self.sets.len();
        self.sets.push(results);
        for w in workloads {
            self.of
                .insert((w.namespace.clone(), w.kind, w.name.clone()), i);
        }
    }

    /// The answer for `image` (its lookup key, `state::lookup_ref(..).original()`) as seen by `w`.
    pub(crate) fn get(
        &self,
        w: &Workload,
        image: &str,
    ) -> Option<&Result<Resolved, RegistryError>> {
        match self.of.get(&(w.namespace.clone(), w.kind, w.name.clone())) {
            Some(&i) => self.sets[i].get(image),
            None => self.shared.get(image),
        }
    }
}

/// The same answers for every workload (tests, and commands that resolve without a cluster).
impl From<Results> for Resolutions {
    fn from(shared: Results) -> Self {
        Resolutions {
            shared,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::credentials::Credential;
    use std::collections::BTreeMap;

    fn wl(ns: &str, name: &str, secrets: &[&str], sa: Option<&str>) -> Workload {
        Workload {
            kind: Kind::Deployment,
            namespace: ns.into(),
            name: name.into(),
            release: "r".into(),
            component: None,
            containers: vec![],
            pod_selector: BTreeMap::new(),
            annotations: BTreeMap::new(),
            pull_secrets: secrets.iter().map(|s| s.to_string()).collect(),
            service_account: sa.map(Into::into),
            template_text: None,
            problem: None,
            resource_version: None,
        }
    }

    fn creds(host: &str, user: &str) -> PullSecretCredentials {
        let mut c = PullSecretCredentials::default();
        c.add_docker_config_json(
            format!(r#"{{"auths":{{"{host}":{{"username":"{user}","password":"p"}}}}}}"#)
                .as_bytes(),
        );
        c
    }

    fn user(c: &SourcedCredential) -> &str {
        match &c.credential {
            Credential::Basic { username, .. } => username,
            Credential::IdentityToken(_) => "token",
        }
    }

    #[test]
    fn secrets_stay_in_their_namespace_and_keep_their_order() {
        let mut p = PullSecrets::default();
        p.secrets
            .insert(("a".into(), "s".into()), creds("reg", "a-user"));
        p.secrets
            .insert(("b".into(), "s".into()), creds("reg", "b-user"));
        p.secrets
            .insert(("b".into(), "t".into()), creds("reg", "b-second"));
        p.secrets
            .insert(("b".into(), "other".into()), creds("elsewhere", "x"));
        let a = wl("a", "w", &["s"], None);
        let b = wl("b", "w", &["t", "other", "s"], None);
        let got: Vec<String> = p
            .candidates(&a, "reg")
            .iter()
            .map(|c| user(c).into())
            .collect();
        assert_eq!(got, ["a-user"]);
        let got: Vec<String> = p
            .candidates(&b, "reg")
            .iter()
            .map(|c| user(c).into())
            .collect();
        assert_eq!(got, ["b-second", "b-user"]);
        // Each names the secret it came from, in the workload's namespace.
        assert_eq!(
            p.candidates(&b, "reg")[0].source,
            CredentialSource::PullSecret {
                namespace: "b".into(),
                name: "t".into()
            }
        );
        // A workload naming a secret that exists only in another namespace gets nothing.
        let c = wl("c", "w", &["s"], None);
        assert!(p.candidates(&c, "reg").is_empty());
    }

    #[test]
    fn a_pod_spec_without_pull_secrets_uses_its_service_accounts() {
        let mut p = PullSecrets::default();
        p.secrets
            .insert(("a".into(), "sa-secret".into()), creds("reg", "sa"));
        p.secrets
            .insert(("a".into(), "own".into()), creds("reg", "own"));
        p.service_accounts
            .insert(("a".into(), "worker".into()), vec!["sa-secret".into()]);
        p.service_accounts
            .insert(("a".into(), "default".into()), vec!["own".into()]);
        let names = |w: &Workload| p.secret_names(w).to_vec();
        assert_eq!(names(&wl("a", "w", &[], Some("worker"))), ["sa-secret"]);
        assert_eq!(names(&wl("a", "w", &[], None)), ["own"], "default SA");
        // The pod spec's own list wins: admission adds the SA's only to a pod without any.
        assert_eq!(names(&wl("a", "w", &["own"], Some("worker"))), ["own"]);
        // Another namespace's ServiceAccount of the same name is not this one.
        assert!(names(&wl("b", "w", &[], Some("worker"))).is_empty());
    }

    #[test]
    fn resolutions_answer_per_workload() {
        let a = wl("a", "w", &[], None);
        let b = wl("b", "w", &[], None);
        let ok = |d: &str| {
            Ok(Resolved {
                source: "s".into(),
                mirrored: false,
                digest: d.into(),
                media_type: String::new(),
                platforms: vec![],
                platform_digest: None,
            })
        };
        let mut r = Resolutions::default();
        r.add_group([&a], [("img".to_string(), ok("sha256:a"))].into());
        r.add_group(
            [&b],
            [(
                "img".to_string(),
                Err(RegistryError::Denied {
                    host: "h".into(),
                    repository: "r".into(),
                }),
            )]
            .into(),
        );
        assert!(r.get(&a, "img").unwrap().is_ok());
        assert!(r.get(&b, "img").unwrap().is_err());
        assert!(r.get(&wl("c", "w", &[], None), "img").is_none());
    }
}
