//! Writing image changes to the cluster, and taking them back.
//!
//! Every write is a JSON Patch whose `test` operations state what the plan saw: if anything changed
//! an image (or the pod template) between plan and apply, the API server refuses the patch and
//! nothing of that object is overwritten. The same edit, inverted, is the rollback.

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::core::inventory::{Kind, Role, POD_TEMPLATE_KEY};
use crate::kube::client::Cluster;

/// One container image change inside an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageEdit {
    pub container: String,
    pub role: Role,
    pub index: usize,
    pub from: String,
    pub to: String,
}

/// Everything a command changes on one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectEdit {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub release: String,
    pub images: Vec<ImageEdit>,
    /// Pod template text before and after (ConfigMaps only).
    #[serde(skip)]
    pub template: Option<(String, String)>,
    /// The bookkeeping annotation before and after (None = absent).
    #[serde(skip)]
    pub annotation: (Option<String>, Option<String>),
    /// Whether the object had any annotations at plan time (decides add vs. replace).
    #[serde(skip)]
    pub had_annotations: bool,
}

/// What the bookkeeping annotation records per container: the image before the pin, and the
/// image the pin wrote (so `unpin` can tell whether someone changed it since).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub original: String,
    pub pinned: String,
}

pub type Records = BTreeMap<String, Recorded>;

/// Key of a container in the records: `init:<name>` or `container:<name>`.
pub fn record_key(role: Role, container: &str) -> String {
    match role {
        Role::Init => format!("init:{container}"),
        Role::Container => format!("container:{container}"),
    }
}

pub fn parse_records(annotation: Option<&String>) -> Records {
    annotation
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default()
}

impl ObjectEdit {
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind.lower(), self.name)
    }

    /// The edit that undoes this one, assuming this one was applied.
    pub fn inverse(&self) -> ObjectEdit {
        ObjectEdit {
            images: self
                .images
                .iter()
                .map(|i| ImageEdit {
                    from: i.to.clone(),
                    to: i.from.clone(),
                    ..i.clone()
                })
                .collect(),
            template: self.template.as_ref().map(|(a, b)| (b.clone(), a.clone())),
            annotation: (self.annotation.1.clone(), self.annotation.0.clone()),
            had_annotations: self.had_annotations || self.annotation.1.is_some(),
            ..self.clone()
        }
    }

    /// The JSON Patch for this edit. `pod_spec_path` is where the pod spec lives in the object.
    pub fn json_patch(&self) -> Value {
        let mut ops = vec![];
        if let Some((old, new)) = &self.template {
            let path = format!("/data/{}", escape(POD_TEMPLATE_KEY));
            ops.push(json!({"op": "test", "path": path, "value": old}));
            ops.push(json!({"op": "replace", "path": path, "value": new}));
        } else {
            let base = pod_spec_path(self.kind);
            for i in &self.images {
                let list = match i.role {
                    Role::Init => "initContainers",
                    Role::Container => "containers",
                };
                let path = format!("{base}/{list}/{}/image", i.index);
                // Test the name too: a reordered container list must not get the wrong image.
                ops.push(json!({"op": "test", "path": format!("{base}/{list}/{}/name", i.index), "value": i.container}));
                ops.push(json!({"op": "test", "path": path, "value": i.from}));
                ops.push(json!({"op": "replace", "path": path, "value": i.to}));
            }
        }
        let key_path = format!(
            "/metadata/annotations/{}",
            escape(crate::core::inventory::ORIGINAL_IMAGES_ANNOTATION)
        );
        match (&self.annotation.0, &self.annotation.1) {
            (old, Some(new)) if old.as_ref() != Some(new) => {
                if !self.had_annotations {
                    ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {crate::core::inventory::ORIGINAL_IMAGES_ANNOTATION: new}}));
                } else {
                    ops.push(json!({"op": "add", "path": key_path, "value": new}));
                }
            }
            (Some(_), None) => ops.push(json!({"op": "remove", "path": key_path})),
            _ => {}
        }
        Value::Array(ops)
    }
}

/// The pod-template text after applying image edits (`from` -> `to`, each image once).
pub fn template_after(text: &str, edits: &[ImageEdit]) -> Result<(String, String), String> {
    let mut changes: Vec<(String, String)> = vec![];
    for e in edits {
        if !changes.iter().any(|(f, _)| *f == e.from) {
            changes.push((e.from.clone(), e.to.clone()));
        }
    }
    crate::core::podtemplate::replace_images(text, &changes).map(|new| (text.to_string(), new))
}

