//! `kubectl astro-sha enable`: step 1 of Astronomer's procedure. Turns Houston's custom-image-SHA
//! feature on in the platform's Helm values file (the durable place), or, for platforms run
//! without the values file at hand, in the rendered `local-production.yaml` of the live cluster.
//!
//! The YAML work is pure (`values::plan`); this module reads, asks, writes and restarts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Patch;
use serde::Serialize;

use crate::args::{DryRun, DryRunArgs, GlobalArgs, OutputFormat, PlatformArgs};
use crate::core::values::{self, FlagState, Outcome, ReleasesConfigMap, Request, Schema, Target};
use crate::error::ExitStatus;
use crate::error::{Error, ErrorKind, Result};
use crate::kube::client::Cluster;
use crate::kube::platform::{self, Platform, LOCAL_PRODUCTION_KEY};
use crate::kube::restart;
use crate::output::{self, Replacing};

#[derive(Args, Debug, Clone)]
#[command(
    group(clap::ArgGroup::new("mode").required(true).args(["values", "in_cluster", "print"]).multiple(true)),
    after_help = "Examples:\n  kubectl astro-sha enable --values values.yaml --dry-run   # show the diff, write nothing\n  kubectl astro-sha enable --values values.yaml             # edit in place, keeping comments\n  kubectl astro-sha enable --values values.yaml --chart-version 2.1.0\n  kubectl astro-sha enable --print                          # the snippet to merge by hand\n  kubectl astro-sha enable --in-cluster --platform-namespace astronomer   # live\n\nThe values file is the durable place: `helm upgrade` re-renders Houston's config from it, so an\n--in-cluster change lasts only until the next upgrade unless the values file says the same."
)]
pub(crate) struct EnableArgs {
    /// The platform chart's Helm values file to edit in place (comments, order and quoting kept)
    #[arg(long, value_name = "FILE", conflicts_with = "in_cluster")]
    pub(crate) values: Option<PathBuf>,
    /// Patch local-production.yaml of <release>-houston-config in the cluster and restart Houston
    #[arg(long)]
    pub(crate) in_cluster: bool,
    /// Print only the values snippet to merge by hand; change nothing
    #[arg(long, conflicts_with = "in_cluster")]
    pub(crate) print: bool,
    #[command(flatten)]
    pub(crate) dry: DryRunArgs,
    /// Don't ask for confirmation (required to write when stdin or stderr is not a terminal)
    #[arg(short = 'y', long)]
    pub(crate) yes: bool,
    /// Platform chart version (e.g. 0.37.4, 1.1.0, 2.1.0); 2.x takes the nested flag. Default:
    /// read from the cluster's Helm release when needed
    #[arg(long, value_name = "VERSION")]
    pub(crate) chart_version: Option<String>,
    /// Name of the Runtime releases ConfigMap Houston should mount [default: astro-runtime-base-images]
    #[arg(long, value_name = "NAME", conflicts_with = "no_releases_configmap")]
    pub(crate) releases_configmap: Option<String>,
    /// Don't set astronomer.houston.runtimeReleasesConfigMapName
    #[arg(long)]
    pub(crate) no_releases_configmap: bool,
    /// Also set deployments.helm.airflow.defaultRuntimeRepository (e.g. a private mirror)
    #[arg(long, value_name = "REPO")]
    pub(crate) default_runtime_repository: Option<String>,
    #[command(flatten)]
    pub(crate) platform: PlatformArgs,
}

impl EnableArgs {
    /// `--dry-run` (client): show the diff and change nothing. A values file and Houston's config
    /// have no server-side rehearsal here, so `--dry-run=server` is refused before anything is read.
    fn dry_run(&self) -> Result<bool> {
        match self.dry.dry_run {
            DryRun::None => Ok(false),
            DryRun::Client => Ok(true),
            DryRun::Server => Err(Error::new(
                "enable: --dry-run=server is not supported; nothing was changed",
            )
            .hint("use --dry-run (client) to see the diff")),
        }
    }

    fn releases_configmap(&self) -> ReleasesConfigMap {
        match (&self.releases_configmap, self.no_releases_configmap) {
            (_, true) => ReleasesConfigMap::Skip,
            (Some(n), false) => ReleasesConfigMap::Name(n.clone()),
            (None, false) => ReleasesConfigMap::Default,
        }
    }
}

/// What `-o json|yaml` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Report {
    /// The values file, or `namespace/configmap:local-production.yaml`.
    pub(crate) target: String,
    pub(crate) changed: bool,
    pub(crate) written: bool,
    pub(crate) dry_run: bool,
    #[serde(flatten)]
    pub(crate) outcome: Outcome,
    pub(crate) diff: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) restarted: Vec<String>,
}

