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
pub(crate) struct ImageEdit {
    pub(crate) container: String,
    pub(crate) role: Role,
    pub(crate) index: usize,
    pub(crate) from: String,
    pub(crate) to: String,
}

/// Everything a command changes on one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectEdit {
    pub(crate) kind: Kind,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) release: String,
    pub(crate) images: Vec<ImageEdit>,
    /// Pod template text before and after (ConfigMaps only).
    #[serde(skip)]
    pub(crate) template: Option<(String, String)>,
    /// The bookkeeping annotation before and after (None = absent).
    #[serde(skip)]
    pub(crate) annotation: (Option<String>, Option<String>),
    /// Whether the object had any annotations at plan time (decides add vs. replace).
    #[serde(skip)]
    pub(crate) had_annotations: bool,
    /// Whether `annotation.0` was read from the legacy key (a pin by a build before v0.1.0): the
    /// patch then tests it there, removes it, and writes any records under the current key.
    #[serde(skip)]
    pub(crate) legacy_record: bool,
}

/// What the bookkeeping annotation records per container: the image before the pin, and the
/// image the pin wrote (so `unpin` can tell whether someone changed it since).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Recorded {
    pub(crate) original: String,
    pub(crate) pinned: String,
}

pub(crate) type Records = BTreeMap<String, Recorded>;

/// Key of a container in the records: `init:<name>` or `container:<name>`.
pub(crate) fn record_key(role: Role, container: &str) -> String {
    match role {
        Role::Init => format!("init:{container}"),
        Role::Container => format!("container:{container}"),
    }
}

/// How a container's `original-images` record relates to the container as it is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RecordState {
    /// No record: this tool never pinned the container (or unpinned it since).
    #[default]
    None,
    /// The container still holds the image the pin wrote: unpin restores the original.
    Current,
    /// The container holds another image than the pin wrote: the platform upgraded the
    /// Deployment since (Houston re-rendered the images; helm's three-way merge kept the
    /// annotation, which its chart does not render) or someone changed it. The recorded original
    /// is history, not something to restore: unpin refuses it, pin replaces the record.
    Stale,
    /// The container holds the very build the pin wrote, but as Houston renders it with the
    /// feature on: `repository@sha256:…`, no tag (Astronomer's "Create Deployments using Astro
    /// Runtime SHA256 digest"). Houston's own rendering replaced the pin: the record is history,
    /// not a problem. unpin leaves the container alone (restoring the tag would undo Houston's
    /// digest), pin leaves it as it is.
    Superseded,
}

impl RecordState {
    /// The state of `rec` for a container whose image is now `image`.
    pub(crate) fn of(rec: Option<&Recorded>, image: &str) -> RecordState {
        match rec {
            None => RecordState::None,
            Some(r) if r.pinned == image => RecordState::Current,
            Some(r) if same_build_tagless(&r.pinned, image) => RecordState::Superseded,
            Some(_) => RecordState::Stale,
        }
    }
}

/// Whether `image` is a tagless `repository@sha256:…` of the digest `pinned` holds (the
/// repository may differ: Houston renders from its own default Runtime repository).
fn same_build_tagless(pinned: &str, image: &str) -> bool {
    use crate::core::image_ref::ImageRef;
    let (Ok(p), Ok(i)) = (ImageRef::parse(pinned), ImageRef::parse(image)) else {
        return false;
    };
    i.tag().is_none() && i.digest().is_some() && i.digest() == p.digest()
}

pub(crate) fn parse_records(annotation: Option<&String>) -> Records {
    annotation
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default()
}

/// The records of an annotation, or why they cannot be read (the annotation is not the JSON
/// object of records a pin writes). Nothing in the message echoes a control character.
pub(crate) fn parse_records_checked(annotation: &str) -> Result<Records, String> {
    serde_json::from_str(annotation).map_err(|e| {
        format!(
            "the {} annotation is not the records a pin writes ({e}); fix or remove it with kubectl annotate",
            crate::core::inventory::ORIGINAL_IMAGES_ANNOTATION
        )
    })
}

