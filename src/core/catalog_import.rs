//! The pure part of `import`: what one run does to the Runtime releases catalog. The source
//! catalog, what the releases ConfigMap holds and the registry's answers go in; out come the
//! catalog to write, one row per selected version (new, unchanged, moved, missing), whether it may
//! be written, and the ConfigMap object and annotations that store it. No client, no printing:
//! `commands::import` reads, resolves what [`ImportPlan::needs`] names, and writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::core::catalog::{self, Catalog, DigestField, Section, Selection, Skip};
use crate::core::image_ref::ImageRef;
use crate::core::names::{
    CATALOG_CHANGED_AT_ANNOTATION, DIGESTS_ANNOTATION, DIGEST_FIELD_ANNOTATION,
    IMPORTED_AT_ANNOTATION, MANAGED_BY, SOURCE_ANNOTATION, VERSIONS_ANNOTATION,
};
use crate::core::resolution::{RegistryError, Resolved};
use crate::error::{Error, Result};

/// The registry's answer for each image reference looked up (`repo:tag`, as in [`Item::image`]).
pub(crate) type Answers = HashMap<String, std::result::Result<Resolved, RegistryError>>;

/// `1 tag`, `2 tags`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What happened to one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Change {
    New,
    Unchanged,
    /// The recorded digest differs from the registry's: the tag was re-pushed.
    Moved,
    Missing,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Item {
    pub(crate) version: String,
    pub(crate) airflow: u8,
    pub(crate) channel: Option<String>,
    pub(crate) image: String,
    /// What the catalog holds for this version after the run.
    pub(crate) digest: Option<String>,
    /// What was recorded before (ConfigMap, else source).
    pub(crate) previous: Option<String>,
    /// What the registry says now (not looked up with --only-missing for recorded versions).
    pub(crate) registry: Option<String>,
    /// The reference actually looked up, when a mirror applied (`registrySource`, as in `show`:
    /// an image reference, not a time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) registry_source: Option<String>,
    pub(crate) change: Change,
    /// For `moved`: whether the registry's digest was written (--accept-moved).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// The full registry error, for the stderr listing.
    #[serde(skip)]
    pub(crate) error: Option<RegistryError>,
}

impl Item {
    pub(crate) fn label(&self) -> String {
        match self.change {
            Change::New => "new".into(),
            Change::Unchanged => "unchanged".into(),
            Change::Moved if self.accepted => "moved: accepted".into(),
            Change::Moved => "moved".into(),
            Change::Missing => format!(
                "missing: {}",
                self.reason.as_deref().unwrap_or("not resolved")
            ),
        }
    }

    /// A registry failure that is not "this tag is not there" (auth, TLS, timeout...): the run
    /// cannot tell whether the tag exists, so it never writes, even with --allow-missing.
    pub(crate) fn fatal(&self) -> bool {
        matches!(&self.error, Some(e) if !matches!(e, RegistryError::NotFound { .. } | RegistryError::NoPlatform { .. } | RegistryError::Invalid(_)))
    }
}

/// Everything [`plan`] needs besides the documents: the flags, as ready objects.
#[derive(Clone, Debug)]
pub(crate) struct ImportOptions {
    pub(crate) selection: Selection,
    pub(crate) field: DigestField,
    pub(crate) airflow2_repository: String,
    pub(crate) airflow3_repository: String,
    pub(crate) only_missing: bool,
    pub(crate) accept_moved: bool,
}

impl ImportOptions {
    fn repository(&self, s: Section) -> &str {
        match s {
            Section::Airflow2 => &self.airflow2_repository,
            Section::Airflow3 => &self.airflow3_repository,
        }
    }
}

/// What one import does: the catalog to write and the verdict on every selected version.
#[derive(Clone, Debug)]
pub(crate) struct ImportPlan {
    pub(crate) catalog: Catalog,
    pub(crate) items: Vec<Item>,
    /// Lookups this plan needs and `resolved` did not have: resolve them and plan again.
    pub(crate) needs: Vec<ImageRef>,
    /// Source versions left out by the filters.
    pub(crate) filtered: usize,
    /// Versions only the ConfigMap holds (kept as they are).
    pub(crate) kept: usize,
}

impl ImportPlan {
    pub(crate) fn count(&self, c: Change) -> usize {
        self.items.iter().filter(|i| i.change == c).count()
    }
    pub(crate) fn moved_kept(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.change == Change::Moved && !i.accepted)
            .count()
    }

    /// The counts of the report.
    pub(crate) fn summary(&self) -> Summary {
        Summary {
            versions: self.items.len(),
            new: self.count(Change::New),
            unchanged: self.count(Change::Unchanged),
            moved: self.count(Change::Moved),
            missing: self.count(Change::Missing),
            filtered: self.filtered,
            kept: self.kept,
        }
    }
}

