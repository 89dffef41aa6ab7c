//! What `enable` decides without I/O: which platform chart version picks the schema (and where it
//! came from), which flags a person had turned off on purpose, and the messages chosen from those
//! states. The text edit itself is `core::values`; `commands/enable.rs` reads, asks and writes.

use serde::Serialize;
use serde_yaml_ng::Value;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::core::helm::Release;
use crate::core::names::LOCAL_PRODUCTION_KEY;
use crate::core::values::{
    self, FlagState, Outcome, ReleasesConfigMap, Request, Schema, Target, FLAT_FLAG, NESTED_FLAG,
};
use crate::error::{Error, ErrorKind, Result};

/// Where a platform chart version was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VersionSource {
    /// The newest deployed Helm release Secret of the platform.
    HelmRelease {
        secret: String,
        /// Named in the values-file mode, where the namespace is not otherwise on screen.
        namespace: Option<String>,
    },
    /// `chart: astronomer-X` on Houston's Deployment.
    ChartLabel {
        deployment: String,
        namespace: Option<String>,
        /// Why the Helm release was not the source.
        why_not_release: Option<String>,
    },
}

impl VersionSource {
    fn describe(&self) -> String {
        let ns = |n: &Option<String>| {
            n.as_ref()
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default()
        };
        match self {
            VersionSource::HelmRelease { secret, namespace } => {
                format!("from Helm release Secret {secret}{}", ns(namespace))
            }
            VersionSource::ChartLabel {
                deployment,
                namespace,
                why_not_release,
            } => format!(
                "from the chart label of deployment/{deployment}{}{}",
                ns(namespace),
                why_not_release
                    .as_ref()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// The platform chart version the cluster told, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClusterVersion {
    pub(crate) version: String,
    pub(crate) source: VersionSource,
}

const FROM_FLAG: &str = "from --chart-version";

/// The version the cluster tells: the Helm release's, else Houston's chart label. `namespace`:
/// named in the source (the values-file mode, where the namespace is not otherwise on screen),
/// which then also says why the release was not read. `Err`: why neither told.
pub(crate) fn cluster_version(
    release: std::result::Result<&Release, &str>,
    label: Option<String>,
    houston: String,
    namespace: Option<&str>,
) -> std::result::Result<ClusterVersion, String> {
    let why = match release {
        Ok(r) => {
            return Ok(ClusterVersion {
                version: r.chart_version.clone(),
                source: VersionSource::HelmRelease {
                    secret: r.secret.clone(),
                    namespace: namespace.map(str::to_string),
                },
            })
        }
        Err(why) => why,
    };
    let version = label.ok_or_else(|| why.to_string())?;
    Ok(ClusterVersion {
        version,
        source: VersionSource::ChartLabel {
            deployment: houston,
            namespace: namespace.map(str::to_string),
            why_not_release: namespace.map(|_| why.to_string()),
        },
    })
}

/// The request for a values file or the snippet: `--chart-version`, else what the cluster told
/// (`cluster` is `None` when the file alone decides and the cluster was not asked).
pub(crate) fn file_request(
    flag: Option<&str>,
    cluster: Option<std::result::Result<ClusterVersion, String>>,
    releases_configmap: ReleasesConfigMap,
    default_runtime_repository: Option<String>,
) -> Request {
    let mut req = Request {
        chart_version: None,
        chart_version_source: None,
        chart_version_unknown: None,
        releases_configmap,
        default_runtime_repository,
    };
    match (flag, cluster) {
        (Some(v), _) => {
            req.chart_version = Some(v.to_string());
            req.chart_version_source = Some(FROM_FLAG.into());
        }
        (None, Some(Ok(c))) => {
            req.chart_version = Some(c.version);
            req.chart_version_source = Some(c.source.describe());
        }
        (None, Some(Err(why))) => {
            req.chart_version_unknown = Some(format!(
                "the cluster did not tell ({})",
                why.lines().next().unwrap_or_default()
            ))
        }
        (None, None) => {}
    }
    req
}

/// The request of a live change. The platform's own version decides; `--chart-version` stands in
/// when the cluster does not tell, and is refused when it names the other schema than the
/// platform's (its key would be one the running Houston ignores).
pub(crate) fn live_request(
    flag: Option<&str>,
    cluster: Option<ClusterVersion>,
    unknown_why: String,
    default_runtime_repository: Option<String>,
) -> Result<Request> {
    let (chart_version, chart_version_source) = match (flag, cluster) {
        (Some(f), Some(c)) => {
            let (mine, theirs) = (
                values::schema_for_chart(f),
                values::schema_for_chart(&c.version),
            );
            if let (Some(mine), Some(theirs)) = (mine, theirs) {
                if mine != theirs {
                    return Err(disagreeing_flag(f, mine, &c, theirs));
                }
            }
            let src = format!(
                "{FROM_FLAG}; the platform says {} ({}), the same form",
                c.version,
                c.source.describe()
            );
            (Some(f.to_string()), Some(src))
        }
        (Some(f), None) => (Some(f.to_string()), Some(FROM_FLAG.to_string())),
        (None, Some(c)) => (Some(c.version), Some(c.source.describe())),
        (None, None) => (None, None),
    };
    let chart_version_unknown = chart_version.is_none().then_some(unknown_why);
    Ok(Request {
        chart_version,
        chart_version_source,
        chart_version_unknown,
        releases_configmap: ReleasesConfigMap::Skip,
        default_runtime_repository,
    })
}

fn disagreeing_flag(flag: &str, mine: Schema, c: &ClusterVersion, theirs: Schema) -> Error {
    Error::new(format!(
        "--chart-version {flag} reads the {} form, but the platform is chart {} ({}), which reads the {} form: its Houston would ignore the key; nothing was changed",
        form(mine),
        c.version,
        c.source.describe(),
        form(theirs)
    ))
    .hint("drop --chart-version: with --in-cluster the platform's own version decides (the flag is for a platform whose Helm release and chart label are both unreadable)")
}

/// Why a live change knows no chart version, for the refusal.
pub(crate) fn nothing_told(release: &str, houston: &str) -> String {
    format!("no readable Helm release of {release} and no chart label on deployment/{houston}")
}

/// The note when the Helm release cannot be read in a live change: where the version comes from
/// instead, as the flags and the label say.
pub(crate) fn release_unreadable_note(
    why: &str,
    flag: Option<&str>,
    label: Option<&str>,
) -> String {
    let version = match (flag, label) {
        (Some(v), _) => format!("the chart version comes from --chart-version {v}"),
        (None, Some(v)) => format!("the chart version comes from Houston's chart label ({v})"),
        (None, None) => "Houston's Deployment has no chart label either".into(),
    };
    format!("cannot read the platform's Helm release ({why}); {version}, and the Helm values are not compared")
}

/// The schema of `--print` without a values file: the version alone decides. Its refusals speak
/// of the snippet, not of a file, and print nothing.
pub(crate) fn snippet_schema(req: &Request) -> Result<(Schema, String)> {
    let hint = "pass --chart-version VERSION: the platform chart version, e.g. 0.37.4, 1.1.0 or 2.1.0 (`helm list -n <platform namespace>` shows it), or --values FILE of a 2.x platform";
    match req.chart_version.as_deref() {
        Some(v) if values::schema_for_chart(v).is_some() => {
            values::decide_schema(&Value::Null, Target::ValuesFile, req, "the snippet")
        }
        Some(v) => Err(Error::new(format!(
            "platform chart version {v:?} ({}) is not a version; nothing was printed",
            req.chart_version_source.as_deref().unwrap_or(FROM_FLAG)
        ))
        .hint(hint)),
        None => Err(Error::new(format!(
            "cannot tell which platform chart version the snippet is for, so not which key turns the feature on: APC 2.x reads only deployments.runtimeManagement.customImageSha.enabled, 0.37.x and 1.x only deployments.customImageShaEnabled. No --chart-version was given and {}; nothing was printed",
            req.chart_version_unknown.as_deref().unwrap_or("no chart version was read from the cluster")
        ))
        .hint(hint)),
    }
}

fn form(schema: Schema) -> &'static str {
    match schema {
        Schema::Flat => "flat customImageShaEnabled",
        Schema::Nested => "nested runtimeManagement.customImageSha.enabled",
    }
}

/// `schema: flat customImageShaEnabled (why)`.
pub(crate) fn schema_line(schema: Schema, reason: &str) -> String {
    format!("schema: {} ({reason})", form(schema))
}

/// The releases ConfigMap name `--print` with a values file puts in the snippet: the flag's, else
/// the file's, else the default.
pub(crate) fn snippet_configmap(choice: &ReleasesConfigMap, tree: &Value) -> Option<String> {
    match choice {
        ReleasesConfigMap::Skip => None,
        ReleasesConfigMap::Name(n) => Some(n.clone()),
        ReleasesConfigMap::Default => values::get(
            tree,
            &["astronomer", "houston", values::RELEASES_CONFIGMAP_KEY],
        )
        .and_then(|v| v.as_str().map(str::to_string))
        .or_else(|| Some(values::DEFAULT_RELEASES_CONFIGMAP.to_string())),
    }
}

/// The releases ConfigMap an in-cluster change expects Houston to mount: the flag's, else the
/// Helm values', else the default; `None` with `--no-releases-configmap`.
pub(crate) fn expected_mount(
    choice: &ReleasesConfigMap,
    release_values: Option<&serde_json::Value>,
) -> Option<String> {
    match choice {
        ReleasesConfigMap::Skip => None,
        ReleasesConfigMap::Name(n) => Some(n.clone()),
        ReleasesConfigMap::Default => Some(
            release_values
                .and_then(|v| v.pointer("/astronomer/houston/runtimeReleasesConfigMapName"))
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| values::DEFAULT_RELEASES_CONFIGMAP.to_string()),
        ),
    }
}

/// The note when Houston does not mount that ConfigMap: `--in-cluster` cannot add the volume.
pub(crate) fn unmounted_note(name: &str) -> String {
    format!("Houston does not mount the releases ConfigMap {name:?} yet. That volume comes from astronomer.houston.runtimeReleasesConfigMapName in the values file and a helm upgrade (`kubectl astro-sha enable --values values.yaml`); --in-cluster does not change Houston's Deployment spec")
}

/// Whether the platform's Helm values already turn the feature on for this chart version.
pub(crate) fn values_enable(
    release_values: &serde_json::Value,
    chart_version: Option<&str>,
) -> bool {
    let tree: Value = serde_yaml_ng::to_value(release_values).unwrap_or(Value::Null);
    FlagState::read(&tree, Target::ValuesFile).enabled(chart_version.and_then(values::chart_major))
        == Some(true)
}

/// The values to merge so the next `helm upgrade` keeps a live change: the flag, the releases
/// ConfigMap (unless `--no-releases-configmap`) and the default Runtime repository if given.
pub(crate) fn upgrade_snippet(
    schema: Schema,
    choice: &ReleasesConfigMap,
    default_runtime_repository: Option<&str>,
) -> String {
    let cm = snippet_configmap(choice, &Value::Null);
    values::snippet(schema, cm.as_deref(), default_runtime_repository)
}

/// What the question before a live change proposes.
pub(crate) fn live_action(config_map: &str, namespace: &str, restarts: &[String]) -> String {
    let restart = if restarts.is_empty() {
        String::new()
    } else {
        format!(" and restart {}", restarts.join(", "))
    };
    format!("Patch {config_map} in namespace {namespace}{restart}")
}

/// What the next `helm upgrade` does to a live change, plainly. `values_enable`: `None` when the
/// Helm values could not be read.
pub(crate) fn upgrade_warning(
    release: &str,
    config_map: &str,
    values_enable: Option<bool>,
    snippet: &str,
) -> String {
    match values_enable {
        Some(true) => format!("warning: this patches the live ConfigMap only. The platform's Helm values already enable the feature, so the next `helm upgrade` of release {release} keeps it on."),
        _ => format!("warning: this patches the live ConfigMap only. The next `helm upgrade` of release {release} re-renders {config_map} from the values file and OVERWRITES this change, unless the values file says the same. Before upgrading, run `kubectl astro-sha enable --values values.yaml`, or merge:\n{}", indent(snippet)),
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// Houston's config file in `<release>-houston-config`.
pub(crate) fn local_production_text(cm: &ConfigMap) -> Option<&str> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(LOCAL_PRODUCTION_KEY))
        .map(String::as_str)
}

/// The merge patch of a live change: only local-production.yaml, and only if nobody wrote the
/// ConfigMap since it was read (its resourceVersion).
pub(crate) fn local_production_patch(read: &ConfigMap, new_text: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"resourceVersion": read.metadata.resource_version},
        "data": {LOCAL_PRODUCTION_KEY: new_text},
    })
}