pub(crate) async fn run(g: &GlobalArgs, a: &EnableArgs) -> Result<ExitStatus> {
    a.dry_run()?;
    if a.in_cluster {
        return in_cluster(g, a).await;
    }
    match &a.values {
        Some(path) => values_file(g, a, path).await,
        None => print_only(g, a).await,
    }
}

fn note(s: &str) {
    eprintln!("note: {s}");
}

/// Reads the chart version from the cluster, quickly, for when the file alone cannot decide.
async fn chart_from_cluster(
    g: &GlobalArgs,
    a: &EnableArgs,
) -> std::result::Result<(String, String), String> {
    let mut connect = g.connect();
    connect.request_timeout = Some(g.request_timeout.unwrap_or(Duration::from_secs(5)));
    let cluster = Cluster::connect(&connect).await.map_err(|e| e.message)?;
    let p = platform::find(&cluster, a.platform.platform_namespace.as_deref())
        .await
        .map_err(|e| e.message)?;
    match read_release(&cluster, &p).await {
        Ok(r) => Ok((
            r.chart_version,
            format!(
                "from Helm release Secret {} in namespace {}",
                r.secret, p.namespace
            ),
        )),
        Err(e) => match p.chart_version_from_label() {
            Some(v) => Ok((
                v,
                format!(
                    "from the chart label of deployment/{} in namespace {} ({})",
                    p.houston_name(),
                    p.namespace,
                    e.message
                ),
            )),
            None => Err(e.message),
        },
    }
}

async fn read_release(cluster: &Cluster, p: &Platform) -> Result<crate::core::helm::Release> {
    let secrets = platform::release_secrets(cluster, &p.namespace, &p.release).await?;
    crate::core::helm::release_from(&secrets, &p.release, &p.namespace)
}

/// The chart version part of a request: `--chart-version`, else the cluster's when the file
/// alone cannot decide. When the cluster cannot tell, why is kept for the refusal (no guessing:
/// each platform generation ignores the other's key).
async fn chart_version(g: &GlobalArgs, a: &EnableArgs, needed: bool) -> Request {
    let mut req = Request {
        chart_version: None,
        chart_version_source: None,
        chart_version_unknown: None,
        releases_configmap: a.releases_configmap(),
        default_runtime_repository: a.default_runtime_repository.clone(),
    };
    if let Some(v) = &a.chart_version {
        req.chart_version = Some(v.clone());
        req.chart_version_source = Some("from --chart-version".into());
    } else if needed {
        match chart_from_cluster(g, a).await {
            Ok((v, src)) => {
                req.chart_version = Some(v);
                req.chart_version_source = Some(src);
            }
            Err(why) => {
                req.chart_version_unknown = Some(format!(
                    "the cluster did not tell ({})",
                    why.lines().next().unwrap_or_default()
                ))
            }
        }
    }
    req
}