/// Pure: decides every selected version's digest and builds the catalog to write.
/// `existing` is the ConfigMap's catalog (or `None`); `resolved` maps an image reference
/// (`repo:tag`, as in `Item::image`) to the registry's answer.
pub(crate) fn plan(
    source: &Catalog,
    existing: Option<&Catalog>,
    opts: &ImportOptions,
    resolved: &Answers,
) -> Result<ImportPlan> {
    let mut items = vec![];
    let mut needs = vec![];
    let mut ours = HashMap::new();
    let mut filtered = 0;
    let field = &opts.field;
    for (section, tag, entry) in source.entries() {
        if opts.selection.check(section, tag, entry).is_some() {
            filtered += 1;
            continue;
        }
        let at = |what: &str, e: String| {
            Error::new(format!("{what}: {}.{tag:?}: {e}", section.key())).hint(format!(
                "fix that field, or record digests elsewhere with --digest-field (now {field})"
            ))
        };
        let theirs = existing.and_then(|c| c.entry(section, tag));
        let previous = match theirs.map(|e| field.get(e)).transpose() {
            Ok(Some(Some(d))) => Some(d),
            Ok(_) => field
                .get(entry)
                .map_err(|e| at("in the source catalog", e))?,
            Err(e) => return Err(at("in the ConfigMap's catalog", e)),
        };
        let image = format!("{}:{tag}", opts.repository(section));
        let mut item = Item {
            version: tag.to_string(),
            airflow: section.airflow(),
            channel: catalog::channel(entry).map(str::to_string),
            image: image.clone(),
            digest: previous.clone(),
            previous: previous.clone(),
            registry: None,
            registry_source: None,
            change: Change::Unchanged,
            accepted: false,
            reason: None,
            error: None,
        };
        if !(opts.only_missing && previous.is_some()) {
            if let Some(need) = judge(&mut item, &image, previous.as_deref(), opts, resolved) {
                needs.push(need);
            }
        }
        let mut e = entry.clone();
        if let Some(d) = &item.digest {
            field
                .set(&mut e, d)
                .map_err(|err| at("in the source catalog", err))?;
        }
        ours.insert((section, tag.to_string()), e);
        items.push(item);
    }
    let kept = existing
        .map(|c| {
            c.entries()
                .filter(|(s, t, _)| source.entry(*s, t).is_none())
                .count()
        })
        .unwrap_or(0);
    Ok(ImportPlan {
        catalog: catalog::merge(source, &ours, existing),
        items,
        needs,
        filtered,
        kept,
    })
}

/// The registry's verdict on one catalog version: new, unchanged, moved (accepted or kept) or
/// missing. Returns the reference still to resolve when there is no answer for it yet.
fn judge(
    item: &mut Item,
    image: &str,
    previous: Option<&str>,
    opts: &ImportOptions,
    resolved: &Answers,
) -> Option<ImageRef> {
    let mut need = None;
    match ImageRef::parse(image) {
        Err(e) => {
            item.change = Change::Missing;
            item.reason = Some("invalid tag".into());
            item.error = Some(RegistryError::Invalid(e));
        }
        Ok(r) => match resolved.get(r.original()) {
            None => {
                need = Some(r);
                item.change = Change::Missing;
            }
            Some(Ok(res)) => {
                let now = res.pin_digest().to_string();
                item.registry = Some(now.clone());
                item.registry_source = res.mirrored.then(|| res.source.clone());
                match previous {
                    None => {
                        item.change = Change::New;
                        item.digest = Some(now);
                    }
                    Some(p) if p == now => item.change = Change::Unchanged,
                    Some(_) => {
                        item.change = Change::Moved;
                        if opts.accept_moved {
                            item.accepted = true;
                            item.digest = Some(now);
                        }
                    }
                }
            }
            Some(Err(e)) => {
                item.change = Change::Missing;
                item.reason = Some(e.short());
                item.error = Some(e.clone());
            }
        },
    }
    need
}

/// What the selection leaves out that a user may not expect, for a warning each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SelectionNote {
    /// `--versions` names it, but another filter leaves it out.
    LeftOut { version: String, why: Skip },
    /// `--min-version` cannot order these versions, so they are left out.
    Unorderable(Vec<String>),
}

impl std::fmt::Display for SelectionNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SelectionNote::LeftOut { version, why } => write!(
                f,
                "--versions names {version}, but it is left out: {}",
                match why {
                    Skip::Yanked => "it is yanked (add --include-yanked)",
                    Skip::Channel => "its channel is not among --channel",
                    Skip::OlderThanMin => "it is older than --min-version",
                    _ => "filtered",
                }
            ),
            SelectionNote::Unorderable(versions) => write!(
                f,
                "left out because --min-version cannot order them: {}",
                versions.join(", ")
            ),
        }
    }
}

/// Checks --versions against the catalog before anything is fetched or written.
pub(crate) fn check_versions(source: &Catalog, sel: &Selection) -> Result<Vec<SelectionNote>> {
    let mut warnings = vec![];
    let present: BTreeSet<&str> = source.entries().map(|(_, t, _)| t).collect();
    let unknown: Vec<&str> = sel
        .versions
        .iter()
        .map(String::as_str)
        .filter(|v| !present.contains(v))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::new(format!(
            "--versions: {} not in the catalog",
            unknown.join(", ")
        ))
        .hint("version keys are exact, e.g. 13.9.0 (Airflow 2) or 3.1-2 (Airflow 3); list them with `jq '.runtimeVersions, .runtimeVersionsV3 | keys'` on the catalog"));
    }
    let mut selected = 0;
    let mut unparsable = vec![];
    for (s, t, e) in source.entries() {
        match sel.check(s, t, e) {
            None => selected += 1,
            Some(Skip::UnparsableVersion) => unparsable.push(t.to_string()),
            Some(why) if sel.versions.contains(t) => warnings.push(SelectionNote::LeftOut {
                version: t.to_string(),
                why,
            }),
            Some(_) => {}
        }
    }
    if !unparsable.is_empty() {
        warnings.push(SelectionNote::Unorderable(unparsable));
    }
    if selected == 0 {
        return Err(
            Error::new("no version of the catalog matches the filters; nothing to import")
                .hint("loosen --channel/--min-version/--versions, or add --include-yanked"),
        );
    }
    Ok(warnings)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