/// Houston's config ConfigMap is gone: the platform chart renders it, so a Helm upgrade (or
/// `enable --values`) is the way back.
pub(crate) fn missing_config(ns: &str, cm_name: &str) -> Error {
    Error::new(format!("ConfigMap {cm_name} not found in namespace {ns}"))
        .hint("the platform chart renders it; check the platform's Helm release (helm status) or use --values and helm upgrade")
        .kind(ErrorKind::NotFound)
}

pub(crate) fn no_local_production(ns: &str, cm_name: &str) -> Error {
    Error::new(format!(
        "ConfigMap {cm_name} in namespace {ns} has no {LOCAL_PRODUCTION_KEY}"
    ))
    .hint("the platform chart renders it from astronomer.houston.config; use --values and helm upgrade instead")
}

/// After a 409: the confirmed diff no longer holds when someone changed the key itself.
pub(crate) fn changed_meanwhile(target: &str) -> Error {
    Error::new(format!(
        "{target} was changed by someone else while this ran; nothing was written"
    ))
    .hint("run the command again to see the new diff")
}

/// How a run ended, for its one-line result on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending<'a> {
    AlreadyEnabled,
    /// A dry run; a live one names what it would restart.
    DryRun {
        changes: usize,
    },
    Written {
        changes: usize,
    },
    /// A live change: nothing to do; what mounts the config and was restarted (or would be).
    LiveAlreadyEnabled,
    LiveDryRun {
        would_restart: &'a [String],
    },
    LiveWritten {
        restarted: &'a [String],
    },
}

