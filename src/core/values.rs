//! Turning the custom-image-SHA feature on in YAML that people own: the platform chart's values
//! file, and Houston's `local-production.yaml` (the same config tree, at the root). The airflow
//! chart values `pin --values-out` writes are `core::values_out`'s.
//!
//! Pure: text + request in, new text + what changed out. The edit is made by yaml-edit on the
//! lossless syntax tree so comments, key order, quoting, anchors and blank lines survive; then the
//! result is parsed again with serde_yaml_ng and compared, as a whole tree, with the original plus
//! exactly the intended keys. Anything else that moved (an anchor shared with another key, a
//! block scalar swallowing a line, ...) makes the edit refuse rather than write.

use serde::Serialize;
use serde_yaml_ng::{Mapping, Value};
use yaml_edit::path::YamlPath;

use crate::error::{Error, Result};

/// Flat flag of platform charts 0.37.x and 1.x, under Houston's `deployments`.
pub(crate) const FLAT_FLAG: &[&str] = &["customImageShaEnabled"];
/// The 2.x name of the same flag, under Houston's `deployments`.
pub(crate) const NESTED_FLAG: &[&str] = &["runtimeManagement", "customImageSha", "enabled"];
/// Default Runtime repository, under Houston's `deployments`.
pub(crate) const DEFAULT_RUNTIME_REPOSITORY: &[&str] =
    &["helm", "airflow", "defaultRuntimeRepository"];
/// Key under `astronomer.houston` naming the releases ConfigMap the chart mounts into Houston.
pub(crate) const RELEASES_CONFIGMAP_KEY: &str = "runtimeReleasesConfigMapName";
/// The name Astronomer's procedure uses, and `import` writes.
pub(crate) use crate::core::names::DEFAULT_RELEASES_CONFIGMAP;

/// Top-level keys of the platform chart (astronomer/astronomer `values.yaml`, 0.37 to 2.x). A values
/// file with none of them is not the platform's: refusing beats adding `astronomer:` to the
/// values of some other chart.
const PLATFORM_TOP_LEVEL_KEYS: &[&str] = &[
    "global",
    "astronomer",
    "nginx",
    "tags",
    "grafana",
    "prometheus",
    "elasticsearch",
    "kibana",
    "fluentd",
    "kube-state",
    "alertmanager",
    "nats",
    "stan",
    "prometheus-blackbox-exporter",
    "prometheus-postgres-exporter",
    "prometheus-node-exporter",
    "postgresql",
    "pgbouncer",
    "external-es-proxy",
    "vector",
    "loki",
    "velero",
];

/// Top-level keys that give away the Airflow chart's values (a Deployment's, not the platform's).
const AIRFLOW_CHART_KEYS: &[&str] = &[
    "executor",
    "airflowVersion",
    "defaultAirflowTag",
    "defaultAirflowRepository",
    "scheduler",
    "webserver",
    "workers",
    "dags",
    "airflow",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Schema {
    /// `deployments.customImageShaEnabled` (platform 0.37.x, 1.x; 2.x migrates it).
    Flat,
    /// `deployments.runtimeManagement.customImageSha.enabled` (platform 2.x).
    Nested,
}

impl Schema {
    pub(crate) fn flag(&self) -> &'static [&'static str] {
        match self {
            Schema::Flat => FLAT_FLAG,
            Schema::Nested => NESTED_FLAG,
        }
    }
}

/// Where Houston's config lives in the document being edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The platform chart's values: Houston's config under `astronomer.houston.config`.
    ValuesFile,
    /// `local-production.yaml` in `<release>-houston-config`: `astronomer.houston.config`,
    /// verbatim, so the same keys sit at the root.
    LocalProduction,
}

impl Target {
    fn config_prefix(&self) -> &'static [&'static str] {
        match self {
            Target::ValuesFile => &["astronomer", "houston", "config"],
            Target::LocalProduction => &[],
        }
    }

    fn deployments(&self) -> Vec<&'static str> {
        let mut p = self.config_prefix().to_vec();
        p.push("deployments");
        p
    }

    /// `astronomer.houston`, where the releases ConfigMap name goes; local-production.yaml has no
    /// such level (the chart turns that value into a volume of Houston's Deployment).
    fn houston_prefix(&self) -> Option<&'static [&'static str]> {
        match self {
            Target::ValuesFile => Some(&["astronomer", "houston"]),
            Target::LocalProduction => None,
        }
    }

    /// A path relative to Houston's config (`deployments.x`, `updateRuntimeCheck`).
    pub(crate) fn config_path(&self, rel: &[&str]) -> Vec<String> {
        self.config_prefix()
            .iter()
            .chain(rel.iter())
            .map(|s| s.to_string())
            .collect()
    }

    /// A path under Houston's `deployments`, from the document root.
    pub(crate) fn path(&self, under_deployments: &[&str]) -> Vec<String> {
        self.deployments()
            .into_iter()
            .chain(under_deployments.iter().copied())
            .map(str::to_string)
            .collect()
    }
}

/// What to do about `astronomer.houston.runtimeReleasesConfigMapName`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReleasesConfigMap {
    /// Set the default name unless the file already names one (kept: it may be deliberate).
    Default,
    /// Set this name (`--releases-configmap`).
    Name(String),
    /// Leave it alone (`--no-releases-configmap`).
    Skip,
}