fn pod_spec_path(kind: Kind) -> &'static str {
    match kind {
        Kind::Deployment | Kind::StatefulSet => "/spec/template/spec",
        Kind::CronJob => "/spec/jobTemplate/spec/template/spec",
        Kind::ConfigMap => "",
    }
}

/// JSON Pointer escaping (RFC 6901).
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Why a write failed.
#[derive(Debug)]
pub enum ApplyError {
    /// A `test` failed: the object changed since the plan.
    Changed(String),
    /// The object is gone.
    Gone,
    Api(crate::error::Error),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Changed(m) => write!(f, "changed since the plan was made ({m})"),
            ApplyError::Gone => write!(f, "deleted since the plan was made"),
            ApplyError::Api(e) => write!(f, "{}", e.message),
        }
    }
}

/// Sends one edit. `cron` is the CronJob API resource the server offers.
pub async fn apply(
    cluster: &Cluster,
    edit: &ObjectEdit,
    server_dry_run: bool,
    cron: Option<&ApiResource>,
) -> Result<(), ApplyError> {
    let patch: json_patch::Patch = serde_json::from_value(edit.json_patch()).map_err(|e| {
        ApplyError::Api(crate::error::Error::new(format!(
            "internal: bad JSON patch: {e}"
        )))
    })?;
    let pp = PatchParams {
        dry_run: server_dry_run,
        ..Default::default()
    };
    let ns = edit.namespace.as_str();
    let client = cluster.client.clone();
    let res = match edit.kind {
        Kind::Deployment => Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client, ns)
            .patch(&edit.name, &pp, &Patch::Json::<()>(patch))
            .await
            .map(|_| ()),
        Kind::StatefulSet => Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(client, ns)
            .patch(&edit.name, &pp, &Patch::Json::<()>(patch))
            .await
            .map(|_| ()),
        Kind::ConfigMap => Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, ns)
            .patch(&edit.name, &pp, &Patch::Json::<()>(patch))
            .await
            .map(|_| ()),
        Kind::CronJob => {
            let Some(ar) = cron else {
                return Err(ApplyError::Api(crate::error::Error::new(
                    "this API server serves no CronJob API",
                )));
            };
            Api::<DynamicObject>::namespaced_with(client, ns, ar)
                .patch(&edit.name, &pp, &Patch::Json::<()>(patch))
                .await
                .map(|_| ())
        }
    };
    res.map_err(|e| match &e {
        kube::Error::Api(s) if s.code == 404 => ApplyError::Gone,
        kube::Error::Api(s) if is_precondition_failure(s.code, &s.message) => {
            ApplyError::Changed(s.message.clone())
        }
        _ => ApplyError::Api(cluster.err(e, "patch", edit.kind.resource(), Some(ns))),
    })
}

/// Whether a refused patch means "the object changed since the plan" (a `test` op failed, or a
/// concurrent writer won), as opposed to a write refused for another reason (invalid object,
/// too large, forbidden), which must be reported as what it is.
fn is_precondition_failure(code: u16, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    // 1.20 answers a failed `test` op with a bare 422 and this generic message (the op is only
    // named in the details); newer servers put the json-patch error text in the message.
    let test_failed = m.contains("testing value") || m.contains("test operation");
    match code {
        422 => test_failed || m == "the server rejected our request due to an error in our request",
        409 => true,
        500 => test_failed,
        _ => false,
    }
}

/// What happened to each object of a release.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub object: String,
    pub namespace: String,
    pub result: String,
}