/// The one-line result of a run on `target`.
pub(crate) fn ending_line(target: &str, ending: Ending<'_>) -> String {
    match ending {
        Ending::LiveAlreadyEnabled => {
            format!("already enabled in {target}; nothing to do (nothing restarted)")
        }
        Ending::AlreadyEnabled => {
            format!("already enabled: {target} has every key set; nothing to do (file untouched)")
        }
        Ending::DryRun { changes } => format!("dry run: {target} not written ({changes} change(s))"),
        Ending::Written { changes } => format!("enabled in {target} ({changes} change(s)). Apply it with `helm upgrade` of the platform release, and fill the releases ConfigMap with `kubectl astro-sha import`."),
        Ending::LiveDryRun { would_restart } => format!(
            "dry run: {target} not changed; would restart {}",
            list_or_none(would_restart)
        ),
        Ending::LiveWritten { restarted } => {
            format!("enabled in {target}; restarted {}", list_or_none(restarted))
        }
    }
}

/// The workloads to restart, or why there are none.
fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "nothing (no Deployment or StatefulSet mounts it)".into()
    } else {
        items.join(", ")
    }
}

/// A planned edit of one text: what changes, the flags it overrides, and the diff.
pub(crate) struct Planned {
    /// The values file, or `namespace/configmap:local-production.yaml`.
    pub(crate) target: String,
    pub(crate) outcome: Outcome,
    pub(crate) turned_off: Vec<TurnedOff>,
    pub(crate) diff: String,
}