#[derive(Clone, Debug)]
pub(crate) struct Request {
    /// Platform chart version, when known (flag or the cluster's Helm release).
    pub(crate) chart_version: Option<String>,
    /// Where that version came from, for the explanation.
    pub(crate) chart_version_source: Option<String>,
    /// Why no chart version is known (the cluster could not be read, ...), for the refusal.
    pub(crate) chart_version_unknown: Option<String>,
    pub(crate) releases_configmap: ReleasesConfigMap,
    pub(crate) default_runtime_repository: Option<String>,
}

/// One key set (or removed) by the edit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Change {
    pub(crate) key: String,
    /// The previous value, typed as the YAML holds it (`false`, not `"false"`); `None` when the
    /// key was added.
    pub(crate) old: Option<Value>,
    /// The new value, typed; `None` when the key was removed (a flat flag moved to its 2.x place).
    pub(crate) new: Option<Value>,
}

/// The result of planning an edit; `new_text == old text` when nothing changes.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Outcome {
    pub(crate) schema: Schema,
    pub(crate) schema_reason: String,
    pub(crate) changes: Vec<Change>,
    pub(crate) notes: Vec<String>,
    #[serde(skip)]
    pub(crate) new_text: String,
}

impl Outcome {
    pub(crate) fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Parses YAML and checks it is what the target expects. Errors carry line and column.
pub(crate) fn parse(text: &str, target: Target, name: &str) -> Result<Value> {
    let tree: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        Error::new(format!("{name} is not valid YAML{at}: {e}"))
            .hint("fix the YAML (nothing was written), then run the command again")
    })?;
    match target {
        Target::ValuesFile => check_platform_values(&tree, name)?,
        Target::LocalProduction => {
            if !matches!(tree, Value::Mapping(_) | Value::Null) {
                return Err(Error::new(format!(
                    "{name} is not a mapping of Houston settings"
                ))
                .hint("look at it with kubectl get configmap -o yaml; Helm renders it from astronomer.houston.config"));
            }
        }
    }
    Ok(tree)
}

/// A values file must be a mapping with at least one top-level key the platform chart knows.
fn check_platform_values(tree: &Value, name: &str) -> Result<()> {
    let hint = "pass the values file of the platform chart (astronomer/astronomer), the one given to `helm upgrade` for the platform release; or use --print for the snippet";
    let Value::Mapping(m) = tree else {
        let what = match tree {
            Value::Null => "is empty",
            Value::Sequence(_) => "is a list, not a mapping",
            _ => "is a single value, not a mapping",
        };
        return Err(
            Error::new(format!("{name} {what}: not a platform chart values file")).hint(hint),
        );
    };
    let keys: Vec<&str> = m.keys().filter_map(Value::as_str).collect();
    if keys.iter().any(|k| PLATFORM_TOP_LEVEL_KEYS.contains(k)) {
        return Ok(());
    }
    let looks_airflow = keys.iter().any(|k| AIRFLOW_CHART_KEYS.contains(k));
    let why = if looks_airflow {
        "it looks like the Airflow chart's values of one Deployment"
    } else {
        "none of its top-level keys is one the platform chart knows (global, astronomer, nginx, ...)"
    };
    Err(Error::new(format!(
        "{name} is not the platform chart's values file: {why}"
    ))
    .hint(hint))
}

/// The major version of a chart version string (`0.37.4`, `v1.2.0`, `2.1.0-rc.1`).
pub(crate) fn chart_major(version: &str) -> Option<u64> {
    version
        .trim()
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .next()?
        .parse()
        .ok()
}

/// Platform 2.x reads the nested flag; earlier charts the flat one.
pub(crate) fn schema_for_chart(version: &str) -> Option<Schema> {
    chart_major(version).map(|m| if m >= 2 { Schema::Nested } else { Schema::Flat })
}

/// Value at a path of keys, if every level is a mapping holding the key.
pub(crate) fn get<'a, S: AsRef<str>>(tree: &'a Value, path: &[S]) -> Option<&'a Value> {
    let mut cur = tree;
    for k in path {
        cur = cur.as_mapping()?.get(k.as_ref())?;
    }
    Some(cur)
}

/// Keys only APC 2.x knows, relative to Houston's config: their presence says the file is for a
/// 2.x platform. (The flat 0.37/1.x keys say nothing: a 2.x file may still carry them, dead.)
const TWO_X_ONLY: &[&[&str]] = &[
    &["deployments", "runtimeManagement"],
    &["updateRuntimeCheck"],
];

/// Houston settings APC 2.x moved (old path, 2.x path), relative to Houston's config. The tool
/// writes only the flag; the others are reported when a 2.x file still has the old key.
/// Source: Astronomer's APC 2.x breaking-changes page and `software_configs/2.0/default.yaml`.
const MOVED_IN_2X: &[(&[&str], &[&str])] = &[
    (
        &["deployments", "astroRuntimeReleasesFile"],
        &[
            "deployments",
            "runtimeManagement",
            "astroRuntimeReleasesFile",
        ],
    ),
    (
        &["updateRuntimeCheckEnabled"],
        &["updateRuntimeCheck", "enabled"],
    ),
];

/// A 2.x-only key in the file, if any (the dotted path found).
pub(crate) fn two_x_key(tree: &Value, target: Target) -> Option<String> {
    TWO_X_ONLY.iter().find_map(|rel| {
        let path = target.config_path(rel);
        get(tree, &path).map(|_| path.join("."))
    })
}

