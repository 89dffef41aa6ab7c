//! `kubectl astro-sha enable`: step 1 of Astronomer's procedure. Turns Houston's custom-image-SHA
//! feature on in the platform's Helm values file (the durable place), or, for platforms run
//! without the values file at hand, in the rendered `local-production.yaml` of the live cluster.
//!
//! The decisions are pure (`core::values` edits the text, `core::enablement` picks the version
//! and the messages); this module reads, asks, writes and restarts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Patch;
use serde::Serialize;
use serde_yaml_ng::Value;

use crate::args::{DryRun, DryRunArgs, GlobalArgs, OutputFormat, PlatformArgs};
use crate::core::enablement::{self, ClusterVersion, Ending, Planned, TurnedOff};
use crate::core::helm::Release;
use crate::core::values::{self, Outcome, ReleasesConfigMap, Request, Schema, Target};
use crate::error::ExitStatus;
use crate::error::{Error, ErrorKind, Result};
use crate::kube::client::Cluster;
use crate::kube::platform::{self, Platform, LOCAL_PRODUCTION_KEY};
use crate::kube::restart;
use crate::output::{self, Replacing};

#[derive(Args, Debug, Clone)]
#[command(
    group(clap::ArgGroup::new("mode").required(true).args(["values", "in_cluster", "print"]).multiple(true)),
    after_help = "Examples:\n  # Show the diff, write nothing\n  kubectl astro-sha enable --values values.yaml --dry-run\n\n  # Edit in place, keeping comments (for a given platform chart version)\n  kubectl astro-sha enable --values values.yaml\n  kubectl astro-sha enable --values values.yaml --chart-version 2.1.0\n\n  # The snippet to merge by hand\n  kubectl astro-sha enable --print\n\n  # Live, in the cluster\n  kubectl astro-sha enable --in-cluster --platform-namespace astronomer\n\nThe values file is the durable place: `helm upgrade` re-renders Houston's config from it, so an\n--in-cluster change lasts only until the next upgrade unless the values file says the same."
)]
pub(crate) struct EnableArgs {
    /// The platform chart's Helm values file to edit in place (comments, order and quoting kept)
    #[arg(long, value_name = "FILE", conflicts_with = "in_cluster")]
    pub(crate) values: Option<PathBuf>,
    /// Patch local-production.yaml of <release>-houston-config in the cluster and restart Houston
    #[arg(long)]
    pub(crate) in_cluster: bool,
    /// Print only the values snippet to merge by hand; change nothing (so --dry-run and --yes,
    /// which would do nothing, are refused with it)
    #[arg(long, conflicts_with_all = ["in_cluster", "dry_run", "yes"])]
    pub(crate) print: bool,
    #[command(flatten)]
    pub(crate) dry: DryRunArgs,
    /// Don't ask for confirmation (required to write when stdin or stderr is not a terminal)
    #[arg(short = 'y', long)]
    pub(crate) yes: bool,
    /// Platform chart version (e.g. 0.37.4, 1.1.0, 2.1.0); 2.x takes the nested flag. Default:
    /// read from the cluster's Helm release when needed. With --in-cluster the platform's own
    /// version decides; this stands in when the cluster does not tell
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
    /// Flags that were off on purpose and are turned on (or moved) by this change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) turned_off: Vec<TurnedOff>,
    pub(crate) diff: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) restarted: Vec<String>,
}

/// The schema, the notes and a warning for each flag that was off on purpose (stderr).
fn explain(planned: &Planned) {
    let o = &planned.outcome;
    eprintln!("{}", enablement::schema_line(o.schema, &o.schema_reason));
    for n in &o.notes {
        note(n);
    }
    for t in &planned.turned_off {
        eprintln!("{}", t.warning(&planned.target));
    }
}

/// The diff is the plan, and goes to stdout as `kubectl diff` prints it (and as pin prints its
/// plan table), on a dry run and before the question alike; JSON/YAML carry it in the report.
fn show_diff(planned: &Planned, format: OutputFormat) -> Result<()> {
    if matches!(format, OutputFormat::Table | OutputFormat::Wide) {
        output::print(&planned.diff)?;
    }
    Ok(())
}

/// The report on stdout for `-o json|yaml`.
fn finish(
    planned: Planned,
    format: OutputFormat,
    dry_run: bool,
    written: bool,
    restarted: Vec<String>,
) -> Result<ExitStatus> {
    let report = Report {
        target: planned.target,
        changed: planned.outcome.changed(),
        written,
        dry_run,
        outcome: planned.outcome,
        turned_off: planned.turned_off,
        diff: planned.diff,
        restarted,
    };
    if let Some(s) = output::structured(&report, format)? {
        output::print(&s)?;
    }
    Ok(ExitStatus::Success)
}