/// Plans the edit of `text` (a values file or local-production.yaml, as `kind` says).
pub(crate) fn plan(text: &str, kind: Target, req: &Request, target: String) -> Result<Planned> {
    let mut outcome = values::plan(text, kind, req, &target)?;
    let mut turned = turned_off(text, kind, &outcome);
    carry_comments(&mut outcome, &mut turned, kind);
    Ok(Planned {
        turned_off: turned,
        diff: values::unified_diff(text, &outcome.new_text, &target),
        target,
        outcome,
    })
}

/// A feature flag a person had set to something other than `true` (`false`, `"false"`), which
/// this edit turns on or moves: it was off on purpose, so the change says so.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TurnedOff {
    /// The dotted key as it was in the text.
    pub(crate) key: String,
    /// Its value there, typed as the YAML holds it.
    pub(crate) was: Value,
    /// The comment on its line (else the comment lines right above it), without `#`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) comment: Option<String>,
    /// Whether that comment is still in the new text (a flat key moved to its 2.x place
    /// carries it to the nested key's line).
    pub(crate) comment_kept: bool,
}

impl TurnedOff {
    /// The warning, naming the key, the file or ConfigMap, and the comment.
    pub(crate) fn warning(&self, name: &str) -> String {
        let was = values::render(&self.was);
        let Some(c) = &self.comment else {
            return format!("warning: {} in {name} is explicitly {was}, perhaps on purpose (no comment says why); this turns the feature on", self.key);
        };
        let fate = if self.comment_kept {
            "The comment is kept; update it if it no longer holds."
        } else {
            "Its line goes, and the comment with it: carry it over by hand if it still matters."
        };
        format!(
            "warning: {} in {name} was turned off on purpose ({was}, \"# {c}\"); this turns the feature on. {fate}",
            self.key
        )
    }
}