/// What the file alone says about the schema: only a 2.x-only key decides (a flat key does not,
/// since APC 2.x ignores it rather than rejecting it). `None` means the chart version must.
pub(crate) fn schema_from_file(tree: &Value, target: Target) -> Option<(Schema, String)> {
    two_x_key(tree, target).map(|k| {
        (
            Schema::Nested,
            format!("the file has {k}, a key only APC 2.x reads"),
        )
    })
}

/// Which flag is enabled in a tree, in either form. APC 2.x reads only the nested key (it
/// "silently ignores" the old paths under `deployments`); 0.37.x and 1.x read only the flat key.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FlagState {
    /// `customImageShaEnabled` as written (absent: `None`).
    pub(crate) flat: Option<serde_json::Value>,
    /// `runtimeManagement.customImageSha.enabled` as written.
    pub(crate) nested: Option<serde_json::Value>,
}

impl FlagState {
    pub(crate) fn read(tree: &Value, target: Target) -> FlagState {
        let conv = |v: &Value| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
        FlagState {
            flat: get(tree, &target.path(FLAT_FLAG)).map(conv),
            nested: get(tree, &target.path(NESTED_FLAG)).map(conv),
        }
    }

    fn flat_on(&self) -> bool {
        self.flat.as_ref().and_then(|v| v.as_bool()) == Some(true)
    }

    fn nested_on(&self) -> bool {
        self.nested.as_ref().and_then(|v| v.as_bool()) == Some(true)
    }

    /// Whether Houston of this chart major version sees the feature on: 2.x only the nested key,
    /// earlier charts only the flat one. With the version unknown, `None` unless both forms agree
    /// (the answer would depend on the version).
    pub(crate) fn enabled(&self, chart_major: Option<u64>) -> Option<bool> {
        match chart_major {
            Some(m) if m >= 2 => Some(self.nested_on()),
            Some(_) => Some(self.flat_on()),
            None if self.flat_on() == self.nested_on() => Some(self.flat_on()),
            None => None,
        }
    }

    /// On 2.x, the flat key says `true` but the nested one does not: the flag the user set is
    /// dead (APC 2.x ignores the old path).
    pub(crate) fn flat_only_on_2x(&self, chart_major: Option<u64>) -> bool {
        chart_major.is_some_and(|m| m >= 2) && self.flat_on() && !self.nested_on()
    }

    /// Before 2.x, the nested key says `true` but the flat one does not.
    pub(crate) fn nested_only_before_2x(&self, chart_major: Option<u64>) -> bool {
        chart_major.is_some_and(|m| m < 2) && self.nested_on() && !self.flat_on()
    }

    /// `customImageShaEnabled: true`, `runtimeManagement...enabled: false`, or `not set`.
    pub(crate) fn describe(&self) -> String {
        let mut parts = vec![];
        if let Some(v) = &self.flat {
            parts.push(format!("customImageShaEnabled: {v}"));
        }
        if let Some(v) = &self.nested {
            parts.push(format!("runtimeManagement.customImageSha.enabled: {v}"));
        }
        if parts.is_empty() {
            "not set".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The form to write and why: `--chart-version` or the cluster's chart version, else a 2.x-only
/// key in the file. Nothing else decides: with none of them the edit is refused (no guessing,
/// since each platform generation ignores the other's key).
pub(crate) fn decide_schema(
    tree: &Value,
    target: Target,
    req: &Request,
    name: &str,
) -> Result<(Schema, String)> {
    if let Some(v) = req.chart_version.as_deref() {
        let src = req
            .chart_version_source
            .as_deref()
            .map(|s| format!("; version {s}"))
            .unwrap_or_default();
        return match schema_for_chart(v) {
            Some(Schema::Nested) => Ok((
                Schema::Nested,
                format!("platform chart {v} reads the nested 2.x form{src}"),
            )),
            Some(Schema::Flat) => Ok((
                Schema::Flat,
                format!("platform chart {v} reads the flat form{src}"),
            )),
            None => Err(Error::new(format!(
                "platform chart version {v:?}{src} is not a version; nothing was written"
            ))
            .hint("pass --chart-version VERSION, e.g. 0.37.4, 1.1.0 or 2.1.0 (`helm list -n <platform namespace>` shows it)")),
        };
    }
    if let Some(found) = schema_from_file(tree, target) {
        return Ok(found);
    }
    let why = req
        .chart_version_unknown
        .as_deref()
        .unwrap_or("no chart version was read from the cluster");
    Err(Error::new(format!(
        "cannot tell which platform chart version {name} is for, so not which key turns the feature on: APC 2.x reads only deployments.runtimeManagement.customImageSha.enabled, 0.37.x and 1.x only deployments.customImageShaEnabled. No --chart-version was given, {why}, and the file has no key only 2.x knows; nothing was written"
    ))
    .hint("pass --chart-version VERSION: the platform chart version, e.g. 0.37.4, 1.1.0 or 2.1.0 (`helm list -n <platform namespace>` shows it)"))
}

/// The notes about keys of the other platform generation in the file.
fn other_generation_notes(
    tree: &Value,
    target: Target,
    schema: Schema,
    req: &Request,
) -> Vec<String> {
    let mut notes = vec![];
    let chart = req
        .chart_version
        .as_deref()
        .map(|v| format!("platform chart {v}"))
        .unwrap_or_else(|| "this platform".into());
    match schema {
        Schema::Nested => {
            for (old, new) in MOVED_IN_2X {
                let (old, new) = (target.config_path(old), target.config_path(new));
                if get(tree, &old).is_some() {
                    notes.push(format!(
                        "{} is ignored by APC 2.x (it reads {}); this tool does not move it: move it by hand if you rely on it",
                        old.join("."),
                        new.join(".")
                    ));
                }
            }
        }
        Schema::Flat => {
            let nested = target.path(NESTED_FLAG);
            if get(tree, &nested).is_some() {
                notes.push(format!(
                    "{} is in the file, but {chart} (0.37.x/1.x) reads only {}: left as it is (it does nothing there)",
                    nested.join("."),
                    target.path(FLAT_FLAG).join(".")
                ));
            }
        }
    }
    notes
}

/// A scalar to write.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar {
    Bool(bool),
    Str(String),
}

impl Scalar {
    fn value(&self) -> Value {
        match self {
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Str(s) => Value::String(s.clone()),
        }
    }
}

/// One key to set, or to remove (`value: None`), as a path of keys from the document root.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Edit {
    pub(crate) path: Vec<String>,
    pub(crate) value: Option<Scalar>,
}

/// A YAML value on one line, for messages (`false`, `"false"`).
pub(crate) fn render(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim_end().replace('\n', " "))
            .unwrap_or_else(|_| "?".into()),
    }
}