/// The image a record would restore must be a valid reference, and a digest in it a valid
/// sha256 digest: the annotation is text anyone with write access to the object may have edited.
pub(crate) fn check_original(rec: &Recorded) -> Result<(), String> {
    let source = format!(
        "the original image recorded in the {} annotation",
        crate::core::inventory::ORIGINAL_IMAGES_ANNOTATION
    );
    let img = crate::core::image_ref::ImageRef::parse(&rec.original).map_err(|e| {
        format!(
            "{source} is not an image reference: {:?}: {}",
            crate::core::digest::shown(&e.input),
            e.reason
        )
    })?;
    if let Some(d) = img.digest() {
        crate::core::digest::Digest::parse_from(d, source).map_err(|e| e.to_string())?;
    }
    Ok(())
}

impl ObjectEdit {
    pub(crate) fn display_name(&self) -> String {
        format!("{}/{}", self.kind.lower(), self.name)
    }

    /// The edit that undoes this one, assuming this one was applied.
    pub(crate) fn inverse(&self) -> ObjectEdit {
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
            // This edit wrote the current key (or removed the legacy one): undo it there.
            legacy_record: false,
            ..self.clone()
        }
    }

    /// The JSON Patch for this edit. `pod_spec_path` is where the pod spec lives in the object.
    pub(crate) fn json_patch(&self) -> Value {
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
        // The records are tested too: two runs that change different containers of one object
        // both pass the image tests, and without this the second would overwrite the first's
        // records. A `test` of null passes only where the member is absent (kube-apiserver's
        // JSON Patch treats a missing member as null; seen on 1.20 in tests/it/hostile_cluster.rs).
        let (old, new) = (&self.annotation.0, &self.annotation.1);
        if old == new {
            return Value::Array(ops);
        }
        if self.legacy_record {
            let legacy_path = format!(
                "/metadata/annotations/{}",
                escape(crate::core::inventory::LEGACY_ORIGINAL_IMAGES_ANNOTATION)
            );
            ops.push(json!({"op": "test", "path": legacy_path, "value": old}));
            if let Some(new) = new {
                ops.push(json!({"op": "add", "path": key_path, "value": new}));
            }
            ops.push(json!({"op": "remove", "path": legacy_path}));
            return Value::Array(ops);
        }
        if !self.had_annotations {
            ops.push(json!({"op": "test", "path": "/metadata/annotations", "value": null}));
        } else {
            ops.push(json!({"op": "test", "path": key_path, "value": old}));
        }
        match (old, new) {
            (_, Some(new)) if !self.had_annotations => {
                ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {crate::core::inventory::ORIGINAL_IMAGES_ANNOTATION: new}}));
            }
            (_, Some(new)) => ops.push(json!({"op": "add", "path": key_path, "value": new})),
            (Some(_), None) => ops.push(json!({"op": "remove", "path": key_path})),
            (None, None) => {}
        }
        Value::Array(ops)
    }
}