/// Applies a release's edits all-or-nothing: on the first failure, the edits already made are
/// undone in reverse order. Returns the per-object outcomes and the failure, if any.
pub async fn apply_release(
    cluster: &Cluster,
    edits: &[ObjectEdit],
    server_dry_run: bool,
    cron: Option<&ApiResource>,
    done_word: &str,
) -> (Vec<Outcome>, Option<(String, ApplyError)>) {
    let mut outcomes: Vec<Outcome> = vec![];
    let mut applied: Vec<&ObjectEdit> = vec![];
    for (i, edit) in edits.iter().enumerate() {
        match apply(cluster, edit, server_dry_run, cron).await {
            Ok(()) => {
                outcomes.push(Outcome {
                    object: edit.display_name(),
                    namespace: edit.namespace.clone(),
                    result: done_word.to_string(),
                });
                applied.push(edit);
            }
            Err(err) => {
                outcomes.push(Outcome {
                    object: edit.display_name(),
                    namespace: edit.namespace.clone(),
                    result: format!("failed: {err}"),
                });
                for rest in &edits[i + 1..] {
                    outcomes.push(Outcome {
                        object: rest.display_name(),
                        namespace: rest.namespace.clone(),
                        result: "not attempted".into(),
                    });
                }
                if !server_dry_run {
                    for done in applied.iter().rev() {
                        let r = apply(cluster, &done.inverse(), false, cron).await;
                        if let Some(o) = outcomes.iter_mut().find(|o| {
                            o.object == done.display_name() && o.namespace == done.namespace
                        }) {
                            o.result = match r {
                                Ok(()) => "rolled back".into(),
                                Err(e) => format!("ROLLBACK FAILED: {e}"),
                            };
                        }
                    }
                }
                return (outcomes, Some((edit.display_name(), err)));
            }
        }
    }
    (outcomes, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit() -> ObjectEdit {
        ObjectEdit {
            kind: Kind::StatefulSet,
            namespace: "ns".into(),
            name: "r-scheduler".into(),
            release: "r".into(),
            images: vec![ImageEdit {
                container: "wait".into(),
                role: Role::Init,
                index: 0,
                from: "a:1".into(),
                to: "a:1@sha256:x".into(),
            }],
            template: None,
            annotation: (None, Some("{}".into())),
            had_annotations: false,
        }
    }

    #[test]
    fn patch_tests_name_and_image_then_replaces() {
        let p = edit().json_patch();
        let ops = p.as_array().unwrap();
        assert_eq!(
            ops[0],
            json!({"op":"test","path":"/spec/template/spec/initContainers/0/name","value":"wait"})
        );
        assert_eq!(
            ops[1],
            json!({"op":"test","path":"/spec/template/spec/initContainers/0/image","value":"a:1"})
        );
        assert_eq!(
            ops[2],
            json!({"op":"replace","path":"/spec/template/spec/initContainers/0/image","value":"a:1@sha256:x"})
        );
        assert_eq!(ops[3]["path"], "/metadata/annotations");
        serde_json::from_value::<json_patch::Patch>(p).unwrap();
    }

    #[test]
    fn only_failed_preconditions_count_as_changed() {
        // What kube-apiserver 1.20 answers to a failed `test` op.
        assert!(is_precondition_failure(
            422,
            "the server rejected our request due to an error in our request"
        ));
        assert!(is_precondition_failure(
            422,
            "testing value /spec/template/spec/containers/0/image failed: test failed"
        ));
        assert!(is_precondition_failure(
            409,
            "Operation cannot be fulfilled on deployments.apps \"x\": the object has been modified; please apply your changes to the latest version and try again"
        ));
        // A validation error is not a concurrent change, even though it is a 422.
        assert!(!is_precondition_failure(
            422,
            "Deployment.apps \"x\" is invalid: spec.template.spec.containers[0].image: Invalid value"
        ));
        assert!(!is_precondition_failure(
            413,
            "Request entity too large: limit is 3145728"
        ));
        // "latest" contains "test": a 500 that mentions it is still a server error.
        assert!(!is_precondition_failure(
            500,
            "please use the latest client"
        ));
        assert!(!is_precondition_failure(403, "forbidden"));
    }

    #[test]
    fn inverse_swaps_everything() {
        let inv = edit().inverse();
        assert_eq!(inv.images[0].from, "a:1@sha256:x");
        assert_eq!(inv.images[0].to, "a:1");
        assert_eq!(inv.annotation, (Some("{}".into()), None));
        let ops = inv.json_patch();
        assert_eq!(
            ops.as_array().unwrap().last().unwrap(),
            &json!({"op":"remove","path":"/metadata/annotations/astro-sha.astronomer.io~1original-images"})
        );
    }

    #[test]
    fn cronjob_and_template_paths() {
        let mut e = edit();
        e.kind = Kind::CronJob;
        assert!(e.json_patch()[0]["path"]
            .as_str()
            .unwrap()
            .starts_with("/spec/jobTemplate/spec/template/spec/"));
        e.kind = Kind::ConfigMap;
        e.template = Some(("old".into(), "new".into()));
        let p = e.json_patch();
        assert_eq!(
            p[0],
            json!({"op":"test","path":"/data/pod_template_file.yaml","value":"old"})
        );
        assert_eq!(
            p[1],
            json!({"op":"replace","path":"/data/pod_template_file.yaml","value":"new"})
        );
    }
}