pub(crate) async fn run(g: &GlobalArgs, a: &EnableArgs) -> Result<ExitStatus> {
    let dry_run = a.dry_run()?;
    if a.in_cluster {
        return in_cluster(g, a, dry_run).await;
    }
    match &a.values {
        Some(path) => values_file(g, a, path, dry_run).await,
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
) -> std::result::Result<ClusterVersion, String> {
    let mut connect = g.connect();
    connect.request_timeout = Some(g.request_timeout.unwrap_or(Duration::from_secs(5)));
    let cluster = Cluster::connect(&connect).await.map_err(|e| e.message)?;
    let p = platform::find(&cluster, a.platform.platform_namespace.as_deref())
        .await
        .map_err(|e| e.message)?;
    let release = read_release(&cluster, &p).await;
    enablement::cluster_version(
        release.as_ref().map_err(|e| e.message.as_str()),
        p.chart_version_from_label(),
        p.houston_name(),
        Some(&p.namespace),
    )
}

async fn read_release(cluster: &Cluster, p: &Platform) -> Result<Release> {
    let secrets = platform::release_secrets(cluster, &p.namespace, &p.release).await?;
    crate::core::helm::release_from(&secrets, &p.release, &p.namespace)
}

/// The request of a values file or the snippet: the cluster is asked only when neither
/// `--chart-version` nor the file decides.
async fn file_request(g: &GlobalArgs, a: &EnableArgs, needed: bool) -> Request {
    let cluster = match (&a.chart_version, needed) {
        (None, true) => Some(chart_from_cluster(g, a).await),
        _ => None,
    };
    enablement::file_request(
        a.chart_version.as_deref(),
        cluster,
        a.releases_configmap(),
        a.default_runtime_repository.clone(),
    )
}

async fn print_only(g: &GlobalArgs, a: &EnableArgs) -> Result<ExitStatus> {
    let req = file_request(g, a, true).await;
    let (schema, reason) = enablement::snippet_schema(&req)?;
    eprintln!("{}", enablement::schema_line(schema, &reason));
    let cm = enablement::snippet_configmap(&req.releases_configmap, &Value::Null);
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

async fn values_file(
    g: &GlobalArgs,
    a: &EnableArgs,
    path: &Path,
    dry_run: bool,
) -> Result<ExitStatus> {
    let name = path.display().to_string();
    let text = read_text(path)?;
    let tree = values::parse(&text, Target::ValuesFile, &name)?;
    let needed = values::schema_from_file(&tree, Target::ValuesFile).is_none();
    let req = file_request(g, a, needed).await;
    let planned = enablement::plan(&text, Target::ValuesFile, &req, name.clone())?;

    if a.print {
        let o = &planned.outcome;
        eprintln!("{}", enablement::schema_line(o.schema, &o.schema_reason));
        let cm = enablement::snippet_configmap(&req.releases_configmap, &tree);
        output::print(&values::snippet(
            o.schema,
            cm.as_deref(),
            a.default_runtime_repository.as_deref(),
        ))?;
        return Ok(ExitStatus::Success);
    }

    explain(&planned);
    let changes = planned.outcome.changes.len();
    let ending = if !planned.outcome.changed() {
        Ending::AlreadyEnabled
    } else if dry_run {
        show_diff(&planned, g.output)?;
        Ending::DryRun { changes }
    } else {
        show_diff(&planned, g.output)?;
        let action = format!("Write {changes} change(s) to {name}");
        if !output::confirm(&enablement::question(&action, &planned.turned_off), a.yes)? {
            return Err(Error::declined(format!("Aborted; {name} was not written.")));
        }
        let new_text = &planned.outcome.new_text;
        output::write_atomically(path, new_text, Replacing::Edit(&text))?;
        Ending::Written { changes }
    };
    eprintln!("{}", enablement::ending_line(&name, ending));
    let written = matches!(ending, Ending::Written { .. });
    finish(planned, g.output, dry_run, written, vec![])
}

/// The platform a live change edits, and what was read about it once.
struct Live {
    cluster: Cluster,
    platform: Platform,
    release: Option<Release>,
    req: Request,
    /// `namespace/configmap:local-production.yaml`.
    target: String,
}

impl Live {
    async fn connect(g: &GlobalArgs, a: &EnableArgs) -> Result<Live> {
        let cluster = Cluster::connect(&g.connect()).await?;
        let p = platform::find(&cluster, a.platform.platform_namespace.as_deref()).await?;
        // The Helm release: chart version (schema) and whether the values already say the same.
        let label = p.chart_version_from_label();
        let release = read_release(&cluster, &p)
            .await
            .inspect_err(|e| {
                note(&enablement::release_unreadable_note(
                    &e.message,
                    a.chart_version.as_deref(),
                    label.as_deref(),
                ))
            })
            .ok();
        let told =
            enablement::cluster_version(release.as_ref().ok_or(""), label, p.houston_name(), None)
                .ok();
        let req = enablement::live_request(
            a.chart_version.as_deref(),
            told,
            enablement::nothing_told(&p.release, &p.houston_name()),
            a.default_runtime_repository.clone(),
        )?;
        let target = format!("{}/{}:{LOCAL_PRODUCTION_KEY}", p.namespace, p.config_map());
        Ok(Live {
            cluster,
            platform: p,
            release,
            req,
            target,
        })
    }

    /// `<release>-houston-config` and its local-production.yaml.
    async fn read(&self) -> Result<(ConfigMap, String)> {
        let (ns, name) = (&self.platform.namespace, self.platform.config_map());
        let cm = self
            .cluster
            .get_configmap(ns, &name)
            .await?
            .ok_or_else(|| enablement::missing_config(ns, &name))?;
        let text = enablement::local_production_text(&cm)
            .map(str::to_string)
            .ok_or_else(|| enablement::no_local_production(ns, &name))?;
        Ok((cm, text))
    }

    /// The confirmed edit of `text` (read with `cm`). Another writer of the ConfigMap (409) makes
    /// it re-read: another key changed, it writes again (at most 3 tries); the key itself
    /// changed, the confirmed diff no longer holds and nothing is written.
    async fn write(&self, mut cm: ConfigMap, text: &str, new_text: &str) -> Result<()> {
        let (ns, name) = (&self.platform.namespace, self.platform.config_map());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let patch = Patch::Merge(enablement::local_production_patch(&cm, new_text));
            match self.cluster.patch_configmap(ns, &name, &patch, false).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind == ErrorKind::Conflict && attempt < 3 => {
                    let (fresh, fresh_text) = self.read().await?;
                    if fresh_text != text {
                        return Err(enablement::changed_meanwhile(&self.target));
                    }
                    cm = fresh;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Things --in-cluster cannot fix by itself: the releases ConfigMap volume is part of
    /// Houston's Deployment spec, rendered from the values.
    fn wiring_notes(&self, a: &EnableArgs) {
        let values = self.release.as_ref().map(|r| &r.values);
        if let Some(name) = enablement::expected_mount(&a.releases_configmap(), values) {
            if !platform::mount_of(&self.platform.houston, &name).mounted() {
                note(&enablement::unmounted_note(&name));
            }
        }
    }

    /// States plainly what the next `helm upgrade` does to an in-cluster change.
    fn upgrade_warning(&self, a: &EnableArgs, schema: Schema) {
        let version = self.req.chart_version.as_deref();
        let in_values = self
            .release
            .as_ref()
            .map(|r| enablement::values_enable(&r.values, version));
        let snippet = enablement::upgrade_snippet(
            schema,
            &a.releases_configmap(),
            a.default_runtime_repository.as_deref(),
        );
        let p = &self.platform;
        let warning = enablement::upgrade_warning(&p.release, &p.config_map(), in_values, &snippet);
        eprintln!("{warning}");
    }
}

/// The live change: local-production.yaml, then a restart of what mounts it (subPath).
async fn in_cluster(g: &GlobalArgs, a: &EnableArgs, dry_run: bool) -> Result<ExitStatus> {
    let live = Live::connect(g, a).await?;
    let (ns, cm_name) = (&live.platform.namespace, live.platform.config_map());
    let (cm, text) = live.read().await?;
    let planned = enablement::plan(
        &text,
        Target::LocalProduction,
        &live.req,
        live.target.clone(),
    )?;
    explain(&planned);
    live.wiring_notes(a);
    if !planned.outcome.changed() {
        eprintln!(
            "{}",
            enablement::ending_line(&live.target, Ending::LiveAlreadyEnabled)
        );
        return finish(planned, g.output, dry_run, false, vec![]);
    }
    // Everything that mounts the config (subPath: it keeps the old file until it restarts).
    let mounting = restart::mounting(&live.cluster, ns, &cm_name).await?;
    let restarts = mounting.workloads();
    live.upgrade_warning(a, planned.outcome.schema);
    if dry_run {
        show_diff(&planned, g.output)?;
        let ending = Ending::LiveDryRun {
            would_restart: &restarts,
        };
        eprintln!("{}", enablement::ending_line(&live.target, ending));
        return finish(planned, g.output, dry_run, false, vec![]);
    }
    restart::check_rights(&live.cluster, ns, &mounting).await?;
    show_diff(&planned, g.output)?;
    confirm_live(a, &planned, &live.platform, &restarts)?;
    live.write(cm, &text, &planned.outcome.new_text).await?;
    let restarted = restart::restart(&live.cluster, ns, &mounting, &live.target).await?;
    let ending = Ending::LiveWritten {
        restarted: &restarted,
    };
    eprintln!("{}", enablement::ending_line(&live.target, ending));
    for c in mounting.cronjob_names() {
        eprintln!("note: {c} mounts it too and reads the new file on its next run");
    }
    finish(planned, g.output, dry_run, true, restarted)
}

/// Asks before the live change (the diff is shown); refuses without a terminal unless `--yes`.
fn confirm_live(
    a: &EnableArgs,
    planned: &Planned,
    p: &Platform,
    restarts: &[String],
) -> Result<()> {
    let action = enablement::live_action(&p.config_map(), &p.namespace, restarts);
    if output::confirm(&enablement::question(&action, &planned.turned_off), a.yes)? {
        return Ok(());
    }
    Err(Error::declined(format!(
        "Aborted; nothing was changed ({} not written, nothing restarted).",
        planned.target
    )))
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
