//! Turning the custom-image-SHA feature on in YAML that people own: the platform chart's values
//! file, and Houston's `local-production.yaml` (the same config tree, at the root).
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
pub const FLAT_FLAG: &[&str] = &["customImageShaEnabled"];
/// The 2.x name of the same flag, under Houston's `deployments`.
pub const NESTED_FLAG: &[&str] = &["runtimeManagement", "customImageSha", "enabled"];
/// Default Runtime repository, under Houston's `deployments`.
pub const DEFAULT_RUNTIME_REPOSITORY: &[&str] = &["helm", "airflow", "defaultRuntimeRepository"];
/// Key under `astronomer.houston` naming the releases ConfigMap the chart mounts into Houston.
pub const RELEASES_CONFIGMAP_KEY: &str = "runtimeReleasesConfigMapName";
/// The name Astronomer's procedure uses, and `import` writes.
pub use crate::core::names::DEFAULT_RELEASES_CONFIGMAP;

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
pub enum Schema {
    /// `deployments.customImageShaEnabled` (platform 0.37.x, 1.x; 2.x migrates it).
    Flat,
    /// `deployments.runtimeManagement.customImageSha.enabled` (platform 2.x).
    Nested,
}

impl Schema {
    pub fn flag(&self) -> &'static [&'static str] {
        match self {
            Schema::Flat => FLAT_FLAG,
            Schema::Nested => NESTED_FLAG,
        }
    }
}

/// Where Houston's config lives in the document being edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
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

    fn path(&self, under_deployments: &[&str]) -> Vec<String> {
        self.deployments()
            .into_iter()
            .chain(under_deployments.iter().copied())
            .map(str::to_string)
            .collect()
    }
}

/// What to do about `astronomer.houston.runtimeReleasesConfigMapName`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleasesConfigMap {
    /// Set the default name unless the file already names one (kept: it may be deliberate).
    Default,
    /// Set this name (`--releases-configmap`).
    Name(String),
    /// Leave it alone (`--no-releases-configmap`).
    Skip,
}

#[derive(Clone, Debug)]
pub struct Request {
    /// Platform chart version, when known (flag or the cluster's Helm release).
    pub chart_version: Option<String>,
    /// Where that version came from, for the explanation.
    pub chart_version_source: Option<String>,
    pub releases_configmap: ReleasesConfigMap,
    pub default_runtime_repository: Option<String>,
}

/// One key set by the edit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub key: String,
    /// Rendered previous value; `None` when the key was added.
    pub old: Option<String>,
    pub new: String,
}

/// The result of planning an edit; `new_text == old text` when nothing changes.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub schema: Schema,
    pub schema_reason: String,
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
    #[serde(skip)]
    pub new_text: String,
}

impl Outcome {
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Parses YAML and checks it is what the target expects. Errors carry line and column.
pub fn parse(text: &str, target: Target, name: &str) -> Result<Value> {
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
pub fn chart_major(version: &str) -> Option<u64> {
    version
        .trim()
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .next()?
        .parse()
        .ok()
}

/// Platform 2.x reads the nested flag; earlier charts the flat one.
pub fn schema_for_chart(version: &str) -> Option<Schema> {
    chart_major(version).map(|m| if m >= 2 { Schema::Nested } else { Schema::Flat })
}

/// Value at a path of keys, if every level is a mapping holding the key.
pub fn get<'a, S: AsRef<str>>(tree: &'a Value, path: &[S]) -> Option<&'a Value> {
    let mut cur = tree;
    for k in path {
        cur = cur.as_mapping()?.get(k.as_ref())?;
    }
    Some(cur)
}

/// What the file alone says about the schema, if anything: an existing flag in either form, or
/// other 2.x keys under `runtimeManagement`. `None` means the chart version must decide.
pub fn schema_from_file(tree: &Value, target: Target) -> Option<(Schema, String)> {
    let d = target.deployments();
    let flat = get(tree, &target.path(FLAT_FLAG)).is_some();
    let nested = get(tree, &target.path(NESTED_FLAG)).is_some();
    let uses_rm = get(tree, &target.path(&["runtimeManagement"])).is_some();
    let prefix = d.join(".");
    if nested || uses_rm {
        Some((
            Schema::Nested,
            format!("the file already uses {prefix}.runtimeManagement (platform 2.x schema)"),
        ))
    } else if flat {
        Some((
            Schema::Flat,
            format!("the file already has {prefix}.customImageShaEnabled"),
        ))
    } else {
        None
    }
}