/// The keys to set for a request, given the document as it is. Pure.
pub(crate) fn plan(text: &str, target: Target, req: &Request, name: &str) -> Result<Outcome> {
    let tree = parse(text, target, name)?;
    let (schema, schema_reason) = decide_schema(&tree, target, req, name)?;
    let mut notes = other_generation_notes(&tree, target, schema, req);
    let mut wanted = vec![Edit {
        path: target.path(schema.flag()),
        value: Some(Scalar::Bool(true)),
    }];
    // APC 2.x ignores the flat key: it is moved, not left behind looking like it does something.
    let flat = target.path(FLAT_FLAG);
    if schema == Schema::Nested && get(&tree, &flat).is_some() {
        notes.push(format!(
            "moving {} to {}: APC 2.x silently ignores the old key",
            flat.join("."),
            target.path(NESTED_FLAG).join(".")
        ));
        wanted.push(Edit {
            path: flat,
            value: None,
        });
    }
    if let Some(houston) = target.houston_prefix() {
        let mut path: Vec<String> = houston.iter().map(|s| s.to_string()).collect();
        path.push(RELEASES_CONFIGMAP_KEY.into());
        let current = get(&tree, &path);
        let name_to_set = match &req.releases_configmap {
            ReleasesConfigMap::Skip => None,
            ReleasesConfigMap::Name(n) => Some(n.clone()),
            ReleasesConfigMap::Default => match current.and_then(Value::as_str) {
                Some(existing) if !existing.is_empty() => {
                    if existing != DEFAULT_RELEASES_CONFIGMAP {
                        notes.push(format!(
                            "keeping {}: {existing} (pass --releases-configmap to change it)",
                            path.join(".")
                        ));
                    }
                    None
                }
                _ => Some(DEFAULT_RELEASES_CONFIGMAP.to_string()),
            },
        };
        if let Some(n) = name_to_set {
            if get(&tree, &["astronomer", "houston", "runtimeReleasesConfig"]).is_some() {
                notes.push(
                    "the file also has astronomer.houston.runtimeReleasesConfig (an inline catalog): with runtimeReleasesConfigMapName set, the chart mounts the ConfigMap instead and ignores the inline one".into(),
                );
            }
            wanted.push(Edit {
                path,
                value: Some(Scalar::Str(n)),
            });
        }
    }
    if let Some(repo) = &req.default_runtime_repository {
        wanted.push(Edit {
            path: target.path(DEFAULT_RUNTIME_REPOSITORY),
            value: Some(Scalar::Str(repo.clone())),
        });
    }

    for e in &wanted {
        check_parents(&tree, &e.path, name)?;
    }
    let mut edits = vec![];
    let mut changes = vec![];
    for e in wanted {
        let current = get(&tree, &e.path);
        let new = e.value.as_ref().map(Scalar::value);
        if current == new.as_ref() {
            continue;
        }
        changes.push(Change {
            key: e.path.join("."),
            old: current.cloned(),
            new: new.clone(),
        });
        edits.push(e);
    }
    let new_text = if edits.is_empty() {
        text.to_string()
    } else {
        apply(text, &tree, &edits, name)?
    };
    Ok(Outcome {
        schema,
        schema_reason,
        changes,
        notes,
        new_text,
    })
}

/// Every level above a key to set must be a mapping (or empty, which becomes one).
fn check_parents(tree: &Value, path: &[String], name: &str) -> Result<()> {
    let mut cur = tree;
    for (i, k) in path.iter().enumerate().take(path.len().saturating_sub(1)) {
        let Some(next) = cur.as_mapping().and_then(|m| m.get(k.as_str())) else {
            return Ok(());
        };
        let kind = match next {
            Value::Mapping(_) | Value::Null => {
                cur = next;
                continue;
            }
            Value::Sequence(_) => "a list",
            Value::Tagged(_) => "a tagged value",
            _ => "a single value",
        };
        let at = path[..=i].join(".");
        return Err(Error::new(format!(
            "cannot set {} in {name}: {at} is {kind}, not a mapping; nothing was written",
            path.join(".")
        ))
        .hint(format!(
            "fix {at} in the file (it holds Houston settings as keys)"
        )));
    }
    Ok(())
}