/// The flags the outcome turns on (or moves) that the text held at a value other than `true`.
pub(crate) fn turned_off(text: &str, target: Target, outcome: &Outcome) -> Vec<TurnedOff> {
    let flags = [target.path(FLAT_FLAG), target.path(NESTED_FLAG)];
    outcome
        .changes
        .iter()
        .filter_map(|c| {
            let path = flags.iter().find(|p| p.join(".") == c.key)?;
            let was = c.old.clone().filter(|v| *v != Value::Bool(true))?;
            let comment = comment_of(text, path);
            let comment_kept = comment
                .as_ref()
                .is_some_and(|k| outcome.new_text.lines().any(|l| l.contains(k.as_str())));
            Some(TurnedOff {
                key: c.key.clone(),
                was,
                comment,
                comment_kept,
            })
        })
        .collect()
}

/// The comment a person left on a block-mapping key: the `# ...` ending its line, else the
/// comment lines right above it at the same indentation. Flow mappings and keys inside lists are
/// not followed (no comment is found there).
pub(crate) fn comment_of(text: &str, path: &[String]) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let (i, indent, rest) = key_line(&lines, path)?;
    trailing_comment(rest).or_else(|| comment_above(&lines[..i], indent))
}

/// The line of a block-mapping key: its index, its indentation and what follows the `key:`.
fn key_line<'a>(lines: &[&'a str], path: &[String]) -> Option<(usize, usize, &'a str)> {
    let mut stack: Vec<(usize, String)> = vec![];
    let mut block_scalar_above: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if block_scalar_above.is_some_and(|d| indent > d || body.is_empty()) {
            continue;
        }
        block_scalar_above = None;
        if body.is_empty() || body.starts_with('#') || body.starts_with("---") {
            continue;
        }
        let Some((key, rest)) = block_key(body) else {
            continue;
        };
        while stack.last().is_some_and(|(d, _)| *d >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        if rest.trim_start().starts_with(['|', '>']) {
            block_scalar_above = Some(indent);
        }
        if stack.len() == path.len() && stack.iter().zip(path).all(|((_, k), p)| k == p) {
            return Some((i, indent, rest));
        }
    }
    None
}

/// A flat flag moved to its 2.x place takes its comment along: onto the line of the nested key
/// the edit sets, when that line has none. Comments are not data, so the tree is unchanged; the
/// text is parsed again to prove it, and left as it was otherwise.
fn carry_comments(outcome: &mut Outcome, turned: &mut [TurnedOff], kind: Target) {
    let nested = kind.path(NESTED_FLAG);
    if !outcome.changes.iter().any(|c| c.key == nested.join(".")) {
        return;
    }
    for t in turned.iter_mut().filter(|t| !t.comment_kept) {
        let Some(comment) = &t.comment else { continue };
        let lines: Vec<&str> = outcome.new_text.lines().collect();
        let Some((i, _, rest)) = key_line(&lines, &nested) else {
            continue;
        };
        if trailing_comment(rest).is_some() || rest.trim().is_empty() {
            continue;
        }
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        out[i] = format!("{}  # {comment}", lines[i].trim_end());
        let mut text = out.join("\n");
        if outcome.new_text.ends_with('\n') {
            text.push('\n');
        }
        let parse = |x: &str| serde_yaml_ng::from_str::<Value>(x).ok();
        let before = parse(&outcome.new_text);
        if before.is_some() && before == parse(&text) {
            outcome.new_text = text;
            t.comment_kept = true;
        }
    }
}