/// Which flag is enabled in a tree, in either form. Houston 2.x migrates the flat key to the
/// nested one at start-up; earlier Houstons read only the flat key.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagState {
    /// `customImageShaEnabled` as written (absent: `None`).
    pub flat: Option<serde_json::Value>,
    /// `runtimeManagement.customImageSha.enabled` as written.
    pub nested: Option<serde_json::Value>,
}

impl FlagState {
    pub fn read(tree: &Value, target: Target) -> FlagState {
        let conv = |v: &Value| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
        FlagState {
            flat: get(tree, &target.path(FLAT_FLAG)).map(conv),
            nested: get(tree, &target.path(NESTED_FLAG)).map(conv),
        }
    }

    /// Whether Houston of this chart major version would see the feature on. Unknown version:
    /// on if either form says `true`.
    pub fn enabled(&self, chart_major: Option<u64>) -> bool {
        let t = |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| v.as_bool()) == Some(true);
        match chart_major {
            Some(m) if m >= 2 => match &self.nested {
                Some(_) => t(&self.nested),
                None => t(&self.flat),
            },
            Some(_) => t(&self.flat),
            None => t(&self.flat) || t(&self.nested),
        }
    }

    pub fn is_set(&self) -> bool {
        self.flat.is_some() || self.nested.is_some()
    }

    /// `customImageShaEnabled: true`, `runtimeManagement...enabled: false`, or `not set`.
    pub fn describe(&self) -> String {
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

/// The form(s) to write and why, plus notes about the other form. An existing flag key is always
/// the one updated (never a second one added); otherwise the file's other 2.x keys, then the chart
/// version, decide.
fn choose_schema(
    tree: &Value,
    target: Target,
    req: &Request,
) -> (Vec<Schema>, Schema, String, Vec<String>) {
    let prefix = target.deployments().join(".");
    let flat = get(tree, &target.path(FLAT_FLAG)).is_some();
    let nested = get(tree, &target.path(NESTED_FLAG)).is_some();
    let uses_rm = get(tree, &target.path(&["runtimeManagement"])).is_some();
    let chart = req.chart_version.as_deref().unwrap_or_default();
    let chart_schema = req.chart_version.as_deref().and_then(schema_for_chart);
    let chart_src = req
        .chart_version_source
        .as_deref()
        .map(|s| format!("; version {s}"))
        .unwrap_or_default();
    let (would, would_reason) = if uses_rm {
        (
            Schema::Nested,
            format!("the file already uses {prefix}.runtimeManagement (platform 2.x schema)"),
        )
    } else if let Some(s) = chart_schema {
        let form = match s {
            Schema::Nested => "the nested 2.x form",
            Schema::Flat => "the flat form",
        };
        (s, format!("platform chart {chart} reads {form}{chart_src}"))
    } else {
        (
            Schema::Flat,
            "the chart version is unknown and the file does not use runtimeManagement: the flat key is read by every platform version (2.x migrates it at start-up)".into(),
        )
    };
    let mut notes = vec![];
    let (targets, reason) = match (flat, nested) {
        (true, true) => {
            notes.push(format!(
                "the file holds both {prefix}.customImageShaEnabled and {prefix}.runtimeManagement.customImageSha.enabled; both are set to true so they cannot disagree: remove the one your platform version does not read"
            ));
            (
                vec![Schema::Flat, Schema::Nested],
                "the file already has both forms".to_string(),
            )
        }
        (true, false) => {
            if would == Schema::Nested {
                notes.push(format!(
                    "the file already has the flat {prefix}.customImageShaEnabled: updating that one rather than adding the nested 2.x form (Houston 2.x migrates it at start-up)"
                ));
            }
            (
                vec![Schema::Flat],
                format!("the file already has {prefix}.customImageShaEnabled"),
            )
        }
        (false, true) => (
            vec![Schema::Nested],
            format!("the file already has {prefix}.runtimeManagement.customImageSha.enabled"),
        ),
        (false, false) => (vec![would], would_reason),
    };
    if targets.contains(&Schema::Nested) && chart_schema == Some(Schema::Flat) {
        notes.push(format!(
            "platform chart {chart} is older than 2.x: its Houston reads only {prefix}.customImageShaEnabled, not the nested form this file uses"
        ));
    }
    let schema = if targets.len() == 1 {
        targets[0]
    } else {
        would
    };
    (targets, schema, reason, notes)
}

/// A scalar to write.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
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

/// One key to set, as a path of keys from the document root.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    pub path: Vec<String>,
    pub value: Scalar,
}