/// The pod-template text after applying image edits (`from` -> `to`, each image once).
pub(crate) fn template_after(text: &str, edits: &[ImageEdit]) -> Result<(String, String), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(annotation: (Option<&str>, Option<&str>), had: bool) -> ObjectEdit {
        ObjectEdit {
            kind: Kind::Deployment,
            namespace: "ns".into(),
            name: "r-webserver".into(),
            release: "r".into(),
            images: vec![ImageEdit {
                container: "webserver".into(),
                role: Role::Container,
                index: 0,
                from: "a:1".into(),
                to: "a:1@sha256:x".into(),
            }],
            template: None,
            annotation: (annotation.0.map(Into::into), annotation.1.map(Into::into)),
            had_annotations: had,
            legacy_record: false,
        }
    }

    fn tail(e: &ObjectEdit) -> Vec<Value> {
        let ops = e.json_patch();
        let ops = ops.as_array().unwrap();
        ops[ops.len() - 2..].to_vec()
    }

    #[test]
    fn a_tagless_rendering_of_the_pinned_build_supersedes_the_record() {
        const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        const E: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let rec = Recorded {
            original: "q.io/astronomer/astro-runtime:9.3.0".into(),
            pinned: format!("q.io/astronomer/astro-runtime:9.3.0@{D}"),
        };
        let of = |image: &str| RecordState::of(Some(&rec), image);
        assert_eq!(of(&rec.pinned), RecordState::Current);
        assert_eq!(
            of(&format!("q.io/astronomer/astro-runtime@{D}")),
            RecordState::Superseded
        );
        assert_eq!(
            of(&format!("mirror.example/astronomer/astro-runtime@{D}")),
            RecordState::Superseded,
            "Houston's own repository, same build"
        );
        assert_eq!(
            of(&format!("q.io/astronomer/astro-runtime@{E}")),
            RecordState::Stale,
            "another build: an upgrade"
        );
        assert_eq!(
            of(&format!("q.io/astronomer/astro-runtime:9.4.0@{D}")),
            RecordState::Stale,
            "a tag is not Houston's digest rendering"
        );
        assert_eq!(
            serde_json::to_value(RecordState::Superseded).unwrap(),
            "superseded"
        );
    }

    const KEY: &str = "/metadata/annotations/astro-sha.github.io~1original-images";
    const LEGACY_KEY: &str = "/metadata/annotations/astro-sha.astronomer.io~1original-images";

    /// Records only under the key of builds before v0.1.0: tested there and removed there; what
    /// remains goes under the current key. Its inverse (a rollback) puts them back under the
    /// current key.
    #[test]
    fn records_at_the_legacy_key_move_to_the_current_one() {
        let legacy = |annotation| ObjectEdit {
            legacy_record: true,
            ..edit(annotation, true)
        };
        let ops = legacy((Some("{\"a\":1}"), None)).json_patch();
        let ops = ops.as_array().unwrap();
        assert_eq!(
            ops[ops.len() - 2..].to_vec(),
            vec![
                json!({"op": "test", "path": LEGACY_KEY, "value": "{\"a\":1}"}),
                json!({"op": "remove", "path": LEGACY_KEY}),
            ]
        );
        let ops = legacy((Some("{\"a\":1}"), Some("{\"b\":2}"))).json_patch();
        let ops = ops.as_array().unwrap();
        assert_eq!(
            ops[ops.len() - 3..].to_vec(),
            vec![
                json!({"op": "test", "path": LEGACY_KEY, "value": "{\"a\":1}"}),
                json!({"op": "add", "path": KEY, "value": "{\"b\":2}"}),
                json!({"op": "remove", "path": LEGACY_KEY}),
            ]
        );
        let inverse = legacy((Some("{\"a\":1}"), None)).inverse();
        assert_eq!(
            tail(&inverse),
            vec![
                json!({"op": "test", "path": KEY, "value": null}),
                json!({"op": "add", "path": KEY, "value": "{\"a\":1}"}),
            ]
        );
    }

    #[test]
    fn the_records_the_plan_saw_are_tested_before_they_are_replaced() {
        assert_eq!(
            tail(&edit((Some("{\"a\":1}"), Some("{\"a\":2}")), true)),
            vec![
                json!({"op": "test", "path": KEY, "value": "{\"a\":1}"}),
                json!({"op": "add", "path": KEY, "value": "{\"a\":2}"}),
            ]
        );
        // Absent at plan time: tested as null (absent), so a record written meanwhile is kept.
        assert_eq!(
            tail(&edit((None, Some("{}")), true)),
            vec![
                json!({"op": "test", "path": KEY, "value": null}),
                json!({"op": "add", "path": KEY, "value": "{}"}),
            ]
        );
        // No annotations at all: the whole map must still be absent.
        assert_eq!(
            tail(&edit((None, Some("{}")), false))[0],
            json!({"op": "test", "path": "/metadata/annotations", "value": null})
        );
        // unpin's removal tests what it removes; the rollback of a pin tests what the pin wrote.
        assert_eq!(
            tail(&edit((Some("{}"), None), true)),
            vec![
                json!({"op": "test", "path": KEY, "value": "{}"}),
                json!({"op": "remove", "path": KEY}),
            ]
        );
        let inv = edit((None, Some("{\"b\":1}")), false).inverse();
        assert_eq!(
            tail(&inv),
            vec![
                json!({"op": "test", "path": KEY, "value": "{\"b\":1}"}),
                json!({"op": "remove", "path": KEY}),
            ]
        );
        // Unchanged records: no annotation op at all.
        let same = edit((Some("{}"), Some("{}")), true).json_patch();
        assert!(same
            .as_array()
            .unwrap()
            .iter()
            .all(|o| !o["path"].as_str().unwrap().starts_with("/metadata")));
    }
}
