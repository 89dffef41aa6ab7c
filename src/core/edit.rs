//! The edits a plan makes to one object: which container images change, the pod template text
//! before and after, and the `original-images` records that let unpin restore exactly. Pure: the
//! JSON Patch (with its `test` operations) is computed here; `kube::apply` sends it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::core::inventory::{Kind, Role, POD_TEMPLATE_KEY};

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