fn render(v: &Value) -> String {
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
pub fn plan(text: &str, target: Target, req: &Request, name: &str) -> Result<Outcome> {
    let tree = parse(text, target, name)?;
    let (targets, schema, schema_reason, mut notes) = choose_schema(&tree, target, req);
    let mut wanted: Vec<Edit> = targets
        .iter()
        .map(|s| Edit {
            path: target.path(s.flag()),
            value: Scalar::Bool(true),
        })
        .collect();
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
                value: Scalar::Str(n),
            });
        }
    }
    if let Some(repo) = &req.default_runtime_repository {
        wanted.push(Edit {
            path: target.path(DEFAULT_RUNTIME_REPOSITORY),
            value: Scalar::Str(repo.clone()),
        });
    }

    for e in &wanted {
        check_parents(&tree, &e.path, name)?;
    }
    let mut edits = vec![];
    let mut changes = vec![];
    for e in wanted {
        let current = get(&tree, &e.path);
        if current == Some(&e.value.value()) {
            continue;
        }
        changes.push(Change {
            key: e.path.join("."),
            old: current.map(render),
            new: render(&e.value.value()),
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
pub fn apply(text: &str, before: &Value, edits: &[Edit], name: &str) -> Result<String> {
    use std::str::FromStr;
    let cannot = |why: String| {
        Error::new(format!("cannot edit {name} safely: {why}; nothing was written")).hint(
            "add the keys by hand (`kubectl astro-sha enable --print` shows them), or report the file shape",
        )
    };
    let doc = yaml_edit::Document::from_str(text).map_err(|e| cannot(format!("{e}")))?;
    for e in edits {
        let path = e.path.join(".");
        let res = match &e.value {
            Scalar::Bool(b) => doc.try_set_path(&path, *b),
            Scalar::Str(s) => doc.try_set_path(&path, s.as_str()),
        };
        res.map_err(|err| cannot(format!("setting {path}: {err:?}")))?;
    }
    let out = doc.to_string();
    verify(before, &out, edits).map_err(cannot)?;
    Ok(out)
}

/// The new text must parse to exactly the old tree plus the edits.
pub fn verify(before: &Value, new_text: &str, edits: &[Edit]) -> std::result::Result<(), String> {
    let after: Value = serde_yaml_ng::from_str(new_text)
        .map_err(|e| format!("the edited text does not parse ({e})"))?;
    let mut expected = before.clone();
    for e in edits {
        set(&mut expected, &e.path, e.value.value());
    }
    if after == expected {
        return Ok(());
    }
    let at = first_difference(&expected, &after, &mut vec![]).unwrap_or_else(|| "?".into());
    Err(format!(
        "the edit would also change `{at}` (shared anchor or an unusual layout)"
    ))
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
pub fn snippet(
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
pub fn unified_diff(old: &str, new: &str, name: &str) -> String {
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

    fn req() -> Request {
        Request {
            chart_version: None,
            chart_version_source: None,
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

    #[test]
    fn flat_by_default_nested_for_2x() {
        let o = plan(BASE, Target::ValuesFile, &req(), "v").unwrap();
        assert_eq!(o.schema, Schema::Flat);
        assert!(o.new_text.contains("        customImageShaEnabled: true\n"));
        assert!(o
            .new_text
            .contains("    runtimeReleasesConfigMapName: astro-runtime-base-images\n"));
        assert!(o
            .new_text
            .starts_with("# platform values\nglobal:\n  baseDomain: example.com  # ours\n\n"));
        let o = plan(BASE, Target::ValuesFile, &with_chart("2.1.0"), "v").unwrap();
        assert_eq!(o.schema, Schema::Nested);
        assert!(o.new_text.contains(
            "        runtimeManagement:\n          customImageSha:\n            enabled: true\n"
        ));
        assert!(!o.new_text.contains("customImageShaEnabled"));
        let o = plan(BASE, Target::ValuesFile, &with_chart("1.10.1"), "v").unwrap();
        assert_eq!(o.schema, Schema::Flat);
    }

    #[test]
    fn existing_form_wins_over_chart_version() {
        let flat = BASE.replace(
            "hardDeleteDeployment: true",
            "customImageShaEnabled: false  # later",
        );
        let o = plan(&flat, Target::ValuesFile, &with_chart("2.1.0"), "v").unwrap();
        assert_eq!(o.schema, Schema::Flat);
        assert!(o
            .new_text
            .contains("customImageShaEnabled: true  # later\n"));
        assert!(!o.new_text.contains("runtimeManagement"));
        assert!(
            o.notes.iter().any(|n| n.contains("updating that one")),
            "{:?}",
            o.notes
        );

        let nested = BASE.replace(
            "hardDeleteDeployment: true",
            "runtimeManagement:\n          listAllRuntimeVersions:\n            enabled: true",
        );
        let o = plan(&nested, Target::ValuesFile, &with_chart("0.37.4"), "v").unwrap();
        assert_eq!(o.schema, Schema::Nested);
        assert!(o
            .new_text
            .contains("          customImageSha:\n            enabled: true\n"));
        assert!(
            o.notes.iter().any(|n| n.contains("older than 2.x")),
            "{:?}",
            o.notes
        );
    }

    #[test]
    fn both_forms_present_are_both_set() {
        let both = BASE.replace(
            "hardDeleteDeployment: true",
            "customImageShaEnabled: false\n        runtimeManagement:\n          customImageSha:\n            enabled: false",
        );
        let o = plan(&both, Target::ValuesFile, &req(), "v").unwrap();
        assert_eq!(o.changes.len(), 3, "{:?}", o.changes);
        let t: Value = serde_yaml_ng::from_str(&o.new_text).unwrap();
        let s = FlagState::read(&t, Target::ValuesFile);
        assert_eq!(s.flat, Some(serde_json::json!(true)));
        assert_eq!(s.nested, Some(serde_json::json!(true)));
    }

    #[test]
    fn idempotent() {
        let o = plan(BASE, Target::ValuesFile, &req(), "v").unwrap();
        let again = plan(&o.new_text, Target::ValuesFile, &with_chart("2.1.0"), "v").unwrap();
        assert!(!again.changed());
        assert_eq!(again.new_text, o.new_text);
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
        assert!(FlagState::read(&t, Target::LocalProduction).enabled(Some(0)));
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

    #[test]
    fn flag_state_per_chart_version() {
        let s = FlagState {
            flat: Some(serde_json::json!(true)),
            nested: None,
        };
        assert!(s.enabled(Some(0)) && s.enabled(Some(2)) && s.enabled(None));
        let s = FlagState {
            flat: None,
            nested: Some(serde_json::json!(true)),
        };
        assert!(
            !s.enabled(Some(1)),
            "Houston 1.x does not read the nested key"
        );
        assert!(s.enabled(Some(2)) && s.enabled(None));
        let s = FlagState {
            flat: Some(serde_json::json!(true)),
            nested: Some(serde_json::json!(false)),
        };
        assert!(!s.enabled(Some(2)), "2.x: the nested key wins");
        let s = FlagState {
            flat: Some(serde_json::json!("true")),
            nested: None,
        };
        assert!(!s.enabled(Some(0)), "only a YAML boolean counts");
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