async fn print_only(g: &GlobalArgs, a: &EnableArgs) -> Result<ExitStatus> {
    let req = chart_version(g, a, true).await;
    let (schema, _) = values::decide_schema(
        &serde_yaml_ng::Value::Null,
        Target::ValuesFile,
        &req,
        "the snippet",
    )?;
    let cm = match a.releases_configmap() {
        ReleasesConfigMap::Skip => None,
        ReleasesConfigMap::Name(n) => Some(n),
        ReleasesConfigMap::Default => Some(values::DEFAULT_RELEASES_CONFIGMAP.to_string()),
    };
    output::print(&values::snippet(
        schema,
        cm.as_deref(),
        a.default_runtime_repository.as_deref(),
    ))?;
    Ok(ExitStatus::Success)
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => "check the path of the platform's values file",
            std::io::ErrorKind::PermissionDenied => "you need read access to the file",
            _ => "check the file",
        };
        Error::new(format!("cannot read {}: {e}", path.display())).hint(hint)
    })?;
    String::from_utf8(bytes).map_err(|e| {
        Error::new(format!(
            "{} is not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
        .hint("YAML files must be UTF-8")
    })
}

async fn values_file(g: &GlobalArgs, a: &EnableArgs, path: &Path) -> Result<ExitStatus> {
    let name = path.display().to_string();
    let text = read_text(path)?;
    let tree = values::parse(&text, Target::ValuesFile, &name)?;
    let needed = values::schema_from_file(&tree, Target::ValuesFile).is_none();
    let req = chart_version(g, a, needed).await;
    let outcome = values::plan(&text, Target::ValuesFile, &req, &name)?;

    if a.print {
        let cm = match a.releases_configmap() {
            ReleasesConfigMap::Skip => None,
            ReleasesConfigMap::Name(n) => Some(n),
            ReleasesConfigMap::Default => values::get(
                &tree,
                &["astronomer", "houston", values::RELEASES_CONFIGMAP_KEY],
            )
            .and_then(|v| v.as_str().map(str::to_string))
            .or_else(|| Some(values::DEFAULT_RELEASES_CONFIGMAP.to_string())),
        };
        output::print(&values::snippet(
            outcome.schema,
            cm.as_deref(),
            a.default_runtime_repository.as_deref(),
        ))?;
        return Ok(ExitStatus::Success);
    }

    let diff = values::unified_diff(&text, &outcome.new_text, &name);
    explain(&outcome);
    let mut written = false;
    if !outcome.changed() {
        eprintln!("already enabled: {name} has every key set; nothing to do (file untouched)");
    } else if a.dry_run()? {
        if g.output == crate::args::OutputFormat::Table
            || g.output == crate::args::OutputFormat::Wide
        {
            output::print(&diff)?;
        }
        eprintln!(
            "dry run: {name} not written ({} change(s))",
            outcome.changes.len()
        );
    } else {
        eprint!("{diff}");
        let question = format!("Write {} change(s) to {name}?", outcome.changes.len());
        if !output::confirm(&question, a.yes)? {
            return Err(Error::declined(format!("Aborted; {name} was not written.")));
        }
        output::write_atomically(path, &outcome.new_text, Replacing::Edit(&text))?;
        written = true;
        eprintln!(
            "enabled in {name} ({} change(s)). Apply it with `helm upgrade` of the platform release, and fill the releases ConfigMap with `kubectl astro-sha import`.",
            outcome.changes.len()
        );
    }
    let report = Report {
        target: name,
        changed: outcome.changed(),
        written,
        dry_run: a.dry_run()?,
        outcome,
        diff,
        restarted: vec![],
    };
    if let Some(s) = output::structured(&report, g.output)? {
        output::print(&s)?;
    }
    Ok(ExitStatus::Success)
}

fn explain(o: &Outcome) {
    let form = match o.schema {
        Schema::Flat => "flat customImageShaEnabled",
        Schema::Nested => "nested runtimeManagement.customImageSha.enabled",
    };
    eprintln!("schema: {form} ({})", o.schema_reason);
    for n in &o.notes {
        note(n);
    }
}

/// The edit of a live change. Its chart version decides the schema, and comes from
/// `--chart-version`, else the Helm release, else Houston's chart label.
fn live_request(
    a: &EnableArgs,
    p: &Platform,
    release: Option<&crate::core::helm::Release>,
) -> Request {
    let (chart_version, chart_version_source) = match (&a.chart_version, release) {
        (Some(v), _) => (Some(v.clone()), Some("from --chart-version".to_string())),
        (None, Some(r)) => (
            Some(r.chart_version.clone()),
            Some(format!("from Helm release Secret {}", r.secret)),
        ),
        (None, None) => (
            p.chart_version_from_label(),
            Some(format!(
                "from the chart label of deployment/{}",
                p.houston_name()
            )),
        ),
    };
    let chart_version_unknown = chart_version.is_none().then(|| {
        format!(
            "no readable Helm release of {} and no chart label on deployment/{}",
            p.release,
            p.houston_name()
        )
    });
    Request {
        chart_version,
        chart_version_source,
        chart_version_unknown,
        releases_configmap: ReleasesConfigMap::Skip,
        default_runtime_repository: a.default_runtime_repository.clone(),
    }
}

/// `<release>-houston-config` and its local-production.yaml.
async fn read_local_production(
    cluster: &Cluster,
    ns: &str,
    cm_name: &str,
) -> Result<(ConfigMap, String)> {
    let cm = cluster
        .get_configmap(ns, cm_name)
        .await?
        .ok_or_else(|| missing_config(ns, cm_name))?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(LOCAL_PRODUCTION_KEY))
        .cloned()
        .ok_or_else(|| {
            Error::new(format!(
                "ConfigMap {cm_name} in namespace {ns} has no {LOCAL_PRODUCTION_KEY}"
            ))
            .hint("the platform chart renders it from astronomer.houston.config; use --values and helm upgrade instead")
        })?;
    Ok((cm, text))
}

