//! Plans: what a pin or an unpin changes, computed from the model alone. Workloads and registry
//! (or catalog) digests in; rows to show, object edits to apply and per-release problems out. Any
//! problem in a release stops the whole run before anything is written.

use std::collections::{HashMap, HashSet};

use serde::{Serialize, Serializer};

use crate::core::catalog::{self, Section};
use crate::core::edit::{self, ImageEdit, ObjectEdit, Recorded};
use crate::core::inventory::{
    ContainerImage, Kind, RuntimeMatcher, Workload, ORIGINAL_IMAGES_ANNOTATION,
};
use crate::core::pullsecrets::Resolutions;
use crate::core::short_digest;
use crate::core::state::lookup_ref;
use crate::registry::{ImageRef, Resolved};

/// What a plan does to one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Pin the tag to its digest.
    Pin,
    /// Already pinned, but the tag moved and `--repin` was given.
    Repin,
    /// Already pinned, the tag moved, and the pin is kept (the tag now points to `now`).
    KeptMoved { now: String },
    /// Already pinned; nothing to do.
    AlreadyPinned,
    /// Unpin: the container still runs what the pin wrote.
    Unpin,
    /// Unpin with `--force`: the container runs something else, restored anyway.
    UnpinForced,
    /// Unpin: the container runs its original image already.
    NotPinned,
}

impl Action {
    /// Whether the row writes something.
    pub fn changes(&self) -> bool {
        matches!(
            self,
            Action::Pin | Action::Repin | Action::Unpin | Action::UnpinForced
        )
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Pin => f.write_str("pin"),
            Action::Repin => f.write_str("repin: tag moved"),
            Action::KeptMoved { now } => write!(
                f,
                "kept: tag now points to {} (use --repin)",
                short_digest(now)
            ),
            Action::AlreadyPinned => f.write_str("unchanged: already pinned"),
            Action::Unpin => f.write_str("unpin"),
            Action::UnpinForced => f.write_str("unpin (forced)"),
            Action::NotPinned => f.write_str("unchanged: not pinned"),
        }
    }
}

/// Serialized as the sentence the table shows.
impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One line of the plan.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlanRow {
    pub namespace: String,
    pub release: String,
    pub workload: String,
    pub container: String,
    pub from: String,
    pub to: Option<String>,
    pub action: Action,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub rows: Vec<PlanRow>,
    pub edits: Vec<ObjectEdit>,
    /// Problems that stop the run (per release).
    pub problems: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// Options for planning.
pub struct PlanOptions<'a> {
    pub drop_tag: bool,
    pub repin: bool,
    pub matcher: &'a RuntimeMatcher,
    /// Digests from the releases ConfigMap: image tag lookups by (is_airflow3, tag).
    pub configmap: Option<&'a CatalogDigests>,
}

/// Digests listed in the imported catalog, by generation and tag. Only valid digests are kept;
/// an entry whose digest field holds anything else is remembered as a problem (its message names
/// the entry), so that a pin that needs it stops instead of writing it or silently asking the
/// registry.
#[derive(Default, Debug)]
pub struct CatalogDigests {
    pub airflow2: HashMap<String, String>,
    pub airflow3: HashMap<String, String>,
    bad2: HashMap<String, String>,
    bad3: HashMap<String, String>,
}

impl CatalogDigests {
    /// Reads the catalog JSON; `field` is the dotted digest path inside each entry.
    pub fn from_catalog(json: &serde_json::Value, field: &str) -> Self {
        let mut out = CatalogDigests::default();
        for (section, versions) in catalog::sections(json) {
            let (good, bad) = match section {
                Section::Airflow2 => (&mut out.airflow2, &mut out.bad2),
                Section::Airflow3 => (&mut out.airflow3, &mut out.bad3),
            };
            for (tag, entry) in versions {
                let Some(value) = catalog::string_at(entry, field) else {
                    continue;
                };
                let source = format!(
                    "entry {} {:?} ({field})",
                    section.key(),
                    crate::core::digest::shown(tag)
                );
                match crate::core::digest::Digest::parse_from(value, source) {
                    Ok(d) => good.insert(tag.clone(), d.to_string()),
                    Err(e) => bad.insert(tag.clone(), e.to_string()),
                };
            }
        }
        out
    }

    /// Airflow 3 Runtime lives in a repository named `runtime`; Airflow 2 in `astro-runtime`.
    pub fn lookup(&self, image: &ImageRef) -> Option<&String> {
        self.lookup_checked(image).ok().flatten()
    }

    /// [`Self::lookup`], but an entry for the image's tag whose digest is not valid is an error
    /// (the message names the entry and the value, escaped).
    pub fn lookup_checked(&self, image: &ImageRef) -> Result<Option<&String>, &str> {
        let Some(tag) = image.tag() else {
            return Ok(None);
        };
        let a3 = image.repository() == "runtime" || image.repository().ends_with("/runtime");
        let order = if a3 {
            [(&self.airflow3, &self.bad3), (&self.airflow2, &self.bad2)]
        } else {
            [(&self.airflow2, &self.bad2), (&self.airflow3, &self.bad3)]
        };
        for (good, bad) in order {
            if let Some(d) = good.get(tag) {
                return Ok(Some(d));
            }
            if let Some(e) = bad.get(tag) {
                return Err(e);
            }
        }
        Ok(None)
    }
}