/// Makes the edits on the lossless tree and proves nothing else changed.
pub(crate) fn apply(text: &str, before: &Value, edits: &[Edit], name: &str) -> Result<String> {
    use std::str::FromStr;
    let cannot = |why: String| {
        Error::new(format!("cannot edit {name} safely: {why}; nothing was written")).hint(
            "add the keys by hand (`kubectl astro-sha enable --print` shows them), or report the file shape",
        )
    };
    let doc = yaml_edit::Document::from_str(text).map_err(|e| cannot(format!("{e}")))?;
    // Sets first, then removals: a removal never leaves a parent empty that a set then refills.
    for e in edits {
        let path = e.path.join(".");
        let res = match &e.value {
            Some(Scalar::Bool(b)) => doc.try_set_path(&path, *b),
            Some(Scalar::Str(s)) => doc.try_set_path(&path, s.as_str()),
            None => continue,
        };
        res.map_err(|err| cannot(format!("setting {path}: {err:?}")))?;
    }
    for e in edits.iter().filter(|e| e.value.is_none()) {
        let Some((last, parents)) = e.path.split_last() else {
            continue;
        };
        let mut m = doc
            .as_mapping()
            .ok_or_else(|| cannot("the document is not a mapping".into()))?;
        for k in parents {
            m = m.get_mapping(k.as_str()).ok_or_else(|| {
                cannot(format!(
                    "removing {}: {k} is not a block mapping",
                    e.path.join(".")
                ))
            })?;
        }
        m.remove(last.as_str())
            .ok_or_else(|| cannot(format!("removing {}: not found", e.path.join("."))))?;
    }
    let out = doc.to_string();
    verify(before, &out, edits).map_err(cannot)?;
    Ok(out)
}

/// The new text must parse to exactly the old tree plus the edits.
pub(crate) fn verify(
    before: &Value,
    new_text: &str,
    edits: &[Edit],
) -> std::result::Result<(), String> {
    let after: Value = serde_yaml_ng::from_str(new_text)
        .map_err(|e| format!("the edited text does not parse ({e})"))?;
    let mut expected = before.clone();
    for e in edits {
        match &e.value {
            Some(v) => set(&mut expected, &e.path, v.value()),
            None => remove(&mut expected, &e.path),
        }
    }
    if after == expected {
        return Ok(());
    }
    let at = first_difference(&expected, &after, &mut vec![]).unwrap_or_else(|| "?".into());
    Err(format!(
        "the edit would also change `{at}` (shared anchor or an unusual layout)"
    ))
}