/// How many versions took each verdict, and how many the filters left out or only the
/// ConfigMap holds.
pub(crate) struct Summary {
    pub(crate) versions: usize,
    pub(crate) new: usize,
    pub(crate) unchanged: usize,
    pub(crate) moved: usize,
    pub(crate) missing: usize,
    pub(crate) filtered: usize,
    pub(crate) kept: usize,
}

/// The catalog a ConfigMap holds, `None` when it has none yet. Malformed content stops the run:
/// overwriting it would lose whatever the person who wrote it meant.
pub(crate) fn existing_catalog(
    cm: Option<&ConfigMap>,
    ns: &str,
    name: &str,
) -> Result<Option<Catalog>> {
    let Some(text) = cm
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get(catalog::DATA_KEY))
    else {
        return Ok(None);
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    Catalog::parse(
        text,
        &format!("configmap {ns}/{name} key {}", catalog::DATA_KEY),
        false,
    )
    .map(Some)
    .map_err(|e| {
        Error::new(format!("{}; nothing was written", e.message)).hint(format!(
            "fix it (`kubectl -n {ns} edit configmap {name}`) or remove the key to import from scratch"
        ))
    })
}

/// Size of the ConfigMap's data other than our key (the limit is for the whole object's data).
pub(crate) fn other_data_size(cm: Option<&ConfigMap>) -> usize {
    let Some(cm) = cm else { return 0 };
    let data: usize = cm
        .data
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != catalog::DATA_KEY)
        .map(|(_, v)| v.len())
        .sum();
    let binary: usize = cm
        .binary_data
        .iter()
        .flatten()
        .map(|(_, v)| v.0.len())
        .sum();
    data + binary
}

/// The catalog text to store under the data key.
#[derive(Clone, Debug)]
pub(crate) struct Payload {
    pub(crate) text: String,
    /// The pretty form's length, when it did not fit and the compact form is stored instead.
    pub(crate) compacted_from: Option<usize>,
}

/// The payload to store: pretty when it fits, compact when only that fits, else refused.
pub(crate) fn payload(cat: &Catalog, other: usize) -> Result<Payload> {
    let pretty = cat.to_pretty();
    if pretty.len() + other <= catalog::CONFIGMAP_LIMIT {
        return Ok(Payload {
            text: pretty,
            compacted_from: None,
        });
    }
    let compact = cat.to_compact();
    catalog::check_size(compact.len(), other)?;
    Ok(Payload {
        text: compact,
        compacted_from: Some(pretty.len()),
    })
}

fn count_digests(cat: &Catalog, field: &DigestField) -> usize {
    cat.entries()
        .filter(|(_, _, e)| matches!(field.get(e), Ok(Some(_))))
        .count()
}

/// The ConfigMap to send, and what to say when another tool owns it.
#[derive(Clone, Debug)]
pub(crate) struct DesiredConfigMap {
    pub(crate) object: ConfigMap,
    /// Set when the ConfigMap is labelled as managed by another tool (Helm, Argo CD...).
    pub(crate) label_warning: Option<String>,
}

/// The object to send: the one read (for its resourceVersion, other keys, labels and
/// annotations) with our key, label and annotations set; or a new one.
pub(crate) fn desired_configmap(
    current: Option<&ConfigMap>,
    ns: &str,
    name: &str,
    payload: String,
    annotations: &BTreeMap<String, String>,
) -> DesiredConfigMap {
    let mut cm = current.cloned().unwrap_or_else(|| ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            ..Default::default()
        },
        ..Default::default()
    });
    cm.metadata.managed_fields = None;
    let mut warning = None;
    let labels = cm.metadata.labels.get_or_insert_with(Default::default);
    match labels.get("app.kubernetes.io/managed-by") {
        Some(owner) if owner != MANAGED_BY => {
            warning = Some(format!(
                "ConfigMap {ns}/{name} is labelled app.kubernetes.io/managed-by={owner}; its label is left alone, and {owner} may overwrite this import on its next sync"
            ));
        }
        _ => {
            labels.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
        }
    }
    let ann = cm.metadata.annotations.get_or_insert_with(Default::default);
    for (k, v) in annotations {
        ann.insert(k.clone(), v.clone());
    }
    cm.data
        .get_or_insert_with(Default::default)
        .insert(catalog::DATA_KEY.to_string(), payload);
    DesiredConfigMap {
        object: cm,
        label_warning: warning,
    }
}