/// `key: rest` of a block mapping line (plain or quoted key), or `None`.
fn block_key(body: &str) -> Option<(String, &str)> {
    if body.starts_with("- ") || body == "-" {
        return None;
    }
    let (key, after) = match body.chars().next()? {
        q @ ('"' | '\'') => {
            let end = body[1..].find(q)? + 1;
            (body[1..end].to_string(), &body[end + 1..])
        }
        _ => {
            let at = body
                .find(": ")
                .or_else(|| body.ends_with(':').then(|| body.len() - 1))?;
            (body[..at].trim_end().to_string(), &body[at..])
        }
    };
    let rest = after.strip_prefix(':')?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some((key, rest))
}

/// The `# comment` ending a line's value part, outside quotes.
fn trailing_comment(rest: &str) -> Option<String> {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, ch) in rest.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') if prev == ' ' || prev == '\t' => quote = Some(ch),
            (None, '#') if prev == ' ' || prev == '\t' => {
                let c = rest[i + 1..].trim();
                return (!c.is_empty()).then(|| c.to_string());
            }
            _ => {}
        }
        prev = ch;
    }
    None
}

/// Comment lines directly above line `lines.len()`, at `indent`, joined by a space.
fn comment_above(lines: &[&str], indent: usize) -> Option<String> {
    let mut found: Vec<&str> = lines
        .iter()
        .rev()
        .take_while(|l| {
            let body = l.trim_start();
            body.starts_with('#') && l.len() - body.len() == indent
        })
        .map(|l| l.trim_start().trim_start_matches('#').trim())
        .filter(|c| !c.is_empty())
        .collect();
    found.reverse();
    (!found.is_empty()).then(|| found.join(" "))
}