/// Removes a key from a serde tree, if every level above it is a mapping.
fn remove(tree: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = tree;
    for k in parents {
        match cur.as_mapping_mut().and_then(|m| m.get_mut(k.as_str())) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_mapping_mut() {
        m.remove(last.as_str());
    }
}

/// Sets a value in a serde tree, turning missing or null levels into mappings.
fn set(tree: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = tree;
    for k in parents {
        if !matches!(cur, Value::Mapping(_)) {
            *cur = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(m) = cur else { return };
        cur = m
            .entry(Value::String(k.clone()))
            .or_insert(Value::Mapping(Mapping::new()));
        if cur.is_null() {
            *cur = Value::Mapping(Mapping::new());
        }
    }
    if !matches!(cur, Value::Mapping(_)) {
        *cur = Value::Mapping(Mapping::new());
    }
    if let Value::Mapping(m) = cur {
        m.insert(Value::String(last.clone()), value);
    }
}

fn first_difference(a: &Value, b: &Value, at: &mut Vec<String>) -> Option<String> {
    match (a, b) {
        (Value::Mapping(x), Value::Mapping(y)) => {
            for (k, va) in x {
                let key = k.as_str().map(str::to_string).unwrap_or_else(|| render(k));
                at.push(key);
                let found = match y.get(k) {
                    Some(vb) => first_difference(va, vb, at),
                    None => Some(at.join(".")),
                };
                at.pop();
                if found.is_some() {
                    return found;
                }
            }
            for k in y.keys() {
                if !x.contains_key(k) {
                    let key = k.as_str().map(str::to_string).unwrap_or_else(|| render(k));
                    at.push(key);
                    let s = at.join(".");
                    at.pop();
                    return Some(s);
                }
            }
            None
        }
        (Value::Sequence(x), Value::Sequence(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                at.push(i.to_string());
                let found = first_difference(va, vb, at);
                at.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        _ if a == b => None,
        _ => Some(if at.is_empty() {
            "(root)".into()
        } else {
            at.join(".")
        }),
    }
}

/// The values to merge by hand, for `--print`: only the keys, in the chosen schema.
pub(crate) fn snippet(
    schema: Schema,
    releases_configmap: Option<&str>,
    default_runtime_repository: Option<&str>,
) -> String {
    let mut tree = Value::Mapping(Mapping::new());
    let t = Target::ValuesFile;
    if let Some(n) = releases_configmap {
        set(
            &mut tree,
            &["astronomer", "houston", RELEASES_CONFIGMAP_KEY].map(String::from),
            Value::String(n.into()),
        );
    }
    set(&mut tree, &t.path(schema.flag()), Value::Bool(true));
    if let Some(r) = default_runtime_repository {
        set(
            &mut tree,
            &t.path(DEFAULT_RUNTIME_REPOSITORY),
            Value::String(r.into()),
        );
    }
    serde_yaml_ng::to_string(&tree).unwrap_or_default()
}

/// A unified diff of two texts, for people (stderr) or for `--dry-run` (stdout).
pub(crate) fn unified_diff(old: &str, new: &str, name: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(name, name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    /// A 1.x platform: most tests are about the edit, not the version.
    fn req() -> Request {
        Request {
            chart_version: Some("1.1.0".into()),
            chart_version_source: None,
            chart_version_unknown: None,
            releases_configmap: ReleasesConfigMap::Default,
            default_runtime_repository: None,
        }
    }

    fn with_chart(v: &str) -> Request {
        Request {
            chart_version: Some(v.into()),
            ..req()
        }
    }

    fn unknown() -> Request {
        Request {
            chart_version: None,
            chart_version_unknown: Some("the cluster is unreachable".into()),
            ..req()
        }
    }

    const BASE: &str = "# platform values\nglobal:\n  baseDomain: example.com  # ours\n\nastronomer:\n  houston:\n    config:\n      deployments:\n        hardDeleteDeployment: true\n";

    #[test]
    fn chart_versions() {
        assert_eq!(chart_major("0.37.4"), Some(0));
        assert_eq!(chart_major("v1.2.0"), Some(1));
        assert_eq!(chart_major("2.1.0-rc.1"), Some(2));
        assert_eq!(chart_major("x"), None);
        assert_eq!(schema_for_chart("0.37.4"), Some(Schema::Flat));
        assert_eq!(schema_for_chart("1.10.1"), Some(Schema::Flat));
        assert_eq!(schema_for_chart("2.0.0"), Some(Schema::Nested));
    }

    /// 0.37.x and 1.x read only the flat key, 2.x only the nested one (https://www.astronomer.io/docs/astro-private-cloud/v-2-x/breaking-changes-removals).
    #[test]
    fn flat_for_0_37_and_1x_nested_for_2x() {
        for chart in ["0.37.4", "1.1.0"] {
            let o = plan(BASE, Target::ValuesFile, &with_chart(chart), "v").unwrap();
            assert_eq!(o.schema, Schema::Flat, "{chart}");
            assert!(o.new_text.contains("        customImageShaEnabled: true\n"));
            assert!(!o.new_text.contains("runtimeManagement"));
        }
        assert!(plan(BASE, Target::ValuesFile, &req(), "v")
            .unwrap()
            .new_text
            .contains("    runtimeReleasesConfigMapName: astro-runtime-base-images\n"));
        let o = plan(BASE, Target::ValuesFile, &with_chart("2.1.0"), "v").unwrap();
        assert_eq!(o.schema, Schema::Nested);
        assert!(o.new_text.contains(
            "        runtimeManagement:\n          customImageSha:\n            enabled: true\n"
        ));
        assert!(!o.new_text.contains("customImageShaEnabled"));
        assert!(o
            .new_text
            .starts_with("# platform values\nglobal:\n  baseDomain: example.com  # ours\n\n"));
    }

    /// No version and no 2.x-only key: refused, naming --chart-version and why the cluster did
    /// not tell. A flat key alone decides nothing (2.x ignores it rather than rejecting it).
    #[test]
    fn unknown_version_is_refused() {
        let flat = BASE.replace("hardDeleteDeployment: true", "customImageShaEnabled: false");
        for text in [BASE, flat.as_str()] {
            let e = plan(text, Target::ValuesFile, &unknown(), "values.yaml").unwrap_err();
            assert!(
                e.message
                    .contains("cannot tell which platform chart version values.yaml is for"),
                "{}",
                e.message
            );
            assert!(
                e.message.contains("the cluster is unreachable"),
                "{}",
                e.message
            );
            assert!(e.message.contains("nothing was written"), "{}", e.message);
            assert!(e
                .hint
                .as_deref()
                .unwrap_or_default()
                .contains("--chart-version"));
            assert_eq!(e.code(), crate::error::EXIT_ERROR);
        }
        let e = plan("{}\n", Target::LocalProduction, &unknown(), "lp").unwrap_err();
        assert!(e.hint.unwrap().contains("--chart-version"));
        let e = plan(BASE, Target::ValuesFile, &with_chart("latest"), "v").unwrap_err();
        assert!(
            e.message.contains("\"latest\" is not a version"),
            "{}",
            e.message
        );
    }

    /// A 2.x-only key (runtimeManagement, updateRuntimeCheck) says 2.x without a version.
    #[test]
    fn a_2x_only_key_decides_without_a_version() {
        for extra in [
            "runtimeManagement:\n          listAllRuntimeVersions:\n            enabled: true",
            "hardDeleteDeployment: true\n      updateRuntimeCheck:\n        enabled: false",
        ] {
            let text = BASE.replace("hardDeleteDeployment: true", extra);
            let o = plan(&text, Target::ValuesFile, &unknown(), "v").unwrap();
            assert_eq!(o.schema, Schema::Nested, "{extra}");
            assert!(
                o.schema_reason.contains("a key only APC 2.x reads"),
                "{}",
                o.schema_reason
            );
            assert!(o.new_text.contains("customImageSha:\n"), "{}", o.new_text);
        }
    }

    /// On 2.x the flat key is moved: removed where it was, the nested key set; the change list
    /// says both. Its inline comment goes with it.
    #[test]
    fn flat_key_is_moved_on_2x() {
        let flat = BASE.replace(
            "hardDeleteDeployment: true",
            "hardDeleteDeployment: true\n        customImageShaEnabled: true  # by hand",
        );
        let o = plan(&flat, Target::ValuesFile, &with_chart("2.1.0"), "v").unwrap();
        assert_eq!(o.schema, Schema::Nested);
        assert!(
            !o.new_text.contains("customImageShaEnabled"),
            "{}",
            o.new_text
        );
        assert!(o.new_text.contains(
            "        hardDeleteDeployment: true\n        runtimeManagement:\n          customImageSha:\n            enabled: true\n"
        ), "{}", o.new_text);
        let removed = o
            .changes
            .iter()
            .find(|c| c.key == "astronomer.houston.config.deployments.customImageShaEnabled")
            .expect("the removal is a change");
        assert_eq!(
            (&removed.old, &removed.new),
            (&Some(Value::Bool(true)), &None)
        );
        // typed in JSON: a boolean, and a string without YAML's quotes inside it
        let json = serde_json::to_value(&o.changes).unwrap();
        assert!(
            json.as_array().unwrap().iter().any(|c| c["new"] == true),
            "{json}"
        );
        assert!(
            !json.to_string().contains("\\\""),
            "no quotes inside strings: {json}"
        );
        assert!(
            o.notes.iter().any(|n| n.contains("silently ignores")),
            "{:?}",
            o.notes
        );
        let diff = unified_diff(&flat, &o.new_text, "v");
        assert!(
            diff.contains("-        customImageShaEnabled: true  # by hand\n"),
            "{diff}"
        );
        // Idempotent afterwards.
        let again = plan(&o.new_text, Target::ValuesFile, &with_chart("2.1.0"), "v").unwrap();
        assert!(!again.changed(), "{:?}", again.changes);
        // In local-production.yaml too.
        let lp = "deployments:\n  customImageShaEnabled: true\n  hardDeleteDeployment: true\n";
        let o = plan(lp, Target::LocalProduction, &with_chart("2.0.1"), "lp").unwrap();
        assert_eq!(
            o.new_text,
            "deployments:\n  hardDeleteDeployment: true\n  runtimeManagement:\n    customImageSha:\n      enabled: true\n"
        );
    }

    /// Before 2.x a nested key is reported and left alone; the flat key is written.
    #[test]
    fn nested_key_is_reported_before_2x() {
        let nested = BASE.replace(
            "hardDeleteDeployment: true",
            "runtimeManagement:\n          customImageSha:\n            enabled: true",
        );
        let o = plan(&nested, Target::ValuesFile, &with_chart("0.37.4"), "v").unwrap();
        assert_eq!(o.schema, Schema::Flat);
        assert_eq!(o.changes.len(), 2, "flag + ConfigMap name: {:?}", o.changes);
        assert!(o
            .new_text
            .contains("          customImageSha:\n            enabled: true\n"));
        assert!(
            o.new_text.contains("        customImageShaEnabled: true\n"),
            "{}",
            o.new_text
        );
        assert!(
            o.notes.iter().any(|n| n.contains(
                "reads only astronomer.houston.config.deployments.customImageShaEnabled"
            )),
            "{:?}",
            o.notes
        );
    }

    /// Keys 2.x moved that the tool does not write are named when a 2.x file still has them.
    #[test]
    fn other_moved_keys_are_reported_on_2x() {
        let text = BASE.replace(
            "hardDeleteDeployment: true",
            "astroRuntimeReleasesFile: /x.json\n      updateRuntimeCheckEnabled: true",
        );
        let o = plan(&text, Target::ValuesFile, &with_chart("2.1.0"), "v").unwrap();
        for k in [
            "deployments.astroRuntimeReleasesFile",
            "config.updateRuntimeCheckEnabled",
        ] {
            assert!(
                o.notes
                    .iter()
                    .any(|n| n.contains(k) && n.contains("ignored by APC 2.x")),
                "{k}: {:?}",
                o.notes
            );
        }
        assert!(o.new_text.contains("astroRuntimeReleasesFile: /x.json\n"));
    }

    #[test]
    fn idempotent() {
        for chart in ["0.37.4", "2.1.0"] {
            let o = plan(BASE, Target::ValuesFile, &with_chart(chart), "v").unwrap();
            let again = plan(&o.new_text, Target::ValuesFile, &with_chart(chart), "v").unwrap();
            assert!(!again.changed(), "{chart}");
            assert_eq!(again.new_text, o.new_text);
        }
    }

    #[test]
    fn existing_configmap_name_is_kept_unless_asked() {
        let named = BASE.replace(
            "  houston:\n",
            "  houston:\n    runtimeReleasesConfigMapName: mine\n",
        );
        let o = plan(&named, Target::ValuesFile, &req(), "v").unwrap();
        assert_eq!(o.changes.len(), 1);
        assert!(o.new_text.contains("runtimeReleasesConfigMapName: mine\n"));
        assert!(o.notes.iter().any(|n| n.contains("keeping")));
        let r = Request {
            releases_configmap: ReleasesConfigMap::Name("astro-runtime-base-images".into()),
            ..req()
        };
        let o = plan(&named, Target::ValuesFile, &r, "v").unwrap();
        assert!(o
            .new_text
            .contains("runtimeReleasesConfigMapName: astro-runtime-base-images\n"));
        let r = Request {
            releases_configmap: ReleasesConfigMap::Skip,
            ..req()
        };
        let o = plan(BASE, Target::ValuesFile, &r, "v").unwrap();
        assert!(!o.new_text.contains("runtimeReleasesConfigMapName"));
    }

    #[test]
    fn default_runtime_repository() {
        let r = Request {
            default_runtime_repository: Some("mirror.corp/astronomer/astro-runtime".into()),
            ..req()
        };
        let o = plan(BASE, Target::ValuesFile, &r, "v").unwrap();
        assert!(o.new_text.contains(
            "        helm:\n          airflow:\n            defaultRuntimeRepository: mirror.corp/astronomer/astro-runtime\n"
        ), "{}", o.new_text);
    }

    #[test]
    fn local_production_is_the_config_at_the_root() {
        let lp = "publicSignups: false\ndeployments:\n  hardDeleteDeployment: true\n";
        let o = plan(lp, Target::LocalProduction, &with_chart("0.37.4"), "lp").unwrap();
        assert_eq!(
            o.new_text,
            "publicSignups: false\ndeployments:\n  hardDeleteDeployment: true\n  customImageShaEnabled: true\n"
        );
        let o = plan(lp, Target::LocalProduction, &with_chart("2.0.1"), "lp").unwrap();
        assert_eq!(
            o.new_text,
            "publicSignups: false\ndeployments:\n  hardDeleteDeployment: true\n  runtimeManagement:\n    customImageSha:\n      enabled: true\n"
        );
        let o = plan("{}\n", Target::LocalProduction, &req(), "lp").unwrap();
        let t: Value = serde_yaml_ng::from_str(&o.new_text).unwrap();
        assert_eq!(
            FlagState::read(&t, Target::LocalProduction).enabled(Some(0)),
            Some(true)
        );
    }

    #[test]
    fn invalid_yaml_names_line_and_column() {
        let e = plan(
            "global:\n  a: [1\n  b: 2\n",
            Target::ValuesFile,
            &req(),
            "values.yaml",
        )
        .unwrap_err();
        assert!(
            e.message.contains("values.yaml is not valid YAML at line"),
            "{}",
            e.message
        );
        assert!(e.message.contains("column"), "{}", e.message);
    }

    #[test]
    fn refuses_files_that_are_not_platform_values() {
        for (text, what) in [
            (
                "executor: KubernetesExecutor\nscheduler:\n  replicas: 1\n",
                "Airflow chart",
            ),
            ("foo: 1\n", "none of its top-level keys"),
            ("", "is empty"),
            ("- a\n", "is a list"),
        ] {
            let e = plan(text, Target::ValuesFile, &req(), "v").unwrap_err();
            assert!(e.message.contains(what), "{text:?}: {}", e.message);
            assert!(e.hint.is_some());
        }
    }

    #[test]
    fn refuses_an_edit_through_a_shared_anchor() {
        let text = "astronomer:\n  houston:\n    config:\n      deployments: &d\n        a: 1\n  other: *d\n";
        let e = plan(text, Target::ValuesFile, &req(), "v").unwrap_err();
        assert!(e.message.contains("astronomer.other"), "{}", e.message);
        let text = "x: &d\n  a: 1\nastronomer:\n  houston:\n    config:\n      deployments: *d\n";
        let e = plan(text, Target::ValuesFile, &req(), "v").unwrap_err();
        assert!(e.message.contains("cannot edit v safely"), "{}", e.message);
    }

    #[test]
    fn a_parent_that_is_not_a_mapping_is_named() {
        let text = "astronomer:\n  houston:\n    config:\n      deployments: [a]\n";
        let e = plan(text, Target::ValuesFile, &req(), "v").unwrap_err();
        assert!(
            e.message
                .contains("astronomer.houston.config.deployments is a list, not a mapping"),
            "{}",
            e.message
        );
    }

    /// 2.x reads only the nested key; 0.37.x/1.x only the flat one; unknown: only when both agree.
    #[test]
    fn flag_state_per_chart_version() {
        let flat = FlagState {
            flat: Some(serde_json::json!(true)),
            nested: None,
        };
        assert_eq!(flat.enabled(Some(0)), Some(true));
        assert_eq!(flat.enabled(Some(1)), Some(true));
        assert_eq!(
            flat.enabled(Some(2)),
            Some(false),
            "APC 2.x ignores the flat key"
        );
        assert_eq!(flat.enabled(None), None, "depends on the version");
        assert!(flat.flat_only_on_2x(Some(2)) && !flat.flat_only_on_2x(Some(1)));
        let nested = FlagState {
            flat: None,
            nested: Some(serde_json::json!(true)),
        };
        assert_eq!(
            nested.enabled(Some(1)),
            Some(false),
            "1.x does not read the nested key"
        );
        assert_eq!(nested.enabled(Some(2)), Some(true));
        assert!(nested.nested_only_before_2x(Some(0)));
        let both = FlagState {
            flat: Some(serde_json::json!(true)),
            nested: Some(serde_json::json!(true)),
        };
        assert_eq!(both.enabled(None), Some(true));
        let s = FlagState {
            flat: Some(serde_json::json!(true)),
            nested: Some(serde_json::json!(false)),
        };
        assert_eq!(s.enabled(Some(2)), Some(false), "2.x: the nested key");
        let s = FlagState {
            flat: Some(serde_json::json!("true")),
            nested: None,
        };
        assert_eq!(
            s.enabled(Some(0)),
            Some(false),
            "only a YAML boolean counts"
        );
        assert_eq!(FlagState::default().enabled(None), Some(false));
    }

    #[test]
    fn snippet_forms() {
        assert_eq!(
            snippet(Schema::Flat, Some("astro-runtime-base-images"), None),
            "astronomer:\n  houston:\n    runtimeReleasesConfigMapName: astro-runtime-base-images\n    config:\n      deployments:\n        customImageShaEnabled: true\n"
        );
        assert_eq!(
            snippet(Schema::Nested, None, Some("r/x")),
            "astronomer:\n  houston:\n    config:\n      deployments:\n        runtimeManagement:\n          customImageSha:\n            enabled: true\n        helm:\n          airflow:\n            defaultRuntimeRepository: r/x\n"
        );
    }
}