/// What an import records about itself on the ConfigMap: where the catalog came from
/// (`source`, credentials removed), when (`now`, RFC 3339), how many versions and digests it holds,
/// where the digests are, and, when the catalog's content changed, when it changed.
pub(crate) fn annotations(
    source: &str,
    now: &str,
    cat: &Catalog,
    field: &DigestField,
    changed: bool,
) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([
        (SOURCE_ANNOTATION.to_string(), source.to_string()),
        (IMPORTED_AT_ANNOTATION.to_string(), now.to_string()),
        (VERSIONS_ANNOTATION.to_string(), cat.len().to_string()),
        (
            DIGESTS_ANNOTATION.to_string(),
            count_digests(cat, field).to_string(),
        ),
        (DIGEST_FIELD_ANNOTATION.to_string(), field.to_string()),
    ]);
    if changed {
        a.insert(CATALOG_CHANGED_AT_ANNOTATION.to_string(), now.to_string());
    }
    a
}

/// The catalog text a ConfigMap holds now.
pub(crate) fn stored_catalog(cm: Option<&ConfigMap>) -> Option<&str> {
    cm.and_then(|c| c.data.as_ref())
        .and_then(|d| d.get(catalog::DATA_KEY))
        .map(String::as_str)
}

/// Whether writing this plan would change the stored catalog (for a client-side dry run).
pub(crate) fn catalog_changes(current: Option<&ConfigMap>, p: &ImportPlan) -> Result<bool> {
    let body = payload(&p.catalog, other_data_size(current))?;
    Ok(stored_catalog(current) != Some(body.text.as_str()))
}

/// The last line of a run: `imported 5 versions: 2 new, ... -> configmap ns/name (...)`.
pub(crate) fn summary_line(p: &ImportPlan, target: &str, prefix: &str) -> String {
    let mut extra = vec![];
    if p.filtered > 0 {
        extra.push(format!("{} filtered out", p.filtered));
    }
    if p.kept > 0 {
        extra.push(format!("{} kept that the source lacks", p.kept));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" ({})", extra.join(", "))
    };
    let moved = p.count(Change::Moved);
    let accepted = if moved > 0 && p.moved_kept() == 0 {
        " (accepted)"
    } else {
        ""
    };
    format!(
        "{prefix}{}: {} new, {} unchanged, {moved} moved{accepted}, {} missing -> {target}{extra}",
        count(p.items.len(), "version", "versions"),
        p.count(Change::New),
        p.count(Change::Unchanged),
        p.count(Change::Missing),
    )
}

/// Missing tags that `--allow-missing` lets the import write without a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MissingAllowed {
    pub(crate) missing: usize,
}

impl std::fmt::Display for MissingAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let missing = match self.missing {
            1 => "1 tag is missing".to_string(),
            n => format!("{n} tags are missing"),
        };
        write!(
            f,
            "{missing} from the registry; imported without a digest (--allow-missing)"
        )
    }
}

/// Whether the plan may be written: `Err` when nothing may be (missing tags without
/// --allow-missing exit 1; registry failures that are not "no such tag" exit 2, whatever the
/// flags); `Ok(Some(_))` when missing tags are allowed.
pub(crate) fn check_resolution(
    p: &ImportPlan,
    allow_missing: bool,
    target: &str,
) -> Result<Option<MissingAllowed>> {
    let missing: Vec<&Item> = p
        .items
        .iter()
        .filter(|i| i.change == Change::Missing)
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    let fatal: Vec<&&Item> = missing.iter().filter(|i| i.fatal()).collect();
    if let Some(first) = fatal.first() {
        let mut err = Error::new(format!(
            "{} of {} could not be looked up (not a missing tag: {}); nothing written to {target}",
            fatal.len(),
            count(p.items.len(), "tag", "tags"),
            first.reason.as_deref().unwrap_or("error")
        ));
        if let Some(h) = first.error.as_ref().and_then(RegistryError::hint) {
            err = err.hint(h);
        }
        return Err(err);
    }
    if allow_missing {
        return Ok(Some(MissingAllowed {
            missing: missing.len(),
        }));
    }
    Err(Error::not_ok(format!(
        "{} of {} {} from the registry (listed above); nothing written to {target}",
        missing.len(),
        count(p.items.len(), "tag", "tags"),
        if missing.len() == 1 { "is missing" } else { "are missing" }
    ))
    .hint("mirror those tags, leave them out with --channel/--min-version/--versions, or pass --allow-missing to import the rest without their digests"))
}

/// One line per moved version: what was recorded, what the registry says now, what was kept.
pub(crate) fn moved_lines(p: &ImportPlan) -> Vec<String> {
    p.items
        .iter()
        .filter(|i| i.change == Change::Moved)
        .map(|i| {
            format!(
                "moved: {} was {}, the registry now says {}{}",
                i.image,
                i.previous.as_deref().unwrap_or("-"),
                i.registry.as_deref().unwrap_or("-"),
                if i.accepted {
                    " (accepted)"
                } else {
                    " (kept the recorded digest)"
                }
            )
        })
        .collect()
}