/// The question before a write (`action`: "Write 2 change(s) to values.yaml"); it names a
/// deliberate "off" it overrides.
pub(crate) fn question(action: &str, overridden: &[TurnedOff]) -> String {
    let over = match overridden {
        [] => String::new(),
        [one] => format!(", turning on {} that was off on purpose", one.key),
        many => format!(", turning on {} flags that were off on purpose", many.len()),
    };
    format!("{action}{over}?")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::values::{plan, Request};

    fn req(v: &str) -> Request {
        file_request(Some(v), None, ReleasesConfigMap::Skip, None)
    }

    const OFF: &str = "astronomer:\n  houston:\n    config:\n      deployments:\n        customImageShaEnabled: false  # turned off during the 2025 incident\n        other: 1\n";

    #[test]
    fn a_commented_false_is_named_with_its_comment_and_kept() {
        let o = plan(OFF, Target::ValuesFile, &req("1.1.0"), "v.yaml").unwrap();
        let t = turned_off(OFF, Target::ValuesFile, &o);
        assert_eq!(
            t,
            vec![TurnedOff {
                key: "astronomer.houston.config.deployments.customImageShaEnabled".into(),
                was: Value::Bool(false),
                comment: Some("turned off during the 2025 incident".into()),
                comment_kept: true,
            }]
        );
        let w = t[0].warning("v.yaml");
        assert!(w.contains("in v.yaml was turned off on purpose (false, \"# turned off during the 2025 incident\")"), "{w}");
        assert!(w.contains("The comment is kept"), "{w}");
        assert!(question("Write 1 change(s) to v.yaml", &t)
            .contains("customImageShaEnabled that was off on purpose"));
    }

    #[test]
    fn a_moved_flat_false_takes_its_comment_along() {
        let o = plan(OFF, Target::ValuesFile, &req("2.1.0"), "v.yaml").unwrap();
        let t = turned_off(OFF, Target::ValuesFile, &o);
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(!t[0].comment_kept, "values::plan alone drops it");
        assert!(t[0].warning("v.yaml").contains("carry it over by hand"));
        let p = super::plan(OFF, Target::ValuesFile, &req("2.1.0"), "v.yaml".into()).unwrap();
        assert!(p.turned_off[0].comment_kept);
        assert!(
            p.outcome
                .new_text
                .contains("            enabled: true  # turned off during the 2025 incident\n"),
            "{}",
            p.outcome.new_text
        );
        assert!(
            p.diff.contains("+            enabled: true  # turned off"),
            "{}",
            p.diff
        );
        // Already on in the nested form: the dead flat key goes, its comment is not carried.
        let both = "deployments:\n  customImageShaEnabled: false  # old\n  runtimeManagement:\n    customImageSha:\n      enabled: true\n";
        let p = super::plan(both, Target::LocalProduction, &req("2.1.0"), "cm".into()).unwrap();
        assert!(
            !p.outcome.new_text.contains("# old"),
            "{}",
            p.outcome.new_text
        );
    }

    #[test]
    fn nested_false_in_local_production_and_a_comment_above() {
        let lp = "deployments:\n  runtimeManagement:\n    customImageSha:\n      # off until the\n      # audit is done\n      enabled: \"false\"\n";
        let o = plan(lp, Target::LocalProduction, &req("2.1.0"), "cm").unwrap();
        let t = turned_off(lp, Target::LocalProduction, &o);
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(
            t[0].key,
            "deployments.runtimeManagement.customImageSha.enabled"
        );
        assert_eq!(t[0].was, Value::String("false".into()));
        assert_eq!(t[0].comment.as_deref(), Some("off until the audit is done"));
    }

    #[test]
    fn an_absent_flag_or_no_comment() {
        let absent = "astronomer:\n  houston:\n    config:\n      deployments:\n        other: 1\n";
        let o = plan(absent, Target::ValuesFile, &req("1.1.0"), "v").unwrap();
        assert!(turned_off(absent, Target::ValuesFile, &o).is_empty());
        let bare = "deployments:\n  customImageShaEnabled: false\n";
        let o = plan(bare, Target::LocalProduction, &req("1.1.0"), "cm").unwrap();
        let t = turned_off(bare, Target::LocalProduction, &o);
        assert_eq!(t[0].comment, None);
        assert!(t[0]
            .warning("cm")
            .contains("explicitly false, perhaps on purpose"));
    }

    #[test]
    fn comments_are_found_only_on_the_right_key() {
        let path = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        let t = "a:\n  text: |\n    b: x  # not me\n  b: 'q # no' # yes\nc:\n  b: 1 # other\n";
        assert_eq!(comment_of(t, &path("a.b")).as_deref(), Some("yes"));
        assert_eq!(comment_of(t, &path("c.b")).as_deref(), Some("other"));
        assert_eq!(comment_of(t, &path("a.text")), None);
        assert_eq!(comment_of(t, &path("x.b")), None);
        assert_eq!(
            comment_of("\"a\": 1 # q\n", &path("a")).as_deref(),
            Some("q")
        );
    }

    fn cluster(v: &str) -> ClusterVersion {
        ClusterVersion {
            version: v.into(),
            source: VersionSource::HelmRelease {
                secret: "sh.helm.release.v1.astronomer.v2".into(),
                namespace: None,
            },
        }
    }

    #[test]
    fn live_flag_must_agree_with_the_platform() {
        let e = live_request(Some("2.1.0"), Some(cluster("0.37.4")), "x".into(), None).unwrap_err();
        assert!(
            e.message.contains("--chart-version 2.1.0 reads the nested"),
            "{}",
            e.message
        );
        assert!(e.message.contains("nothing was changed"), "{}", e.message);
        let r = live_request(Some("1.1.0"), Some(cluster("0.37.4")), "x".into(), None).unwrap();
        assert_eq!(r.chart_version.as_deref(), Some("1.1.0"));
        assert!(r
            .chart_version_source
            .unwrap()
            .contains("the platform says 0.37.4"));
        let r = live_request(Some("2.1.0"), None, "why".into(), None).unwrap();
        assert_eq!(r.chart_version_source.as_deref(), Some(FROM_FLAG));
        let r = live_request(None, None, "why".into(), None).unwrap();
        assert_eq!(r.chart_version_unknown.as_deref(), Some("why"));
    }

    #[test]
    fn notes_follow_the_flags() {
        let n = release_unreadable_note("forbidden", Some("2.1.0"), Some("0.37.4"));
        assert!(n.contains("comes from --chart-version 2.1.0"), "{n}");
        let n = release_unreadable_note("forbidden", None, Some("0.37.4"));
        assert!(n.contains("Houston's chart label (0.37.4)"), "{n}");
    }

    #[test]
    fn snippet_refusals_speak_of_the_snippet() {
        let none = file_request(
            None,
            Some(Err("no kubeconfig".into())),
            ReleasesConfigMap::Skip,
            None,
        );
        let e = snippet_schema(&none).unwrap_err();
        assert!(e.message.contains("nothing was printed"), "{}", e.message);
        assert!(!e.message.contains("file"), "{}", e.message);
        assert!(
            e.message
                .contains("the cluster did not tell (no kubeconfig)"),
            "{}",
            e.message
        );
        let e = snippet_schema(&req("two")).unwrap_err();
        assert!(e.message.contains("nothing was printed"), "{}", e.message);
        assert_eq!(snippet_schema(&req("2.1.0")).unwrap().0, Schema::Nested);
    }

    fn release(v: &str) -> Release {
        Release {
            name: "astronomer".into(),
            revision: 2,
            chart_name: "astronomer".into(),
            chart_version: v.into(),
            values: serde_json::json!({}),
            secret: "sh.helm.release.v1.astronomer.v2".into(),
        }
    }

    #[test]
    fn the_release_tells_else_the_label_else_why_not() {
        let r = release("2.1.0");
        let c = cluster_version(Ok(&r), Some("0.37.4".into()), "h".into(), Some("ns")).unwrap();
        assert_eq!(c.version, "2.1.0");
        assert_eq!(
            c.source.describe(),
            "from Helm release Secret sh.helm.release.v1.astronomer.v2 in namespace ns"
        );
        let c = cluster_version(
            Err("forbidden"),
            Some("0.37.4".into()),
            "h".into(),
            Some("ns"),
        )
        .unwrap();
        assert_eq!(
            c.source.describe(),
            "from the chart label of deployment/h in namespace ns (forbidden)"
        );
        let c = cluster_version(Err(""), Some("1.1.0".into()), "h".into(), None).unwrap();
        assert_eq!(c.source.describe(), "from the chart label of deployment/h");
        assert_eq!(
            cluster_version(Err("forbidden"), None, "h".into(), None),
            Err("forbidden".into())
        );
    }

    #[test]
    fn each_ending_has_its_line() {
        let t = "ns/cm:local-production.yaml";
        assert_eq!(
            ending_line(t, Ending::LiveAlreadyEnabled),
            "already enabled in ns/cm:local-production.yaml; nothing to do (nothing restarted)"
        );
        assert!(ending_line("v.yaml", Ending::AlreadyEnabled).contains("(file untouched)"));
        assert_eq!(
            ending_line(t, Ending::LiveDryRun { would_restart: &[] }),
            "dry run: ns/cm:local-production.yaml not changed; would restart nothing (no Deployment or StatefulSet mounts it)"
        );
        let d = ["deployment/h".to_string()];
        assert!(ending_line(t, Ending::LiveWritten { restarted: &d })
            .ends_with("restarted deployment/h"));
        assert!(ending_line("v.yaml", Ending::DryRun { changes: 2 }).contains("(2 change(s))"));
        assert_eq!(
            live_action("cm", "ns", &d),
            "Patch cm in namespace ns and restart deployment/h"
        );
    }

    #[test]
    fn the_live_patch_carries_the_resource_version_and_only_the_key() {
        let mut cm = ConfigMap::default();
        cm.metadata.resource_version = Some("42".into());
        assert_eq!(
            local_production_patch(&cm, "a: 1\n"),
            serde_json::json!({"metadata": {"resourceVersion": "42"}, "data": {"local-production.yaml": "a: 1\n"}})
        );
        assert_eq!(local_production_text(&cm), None);
    }
}