fn moved(pin: &str, r: &Resolved) -> bool {
    r.digest != pin
        && r.platform_digest.as_deref() != Some(pin)
        && !r.platforms.iter().any(|p| p.digest == pin)
}

/// Pure: the edits that pin the given workloads.
pub fn plan(workloads: &[Workload], resolved: &Resolutions, opts: &PlanOptions) -> Plan {
    let mut out = Plan::default();
    let mut releases_with_runtime: HashSet<(String, String)> = HashSet::new();
    let mut releases: Vec<(String, String)> = vec![];
    for w in workloads {
        let key = (w.namespace.clone(), w.release.clone());
        if !releases.contains(&key) {
            releases.push(key.clone());
        }
        if let Some(problem) = &w.problem {
            out.problems.push((
                w.release.clone(),
                format!("{}: {problem}", w.display_name()),
            ));
            continue;
        }
        let mut records = edit::parse_records(w.annotations.get(ORIGINAL_IMAGES_ANNOTATION));
        let before_records = records.clone();
        let mut edits: Vec<ImageEdit> = vec![];
        for c in &w.containers {
            let img = match ImageRef::parse(&c.image) {
                Ok(img) => img,
                Err(e) => {
                    // A Runtime image with a broken reference: the release cannot be pinned
                    // whole, so it is not pinned at all (a partial pin would hide it).
                    if opts.matcher.looks_like_runtime(&c.image) {
                        releases_with_runtime.insert(key.clone());
                        out.problems.push((
                            w.release.clone(),
                            format!(
                                "{} container {}: {e}; fix the workload's image, then pin",
                                w.display_name(),
                                c.container
                            ),
                        ));
                    }
                    continue;
                }
            };
            if !opts.matcher.is_runtime(&img) {
                continue;
            }
            releases_with_runtime.insert(key.clone());
            let to = target(w, c, &img, resolved, opts, &mut out);
            if let Some(to) = to {
                let rk = edit::record_key(c.role, &c.container);
                records
                    .entry(rk)
                    .and_modify(|r| r.pinned = to.clone())
                    .or_insert_with(|| Recorded {
                        original: c.image.clone(),
                        pinned: to.clone(),
                    });
                edits.push(ImageEdit {
                    container: c.container.clone(),
                    role: c.role,
                    index: c.index,
                    from: c.image.clone(),
                    to,
                });
            }
        }
        if edits.is_empty() {
            continue;
        }
        if let Some(e) = object_edit(w, edits, &records, &before_records, &mut out) {
            out.edits.push(e);
        }
    }
    for (ns, rel) in releases {
        if !releases_with_runtime.contains(&(ns.clone(), rel.clone())) {
            out.problems.push((rel.clone(), format!("release {rel} in namespace {ns} has no Runtime container (check --runtime-repository, or use --all-images)")));
        }
    }
    out
}

/// What one Runtime container of `w` is pinned to (`None`: left as it is), with its plan row; a
/// container that cannot be pinned adds a problem for its release.
fn target(
    w: &Workload,
    c: &ContainerImage,
    img: &ImageRef,
    resolved: &Resolutions,
    opts: &PlanOptions,
    out: &mut Plan,
) -> Option<String> {
    let row = |to: Option<String>, action: Action| PlanRow {
        namespace: w.namespace.clone(),
        release: w.release.clone(),
        workload: w.display_name(),
        container: c.container.clone(),
        from: c.image.clone(),
        to,
        action,
    };
    let registry = lookup_ref(img).and_then(|l| resolved.get(w, l.original()));
    let from_cm = opts.configmap.and_then(|m| m.lookup(img));
    if let Some(pin) = img.digest() {
        match registry {
            Some(Ok(r)) if moved(pin, r) => {
                if opts.repin {
                    let new = r.pin_digest().to_string();
                    let to = img.pinned(&new, opts.drop_tag);
                    out.rows.push(row(Some(to.clone()), Action::Repin));
                    Some(to)
                } else {
                    out.rows.push(row(
                        None,
                        Action::KeptMoved {
                            now: r.pin_digest().to_string(),
                        },
                    ));
                    None
                }
            }
            _ => {
                out.rows.push(row(None, Action::AlreadyPinned));
                None
            }
        }
    } else {
        let reg_digest = match registry {
            Some(Ok(r)) => Some(r.pin_digest().to_string()),
            _ => None,
        };
        let digest = match (opts.configmap.is_some(), from_cm, &reg_digest) {
            (true, Some(cm), reg) => {
                if let Some(reg) = reg.as_ref().filter(|r| *r != cm) {
                    out.notes.push(format!(
                        "{} in {}/{}: the releases ConfigMap says {} but the registry says {}; using the ConfigMap's (Houston's)",
                        c.image, w.namespace, w.display_name(), cm, reg
                    ));
                }
                Some(cm.clone())
            }
            (true, None, _) => {
                out.problems.push((w.release.clone(), format!("tag {} has no digest in the releases ConfigMap (run `kubectl astro-sha import` with this version selected, or pin from the registry without --from-configmap)", c.image)));
                None
            }
            (false, _, Some(d)) => Some(d.clone()),
            (false, _, None) => {
                let why = match registry {
                    Some(Err(e)) => e.to_string(),
                    _ => "no tag to resolve".into(),
                };
                out.problems.push((
                    w.release.clone(),
                    format!("cannot resolve {}: {why}", c.image),
                ));
                None
            }
        };
        digest.map(|d| {
            let to = img.pinned(&d, opts.drop_tag);
            out.rows.push(row(Some(to.clone()), Action::Pin));
            to
        })
    }
}