/// The warning when moved tags kept their recorded digest (without --accept-moved).
pub(crate) fn moved_kept_warning(p: &ImportPlan) -> Option<String> {
    match p.moved_kept() {
        0 => None,
        1 => Some("1 tag was re-pushed since its digest was recorded; the recorded digest is kept. Check the new image, then re-run with --accept-moved to take it".into()),
        n => Some(format!("{n} tags were re-pushed since their digests were recorded; the recorded digests are kept. Check the new images, then re-run with --accept-moved to take them")),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::names::{AIRFLOW2_REPOSITORY, AIRFLOW3_REPOSITORY};
    use pretty_assertions::assert_eq;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn found(digest: &str) -> std::result::Result<Resolved, RegistryError> {
        Ok(Resolved {
            source: String::new(),
            mirrored: false,
            digest: digest.into(),
            media_type: String::new(),
            platforms: vec![],
            platform_digest: None,
        })
    }

    fn not_found() -> std::result::Result<Resolved, RegistryError> {
        Err(RegistryError::NotFound {
            host: "quay.io".into(),
            repository: "astronomer/astro-runtime".into(),
            reference: "x".into(),
        })
    }

    fn opts() -> ImportOptions {
        ImportOptions {
            selection: Selection::default(),
            field: DigestField::default(),
            airflow2_repository: AIRFLOW2_REPOSITORY.into(),
            airflow3_repository: AIRFLOW3_REPOSITORY.into(),
            only_missing: false,
            accept_moved: false,
        }
    }

    const SOURCE: &str = r#"{
  "version": "1.0",
  "runtimeVersions": {
    "13.1.0": {"metadata": {"channel": "stable"}, "x-extra": {"k": [1, 2]}},
    "13.2.0": {"metadata": {"channel": "stable"}},
    "13.3.0": {"metadata": {"channel": "stable"}},
    "13.4.0": {"metadata": {"channel": "stable"}}
  },
  "runtimeVersionsV3": {
    "3.1-2": {"metadata": {"channel": "stable"}}
  }
}"#;

    fn a2(tag: &str) -> String {
        format!("{AIRFLOW2_REPOSITORY}:{tag}")
    }

    fn src() -> Catalog {
        Catalog::parse(SOURCE, "test", true).unwrap()
    }

    fn existing() -> Catalog {
        Catalog::parse(
            &format!(
                r#"{{"runtimeVersions": {{
                    "13.1.0": {{"metadata": {{"channel": "stable"}}, "sha256": "{a}"}},
                    "13.2.0": {{"metadata": {{"channel": "stable"}}, "sha256": "{b}"}},
                    "9.9.9": {{"metadata": {{"channel": "hand-added"}}}}
                }}}}"#,
                a = d('a'),
                b = d('b')
            ),
            "cm",
            false,
        )
        .unwrap()
    }

    fn all_found() -> Answers {
        HashMap::from([
            (a2("13.1.0"), found(&d('a'))),
            (a2("13.2.0"), found(&d('c'))), // was b: moved
            (a2("13.3.0"), found(&d('3'))),
            (a2("13.4.0"), not_found()),
            (format!("{AIRFLOW3_REPOSITORY}:3.1-2"), found(&d('e'))),
        ])
    }

    fn changes(p: &ImportPlan) -> Vec<(String, String)> {
        p.items
            .iter()
            .map(|i| (i.version.clone(), i.label()))
            .collect()
    }

    #[test]
    fn first_plan_asks_for_every_selected_tag() {
        let p = plan(&src(), None, &opts(), &HashMap::new()).unwrap();
        let needs: Vec<&str> = p.needs.iter().map(ImageRef::original).collect();
        assert_eq!(
            needs,
            [
                a2("13.1.0"),
                a2("13.2.0"),
                a2("13.3.0"),
                a2("13.4.0"),
                "astrocrpublic.azurecr.io/runtime:3.1-2".into()
            ]
        );
    }

    #[test]
    fn classification_new_unchanged_moved_missing() {
        let ex = existing();
        let p = plan(&src(), Some(&ex), &opts(), &all_found()).unwrap();
        assert!(p.needs.is_empty());
        assert_eq!(
            changes(&p),
            [
                ("13.1.0".into(), "unchanged".into()),
                ("13.2.0".into(), "moved".into()),
                ("13.3.0".into(), "new".into()),
                ("13.4.0".into(), "missing: not found".into()),
                ("3.1-2".into(), "new".into()),
            ]
        );
        let rv = |t: &str| p.catalog.entry(Section::Airflow2, t).unwrap().clone();
        assert_eq!(
            rv("13.2.0")["sha256"],
            d('b'),
            "moved: the recorded digest is kept"
        );
        assert_eq!(rv("13.3.0")["sha256"], d('3'));
        assert!(
            !rv("13.4.0").contains_key("sha256"),
            "missing: written without a digest"
        );
        assert_eq!(rv("13.1.0")["x-extra"]["k"][1], 2, "unknown fields kept");
        assert_eq!(
            p.catalog.entry(Section::Airflow3, "3.1-2").unwrap()["sha256"],
            d('e')
        );
        assert!(
            p.catalog.entry(Section::Airflow2, "9.9.9").is_some(),
            "hand-added kept"
        );
        assert_eq!(p.kept, 1);
        assert_eq!(p.moved_kept(), 1);
        assert!(!p.items[3].fatal(), "a missing tag is not a fatal error");
    }

    #[test]
    fn accept_moved_writes_the_registry_digest() {
        let ex = existing();
        let o = ImportOptions {
            accept_moved: true,
            ..opts()
        };
        let p = plan(&src(), Some(&ex), &o, &all_found()).unwrap();
        assert_eq!(p.items[1].label(), "moved: accepted");
        assert_eq!(p.moved_kept(), 0);
        assert_eq!(
            p.catalog.entry(Section::Airflow2, "13.2.0").unwrap()["sha256"],
            d('c')
        );
    }

    #[test]
    fn a_digest_in_the_source_counts_as_recorded() {
        let s = Catalog::parse(
            &format!(
                r#"{{"runtimeVersions": {{"13.2.0": {{"sha256": "{}"}}}}}}"#,
                d('b')
            ),
            "s",
            true,
        )
        .unwrap();
        let p = plan(&s, None, &opts(), &all_found()).unwrap();
        assert_eq!(p.items[0].label(), "moved");
        assert_eq!(p.items[0].previous, Some(d('b')));
    }

    #[test]
    fn only_missing_resolves_only_entries_without_digest() {
        let ex = existing();
        let o = ImportOptions {
            only_missing: true,
            ..opts()
        };
        let p = plan(&src(), Some(&ex), &o, &HashMap::new()).unwrap();
        let needs: Vec<&str> = p.needs.iter().map(ImageRef::original).collect();
        assert_eq!(
            needs,
            [
                a2("13.3.0"),
                a2("13.4.0"),
                "astrocrpublic.azurecr.io/runtime:3.1-2".into()
            ]
        );
        let p = plan(&src(), Some(&ex), &o, &all_found()).unwrap();
        assert_eq!(
            p.items[1].label(),
            "unchanged",
            "not looked up, so not moved"
        );
        assert_eq!(p.items[1].registry, None);
    }

    #[test]
    fn nested_digest_field() {
        let o = ImportOptions {
            field: DigestField::parse("metadata.sha256").unwrap(),
            ..opts()
        };
        let p = plan(&src(), None, &o, &all_found()).unwrap();
        let e = p.catalog.entry(Section::Airflow2, "13.1.0").unwrap();
        assert_eq!(e["metadata"]["sha256"], d('a'));
        assert_eq!(e["metadata"]["channel"], "stable");
        assert!(!e.contains_key("sha256"));
    }

    #[test]
    fn bad_recorded_digest_is_an_error_naming_the_entry() {
        let ex = Catalog::parse(
            r#"{"runtimeVersions": {"13.1.0": {"sha256": "latest"}}}"#,
            "cm",
            false,
        )
        .unwrap();
        let e = plan(&src(), Some(&ex), &opts(), &all_found()).unwrap_err();
        assert!(
            e.message
                .contains("in the ConfigMap's catalog: runtimeVersions.\"13.1.0\""),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("--digest-field"));
    }

    #[test]
    fn repositories_are_overridable() {
        let o = ImportOptions {
            airflow2_repository: "127.0.0.1:5002/astronomer/astro-runtime".into(),
            airflow3_repository: "mirror.corp/runtime".into(),
            ..opts()
        };
        let p = plan(&src(), None, &o, &HashMap::new()).unwrap();
        assert_eq!(
            p.needs[0].original(),
            "127.0.0.1:5002/astronomer/astro-runtime:13.1.0"
        );
        assert_eq!(p.needs[4].original(), "mirror.corp/runtime:3.1-2");
    }

    /// What a 409 does: the same plan, run again against the ConfigMap as the other writer left
    /// it, keeps their entries and compares against their digests.
    #[test]
    fn conflict_remerge_keeps_the_other_writers_entries() {
        let first = plan(&src(), Some(&existing()), &opts(), &all_found()).unwrap();
        // Meanwhile another writer added a version and recorded a digest for one of ours.
        let theirs = Catalog::parse(
            &format!(
                r#"{{"runtimeVersions": {{
                    "13.1.0": {{"metadata": {{"channel": "stable"}}, "sha256": "{a}"}},
                    "13.2.0": {{"metadata": {{"channel": "stable"}}, "sha256": "{b}"}},
                    "13.3.0": {{"metadata": {{"channel": "stable"}}, "sha256": "{f}"}},
                    "9.9.9": {{"metadata": {{"channel": "hand-added"}}}},
                    "77.0.0": {{"metadata": {{"channel": "concurrent"}}, "sha256": "{a}"}}
                }}, "x-their-note": "hi"}}"#,
                a = d('a'),
                b = d('b'),
                f = d('f'),
            ),
            "cm",
            false,
        )
        .unwrap();
        let again = plan(&src(), Some(&theirs), &opts(), &all_found()).unwrap();
        assert!(first.catalog.entry(Section::Airflow2, "77.0.0").is_none());
        assert_eq!(
            again.catalog.entry(Section::Airflow2, "77.0.0").unwrap()["sha256"],
            d('a'),
            "their entry survives the re-merge"
        );
        assert!(again.catalog.entry(Section::Airflow2, "9.9.9").is_some());
        assert_eq!(
            again.items[2].label(),
            "moved",
            "compared against their digest now"
        );
        assert_eq!(
            again.catalog.entry(Section::Airflow2, "13.3.0").unwrap()["sha256"],
            d('f')
        );
        assert_eq!(again.kept, 2);
        let text = again.catalog.to_pretty();
        assert!(text.contains("x-their-note"));
    }

    #[test]
    fn filters_and_counts() {
        let o = ImportOptions {
            selection: Selection {
                versions: ["13.3.0".to_string()].into(),
                ..Default::default()
            },
            ..opts()
        };
        let ex = existing();
        let p = plan(&src(), Some(&ex), &o, &all_found()).unwrap();
        assert_eq!(changes(&p), [("13.3.0".into(), "new".into())]);
        assert_eq!(p.filtered, 4);
        // Filtered-out versions the ConfigMap holds are left as they are.
        let e = p.catalog.entry(Section::Airflow2, "13.2.0").unwrap();
        assert_eq!(e["sha256"], d('b'));
        assert!(p.catalog.entry(Section::Airflow2, "13.4.0").is_none());
    }

    #[test]
    fn versions_flag_is_checked_against_the_catalog() {
        let sel = Selection {
            versions: ["13.3.0".to_string(), "99.0.0".to_string()].into(),
            ..Default::default()
        };
        let e = check_versions(&src(), &sel).unwrap_err();
        assert!(
            e.message.contains("99.0.0 not in the catalog"),
            "{}",
            e.message
        );
        let sel = Selection {
            channels: vec!["nope".into()],
            ..Default::default()
        };
        assert!(check_versions(&src(), &sel)
            .unwrap_err()
            .message
            .contains("no version"));
    }

    #[test]
    fn resolution_outcomes() {
        let ex = existing();
        let p = plan(&src(), Some(&ex), &opts(), &all_found()).unwrap();
        let e = check_resolution(&p, false, "configmap a/b").unwrap_err();
        assert_eq!(e.code(), crate::error::EXIT_NOT_OK);
        assert!(
            e.message.contains("1 of 5 tags is missing"),
            "{}",
            e.message
        );
        assert!(check_resolution(&p, true, "x")
            .unwrap()
            .unwrap()
            .to_string()
            .contains("1 tag is missing"));
        let mut r = all_found();
        r.insert(
            a2("13.4.0"),
            Err(RegistryError::Timeout {
                host: "quay.io".into(),
                secs: 20,
                attempts: 4,
            }),
        );
        let p = plan(&src(), Some(&ex), &opts(), &r).unwrap();
        let e = check_resolution(&p, true, "x").unwrap_err();
        assert_eq!(
            e.code(),
            crate::error::EXIT_ERROR,
            "a timeout is never allowed"
        );
        assert!(e.hint.unwrap().contains("--registry-timeout"));
    }

    #[test]
    fn payload_is_pretty_then_compact_then_refused() {
        let p = plan(&src(), None, &opts(), &all_found()).unwrap();
        assert!(payload(&p.catalog, 0)
            .unwrap()
            .text
            .contains("\n  \"version\""));
        let pretty = p.catalog.to_pretty().len();
        let compact = p.catalog.to_compact().len();
        let other = catalog::CONFIGMAP_LIMIT - (pretty + compact) / 2;
        assert!(!payload(&p.catalog, other).unwrap().text.contains('\n'));
        let e = payload(&p.catalog, catalog::CONFIGMAP_LIMIT).unwrap_err();
        assert!(e.message.contains("nothing was written"));
    }

    #[test]
    fn desired_configmap_keeps_theirs_and_respects_other_owners() {
        let current: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n", "namespace": "ns", "resourceVersion": "42",
                         "labels": {"team": "x"}, "annotations": {"keep": "me"}},
            "data": {"other.txt": "hello", "astro_runtime_releases.json": "{}"}
        }))
        .unwrap();
        let ann = BTreeMap::from([(
            "astro-sha.astronomer.io/source".to_string(),
            "s".to_string(),
        )]);
        let DesiredConfigMap {
            object: cm,
            label_warning: warn,
        } = desired_configmap(Some(&current), "ns", "n", "NEW".into(), &ann);
        assert!(warn.is_none());
        assert_eq!(
            cm.metadata.resource_version.as_deref(),
            Some("42"),
            "optimistic concurrency"
        );
        let data = cm.data.unwrap();
        assert_eq!(data["other.txt"], "hello");
        assert_eq!(data[catalog::DATA_KEY], "NEW");
        let labels = cm.metadata.labels.unwrap();
        assert_eq!(labels["team"], "x");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "astro-sha");
        assert_eq!(cm.metadata.annotations.unwrap()["keep"], "me");
        assert_eq!(other_data_size(Some(&current)), 5);

        let helm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n", "labels": {"app.kubernetes.io/managed-by": "Helm"}}
        }))
        .unwrap();
        let DesiredConfigMap {
            object: cm,
            label_warning: warn,
        } = desired_configmap(Some(&helm), "ns", "n", "x".into(), &ann);
        assert!(warn.unwrap().contains("managed-by=Helm"));
        assert_eq!(
            cm.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
            "Helm"
        );

        let cm = desired_configmap(None, "ns", "n", "x".into(), &ann).object;
        assert_eq!(cm.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(cm.metadata.resource_version, None);
    }

    #[test]
    fn existing_configmap_content() {
        let cm = |data: serde_json::Value| -> ConfigMap {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "n"}, "data": data}))
                .unwrap()
        };
        assert!(existing_catalog(None, "ns", "n").unwrap().is_none());
        assert!(existing_catalog(
            Some(&cm(serde_json::json!({"astro_runtime_releases.json": " "}))),
            "ns",
            "n"
        )
        .unwrap()
        .is_none());
        let e = existing_catalog(
            Some(&cm(
                serde_json::json!({"astro_runtime_releases.json": "{oops"}),
            )),
            "ns",
            "n",
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("configmap ns/n key astro_runtime_releases.json is not valid JSON"),
            "{}",
            e.message
        );
        assert!(e.message.contains("nothing was written"));
    }

    #[test]
    fn summary_reads_as_specified() {
        let ex = existing();
        let p = plan(&src(), Some(&ex), &opts(), &all_found()).unwrap();
        assert_eq!(
            summary_line(&p, "configmap astronomer/astro-runtime-base-images", "imported "),
            "imported 5 versions: 2 new, 1 unchanged, 1 moved, 1 missing -> configmap astronomer/astro-runtime-base-images (1 kept that the source lacks)"
        );
    }

    /// Issue 23: "1 tags were re-pushed" read wrong; one moved tag is in the singular.
    #[test]
    fn moved_warning_counts_in_the_singular_and_plural() {
        let ex = existing();
        let p = plan(&src(), Some(&ex), &opts(), &all_found()).unwrap();
        assert_eq!(
            moved_kept_warning(&p).unwrap(),
            "1 tag was re-pushed since its digest was recorded; the recorded digest is kept. Check the new image, then re-run with --accept-moved to take it"
        );
        assert_eq!(
            moved_lines(&p),
            [format!(
                "moved: {} was {}, the registry now says {} (kept the recorded digest)",
                a2("13.2.0"),
                d('b'),
                d('c')
            )]
        );
        let mut two = all_found();
        two.insert(a2("13.1.0"), found(&d('9')));
        let p = plan(&src(), Some(&ex), &opts(), &two).unwrap();
        assert!(moved_kept_warning(&p)
            .unwrap()
            .starts_with("2 tags were re-pushed"));
        let o = ImportOptions {
            accept_moved: true,
            ..opts()
        };
        let p = plan(&src(), Some(&ex), &o, &two).unwrap();
        assert_eq!(moved_kept_warning(&p), None);
    }

    /// Issue 23: the JSON field naming where a tag was looked up held an image reference under
    /// a time's name (`lookedUpAt`); it is `registrySource`, as in `show`, and only when a
    /// mirror applied.
    #[test]
    fn a_mirrored_lookup_is_reported_as_registry_source() {
        let mut r = all_found();
        r.insert(
            a2("13.1.0"),
            Ok(Resolved {
                source: "mirror.corp:5000/astronomer/astro-runtime:13.1.0".into(),
                mirrored: true,
                ..found(&d('a')).unwrap()
            }),
        );
        let p = plan(&src(), None, &opts(), &r).unwrap();
        let json = serde_json::to_value(&p.items).unwrap();
        assert_eq!(
            json[0]["registrySource"],
            "mirror.corp:5000/astronomer/astro-runtime:13.1.0"
        );
        assert!(json[1].get("registrySource").is_none(), "{}", json[1]);
        for item in json.as_array().unwrap() {
            let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
            assert!(
                keys.iter().all(|k| !k.ends_with("At")),
                "no time field in a row: {keys:?}"
            );
        }
    }

    /// Issue 23 grammar: a one-version import whose lookup timed out said "1 of 1 tags".
    #[test]
    fn a_failed_lookup_of_one_tag_is_in_the_singular() {
        let one = Catalog::parse(
            r#"{"runtimeVersions": {"13.1.0": {"metadata": {"channel": "stable"}}}}"#,
            "s",
            true,
        )
        .unwrap();
        let r = HashMap::from([(
            a2("13.1.0"),
            Err(RegistryError::Timeout {
                host: "quay.io".into(),
                secs: 20,
                attempts: 4,
            }),
        )]);
        let p = plan(&one, None, &opts(), &r).unwrap();
        let e = check_resolution(&p, true, "x").unwrap_err();
        assert!(
            e.message.starts_with("1 of 1 tag could not be looked up"),
            "{}",
            e.message
        );
    }

    /// The selection's warnings, typed, read as the strings they were.
    #[test]
    fn selection_notes_read_as_before() {
        let s = Catalog::parse(
            r#"{"runtimeVersions": {"13.1.0": {"metadata": {"channel": "stable", "yanked": true}},
                "13.2.0": {"metadata": {"channel": "stable"}}, "nightly": {}}}"#,
            "s",
            true,
        )
        .unwrap();
        let sel = Selection {
            versions: ["13.1.0".to_string(), "13.2.0".to_string()].into(),
            ..Default::default()
        };
        let notes: Vec<String> = check_versions(&s, &sel)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            notes,
            ["--versions names 13.1.0, but it is left out: it is yanked (add --include-yanked)"]
        );
        let sel = Selection {
            min_version: Some(catalog::RuntimeVersion::parse("13.0.0").unwrap()),
            ..Default::default()
        };
        let notes = check_versions(&s, &sel).unwrap();
        assert_eq!(notes, [SelectionNote::Unorderable(vec!["nightly".into()])]);
        assert_eq!(
            notes[0].to_string(),
            "left out because --min-version cannot order them: nightly"
        );
    }
}