/// Shows the diff and asks before the live change; refuses without a terminal unless `--yes`.
fn confirm_live(a: &EnableArgs, diff: &str, p: &Platform, restarts: &[String]) -> Result<bool> {
    eprint!("{diff}");
    let restart = if restarts.is_empty() {
        String::new()
    } else {
        format!(" and restart {}", restarts.join(", "))
    };
    output::confirm(
        &format!(
            "Patch {} in namespace {}{restart}?",
            p.config_map(),
            p.namespace,
        ),
        a.yes,
    )
}

/// The live change: local-production.yaml, then a restart of what mounts it (subPath).
async fn in_cluster(g: &GlobalArgs, a: &EnableArgs) -> Result<ExitStatus> {
    let cluster = Cluster::connect(&g.connect()).await?;
    let p = platform::find(&cluster, a.platform.platform_namespace.as_deref()).await?;
    let ns = p.namespace.clone();
    let cm_name = p.config_map();

    // The Helm release: chart version (schema) and whether the values already say the same.
    let release = read_release(&cluster, &p)
        .await
        .inspect_err(|e| {
            note(&format!(
                "cannot read the platform's Helm release ({}); the chart version comes from Houston's label and the values are not compared",
                e.message
            ))
        })
        .ok();
    let req = live_request(a, &p, release.as_ref());
    let target_name = format!("{ns}/{cm_name}:{LOCAL_PRODUCTION_KEY}");

    let mut attempt = 0;
    loop {
        attempt += 1;
        let (cm, text) = read_local_production(&cluster, &ns, &cm_name).await?;
        let outcome = values::plan(&text, Target::LocalProduction, &req, &target_name)?;
        let diff = values::unified_diff(&text, &outcome.new_text, &target_name);
        if attempt == 1 {
            explain(&outcome);
            wiring_notes(a, &p, release.as_ref());
        }
        if !outcome.changed() {
            eprintln!("already enabled in {target_name}; nothing to do (nothing restarted)");
            return finish(g, a, target_name, outcome, diff, false, vec![]);
        }
        // Everything that mounts the config (subPath: it keeps the old file until it restarts).
        let mounting = restart::mounting(&cluster, &ns, &cm_name).await?;
        let restarts = mounting.workloads();
        if attempt == 1 {
            helm_upgrade_warning(
                &p,
                release.as_ref(),
                outcome.schema,
                a,
                req.chart_version.as_deref(),
            );
        }
        if a.dry_run()? {
            if matches!(g.output, OutputFormat::Table | OutputFormat::Wide) {
                output::print(&diff)?;
            }
            eprintln!(
                "dry run: {target_name} not changed; would restart {}",
                list_or_none(&restarts)
            );
            return finish(g, a, target_name, outcome, diff, false, vec![]);
        }
        if attempt == 1 {
            restart::check_rights(&cluster, &ns, &mounting).await?;
            if !confirm_live(a, &diff, &p, &restarts)? {
                return Err(Error::declined(format!(
                    "Aborted; nothing was changed ({target_name} not written, nothing restarted)."
                )));
            }
        }
        // Only this key, and only if nobody wrote the ConfigMap since it was read.
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": cm.metadata.resource_version},
            "data": {LOCAL_PRODUCTION_KEY: outcome.new_text},
        });
        match cluster
            .patch_configmap(&ns, &cm_name, &Patch::Merge(patch), false)
            .await
        {
            Ok(_) => {
                let restarted = restart::restart(&cluster, &ns, &mounting, &target_name).await?;
                eprintln!(
                    "enabled in {target_name}; restarted {}",
                    list_or_none(&restarted)
                );
                for c in mounting.cronjob_names() {
                    eprintln!("note: {c} mounts it too and reads the new file on its next run");
                }
                return finish(g, a, target_name, outcome, diff, true, restarted);
            }
            Err(e) if e.kind == ErrorKind::Conflict && attempt < 3 => {
                // Someone else wrote the ConfigMap: re-read and re-plan.
                key_unchanged(&cluster, &ns, &cm_name, &text, &target_name).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// After a 409: fine when our key still holds what was read (another key changed); otherwise
/// the confirmed diff no longer holds and nothing is written.
async fn key_unchanged(
    cluster: &Cluster,
    ns: &str,
    cm_name: &str,
    text: &str,
    target_name: &str,
) -> Result<()> {
    let fresh = cluster
        .get_configmap(ns, cm_name)
        .await?
        .ok_or_else(|| missing_config(ns, cm_name))?;
    if fresh
        .data
        .as_ref()
        .and_then(|d| d.get(LOCAL_PRODUCTION_KEY))
        .map(String::as_str)
        != Some(text)
    {
        return Err(Error::new(format!(
            "{target_name} was changed by someone else while this ran; nothing was written"
        ))
        .hint("run the command again to see the new diff"));
    }
    Ok(())
}

/// Houston's config ConfigMap is gone: the platform chart renders it, so a Helm upgrade (or
/// `enable --values`) is the way back.
fn missing_config(ns: &str, cm_name: &str) -> Error {
    Error::new(format!("ConfigMap {cm_name} not found in namespace {ns}"))
        .hint("the platform chart renders it; check the platform's Helm release (helm status) or use --values and helm upgrade")
        .kind(ErrorKind::NotFound)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "nothing (no Deployment or StatefulSet mounts it)".into()
    } else {
        items.join(", ")
    }
}

fn finish(
    g: &GlobalArgs,
    a: &EnableArgs,
    target: String,
    outcome: Outcome,
    diff: String,
    written: bool,
    restarted: Vec<String>,
) -> Result<ExitStatus> {
    let report = Report {
        target,
        changed: outcome.changed(),
        written,
        dry_run: a.dry_run()?,
        outcome,
        diff,
        restarted,
    };
    if let Some(s) = output::structured(&report, g.output)? {
        output::print(&s)?;
    }
    Ok(ExitStatus::Success)
}

/// Things --in-cluster cannot fix by itself: the releases ConfigMap volume is part of Houston's
/// Deployment spec, rendered from the values.
fn wiring_notes(a: &EnableArgs, p: &Platform, release: Option<&crate::core::helm::Release>) {
    if a.no_releases_configmap {
        return;
    }
    let name = a
        .releases_configmap
        .clone()
        .or_else(|| {
            release.and_then(|r| {
                r.values
                    .pointer("/astronomer/houston/runtimeReleasesConfigMapName")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
        })
        .unwrap_or_else(|| values::DEFAULT_RELEASES_CONFIGMAP.to_string());
    if !platform::mount_of(&p.houston, &name).mounted() {
        note(&format!(
            "Houston does not mount the releases ConfigMap {name:?} yet. That volume comes from astronomer.houston.runtimeReleasesConfigMapName in the values file and a helm upgrade (`kubectl astro-sha enable --values values.yaml`); --in-cluster does not change Houston's Deployment spec"
        ));
    }
}

/// States plainly what the next `helm upgrade` does to an in-cluster change.
fn helm_upgrade_warning(
    p: &Platform,
    release: Option<&crate::core::helm::Release>,
    schema: Schema,
    a: &EnableArgs,
    chart_version: Option<&str>,
) {
    let in_values = release.map(|r| {
        let tree: serde_yaml_ng::Value =
            serde_yaml_ng::to_value(&r.values).unwrap_or(serde_yaml_ng::Value::Null);
        FlagState::read(&tree, Target::ValuesFile)
            .enabled(chart_version.and_then(values::chart_major))
            == Some(true)
    });
    let cm = a.releases_configmap.clone().or_else(|| {
        (!a.no_releases_configmap).then(|| values::DEFAULT_RELEASES_CONFIGMAP.to_string())
    });
    let snippet = values::snippet(
        schema,
        cm.as_deref(),
        a.default_runtime_repository.as_deref(),
    );
    match in_values {
        Some(true) => eprintln!(
            "warning: this patches the live ConfigMap only. The platform's Helm values already enable the feature, so the next `helm upgrade` of release {} keeps it on.",
            p.release
        ),
        _ => eprintln!(
            "warning: this patches the live ConfigMap only. The next `helm upgrade` of release {} re-renders {} from the values file and OVERWRITES this change, unless the values file says the same. Before upgrading, run `kubectl astro-sha enable --values values.yaml`, or merge:\n{}",
            p.release,
            p.config_map(),
            indent(&snippet)
        ),
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_atomically(path: &Path, old: &str, new: &str) -> Result<()> {
        output::write_atomically(path, new, Replacing::Edit(old))
    }

    #[test]
    fn atomic_write_keeps_permissions_and_refuses_read_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("values.yaml");
        std::fs::write(&p, "a: 1\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&p, "a: 1\n", "a: 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a: 2\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");

        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
        let e = write_atomically(&p, "a: 2\n", "a: 3\n").unwrap_err();
        assert!(e.message.contains("read-only"), "{}", e.message);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a: 2\n");

        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = write_atomically(&p, "stale\n", "a: 3\n").unwrap_err();
        assert!(e.message.contains("changed while"), "{}", e.message);
    }

    #[test]
    fn writes_through_a_symlink_to_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.yaml");
        let link = dir.path().join("link.yaml");
        std::fs::write(&real, "a: 1\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomically(&link, "a: 1\n", "a: 2\n").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "a: 2\n");
    }
}