/// The object edit for `w`'s image edits: the pod template text and the `original-images`
/// records, when they change. `None` (and a problem) when the template cannot be edited.
fn object_edit(
    w: &Workload,
    edits: Vec<ImageEdit>,
    records: &edit::Records,
    before_records: &edit::Records,
    out: &mut Plan,
) -> Option<ObjectEdit> {
    let template = match (&w.kind, &w.template_text) {
        (Kind::ConfigMap, Some(text)) => match edit::template_after(text, &edits) {
            Ok(pair) => Some(pair),
            Err(e) => {
                out.problems
                    .push((w.release.clone(), format!("{}: {e}", w.display_name())));
                return None;
            }
        },
        _ => None,
    };
    let old_ann = w.annotations.get(ORIGINAL_IMAGES_ANNOTATION).cloned();
    let new_ann = if records == before_records {
        old_ann.clone()
    } else {
        serde_json::to_string(records).ok()
    };
    Some(ObjectEdit {
        kind: w.kind,
        namespace: w.namespace.clone(),
        name: w.name.clone(),
        release: w.release.clone(),
        images: edits,
        template,
        annotation: (old_ann, new_ann),
        had_annotations: !w.annotations.is_empty(),
    })
}

/// Pure: the edits that restore recorded images.
pub fn unpin_plan(workloads: &[Workload], force: bool) -> Plan {
    let mut out = Plan::default();
    for w in workloads {
        let Some(ann) = w.annotations.get(ORIGINAL_IMAGES_ANNOTATION) else {
            continue;
        };
        let records = match edit::parse_records_checked(ann) {
            Ok(r) => r,
            Err(e) => {
                out.problems
                    .push((w.release.clone(), format!("{}: {e}", w.display_name())));
                continue;
            }
        };
        let mut edits = vec![];
        let mut kept = records.clone();
        for c in &w.containers {
            let key = edit::record_key(c.role, &c.container);
            let Some(rec) = records.get(&key) else {
                continue;
            };
            let row = |to: Option<String>, action: Action| PlanRow {
                namespace: w.namespace.clone(),
                release: w.release.clone(),
                workload: w.display_name(),
                container: c.container.clone(),
                from: c.image.clone(),
                to,
                action,
            };
            if let Err(e) = edit::check_original(rec) {
                out.problems.push((
                    w.release.clone(),
                    format!("{} container {}: {e}", w.display_name(), c.container),
                ));
                continue;
            }
            if c.image == rec.original {
                out.rows.push(row(None, Action::NotPinned));
                kept.remove(&key);
                continue;
            }
            if c.image != rec.pinned && !force {
                out.problems.push((
                    w.release.clone(),
                    format!("{} container {}: image is {} but the pin wrote {}; someone changed it since (use --force to restore {} anyway)", w.display_name(), c.container, c.image, rec.pinned, rec.original),
                ));
                continue;
            }
            out.rows.push(row(
                Some(rec.original.clone()),
                if c.image == rec.pinned {
                    Action::Unpin
                } else {
                    Action::UnpinForced
                },
            ));
            kept.remove(&key);
            edits.push(ImageEdit {
                container: c.container.clone(),
                role: c.role,
                index: c.index,
                from: c.image.clone(),
                to: rec.original.clone(),
            });
        }
        if edits.is_empty() && kept == records {
            continue;
        }
        let template = match (&w.kind, &w.template_text) {
            (Kind::ConfigMap, Some(text)) if !edits.is_empty() => {
                match edit::template_after(text, &edits) {
                    Ok(pair) => Some(pair),
                    Err(e) => {
                        out.problems
                            .push((w.release.clone(), format!("{}: {e}", w.display_name())));
                        continue;
                    }
                }
            }
            _ => None,
        };
        let new_ann = if kept.is_empty() {
            None
        } else {
            serde_json::to_string(&kept).ok()
        };
        out.edits.push(ObjectEdit {
            kind: w.kind,
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            release: w.release.clone(),
            images: edits,
            template,
            annotation: (Some(ann.clone()), new_ann),
            had_annotations: true,
        });
    }
    out
}
