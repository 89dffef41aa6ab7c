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

use crate::args::{DryRun, DryRunArgs, GlobalArgs, OutputFormat, PlatformArgs};
use crate::core::enablement::{self, ClusterVersion, TurnedOff, VersionSource};
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

/// A planned edit of one text: what changes, the flags it overrides, and the diff.
struct Planned {
    target: String,
    outcome: Outcome,
    turned_off: Vec<TurnedOff>,
    diff: String,
}

impl Planned {
    fn new(text: &str, where_: Target, req: &Request, target: String) -> Result<Planned> {
        let outcome = values::plan(text, where_, req, &target)?;
        Ok(Planned {
            turned_off: enablement::turned_off(text, where_, &outcome),
            diff: values::unified_diff(text, &outcome.new_text, &target),
            target,
            outcome,
        })
    }

    /// The schema, the notes and a warning for each flag that was off on purpose (stderr).
    fn explain(&self) {
        let o = &self.outcome;
        eprintln!("{}", enablement::schema_line(o.schema, &o.schema_reason));
        for n in &o.notes {
            note(n);
        }
        for t in &self.turned_off {
            eprintln!("{}", t.warning(&self.target));
        }
    }

    fn question(&self, action: &str) -> String {
        enablement::question(action, &self.turned_off)
    }

    /// The diff is the plan, and goes to stdout as `kubectl diff` prints it (and as pin prints its
    /// plan table), on a dry run and before the question alike; JSON/YAML carry it in the report.
    fn show_diff(&self, format: OutputFormat) -> Result<()> {
        if matches!(format, OutputFormat::Table | OutputFormat::Wide) {
            output::print(&self.diff)?;
        }
        Ok(())
    }

    fn finish(
        self,
        format: OutputFormat,
        dry_run: bool,
        written: bool,
        restarted: Vec<String>,
    ) -> Result<ExitStatus> {
        let report = Report {
            target: self.target,
            changed: self.outcome.changed(),
            written,
            dry_run,
            outcome: self.outcome,
            turned_off: self.turned_off,
            diff: self.diff,
            restarted,
        };
        if let Some(s) = output::structured(&report, format)? {
            output::print(&s)?;
        }
        Ok(ExitStatus::Success)
    }
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
    match read_release(&cluster, &p).await {
        Ok(r) => Ok(ClusterVersion {
            version: r.chart_version,
            source: VersionSource::HelmRelease {
                secret: r.secret,
                namespace: Some(p.namespace.clone()),
            },
        }),
        Err(e) => match p.chart_version_from_label() {
            Some(version) => Ok(ClusterVersion {
                version,
                source: VersionSource::ChartLabel {
                    deployment: p.houston_name(),
                    namespace: Some(p.namespace.clone()),
                    why_not_release: Some(e.message),
                },
            }),
            None => Err(e.message),
        },
    }
}

async fn read_release(cluster: &Cluster, p: &Platform) -> Result<Release> {
    let secrets = platform::release_secrets(cluster, &p.namespace, &p.release)
        .await
        .map_err(|e| cluster.err(e, "list", "secrets", Some(&p.namespace)))?;
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
    let cm = enablement::snippet_configmap(&req.releases_configmap, &serde_yaml_ng::Value::Null);
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
    let planned = Planned::new(&text, Target::ValuesFile, &req, name.clone())?;

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

    planned.explain();
    let changes = planned.outcome.changes.len();
    let mut written = false;
    if !planned.outcome.changed() {
        eprintln!("already enabled: {name} has every key set; nothing to do (file untouched)");
    } else if dry_run {
        planned.show_diff(g.output)?;
        eprintln!("dry run: {name} not written ({changes} change(s))");
    } else {
        planned.show_diff(g.output)?;
        if !output::confirm(
            &planned.question(&format!("Write {changes} change(s) to {name}")),
            a.yes,
        )? {
            return Err(Error::declined(format!("Aborted; {name} was not written.")));
        }
        let new_text = &planned.outcome.new_text;
        output::write_atomically(path, new_text, Replacing::Edit(&text))?;
        written = true;
        eprintln!(
            "enabled in {name} ({changes} change(s)). Apply it with `helm upgrade` of the platform release, and fill the releases ConfigMap with `kubectl astro-sha import`."
        );
    }
    planned.finish(g.output, dry_run, written, vec![])
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
        let told = match (&release, label) {
            (Some(r), _) => Some(ClusterVersion {
                version: r.chart_version.clone(),
                source: VersionSource::HelmRelease {
                    secret: r.secret.clone(),
                    namespace: None,
                },
            }),
            (None, Some(version)) => Some(ClusterVersion {
                version,
                source: VersionSource::ChartLabel {
                    deployment: p.houston_name(),
                    namespace: None,
                    why_not_release: None,
                },
            }),
            (None, None) => None,
        };
        let unknown = format!(
            "no readable Helm release of {} and no chart label on deployment/{}",
            p.release,
            p.houston_name()
        );
        let req = enablement::live_request(
            a.chart_version.as_deref(),
            told,
            unknown,
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
            .ok_or_else(|| missing_config(ns, &name))?;
        let text = local_production(&cm).map(str::to_string).ok_or_else(|| {
            Error::new(format!(
                "ConfigMap {name} in namespace {ns} has no {LOCAL_PRODUCTION_KEY}"
            ))
            .hint("the platform chart renders it from astronomer.houston.config; use --values and helm upgrade instead")
        })?;
        Ok((cm, text))
    }

    /// Only this key, and only if nobody wrote the ConfigMap since it was read.
    async fn write(&self, cm: &ConfigMap, new_text: &str) -> Result<ConfigMap> {
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": cm.metadata.resource_version},
            "data": {LOCAL_PRODUCTION_KEY: new_text},
        });
        let (ns, name) = (&self.platform.namespace, self.platform.config_map());
        self.cluster
            .patch_configmap(ns, &name, &Patch::Merge(patch), false)
            .await
    }

    /// After a 409: fine when our key still holds what was read (another key changed);
    /// otherwise the confirmed diff no longer holds and nothing is written.
    async fn key_unchanged(&self, text: &str) -> Result<()> {
        let (fresh, _) = self.read().await?;
        if local_production(&fresh) != Some(text) {
            return Err(Error::new(format!(
                "{} was changed by someone else while this ran; nothing was written",
                self.target
            ))
            .hint("run the command again to see the new diff"));
        }
        Ok(())
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
        let cm = match a.releases_configmap() {
            ReleasesConfigMap::Skip => None,
            ReleasesConfigMap::Name(n) => Some(n),
            ReleasesConfigMap::Default => Some(values::DEFAULT_RELEASES_CONFIGMAP.to_string()),
        };
        let snippet = values::snippet(
            schema,
            cm.as_deref(),
            a.default_runtime_repository.as_deref(),
        );
        let p = &self.platform;
        eprintln!(
            "{}",
            enablement::upgrade_warning(&p.release, &p.config_map(), in_values, &snippet)
        );
    }
}

fn local_production(cm: &ConfigMap) -> Option<&str> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(LOCAL_PRODUCTION_KEY))
        .map(String::as_str)
}

/// The live change: local-production.yaml, then a restart of what mounts it (subPath).
async fn in_cluster(g: &GlobalArgs, a: &EnableArgs, dry_run: bool) -> Result<ExitStatus> {
    let live = Live::connect(g, a).await?;
    let (ns, cm_name) = (&live.platform.namespace, live.platform.config_map());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (cm, text) = live.read().await?;
        let planned = Planned::new(
            &text,
            Target::LocalProduction,
            &live.req,
            live.target.clone(),
        )?;
        if attempt == 1 {
            planned.explain();
            live.wiring_notes(a);
        }
        if !planned.outcome.changed() {
            eprintln!(
                "already enabled in {}; nothing to do (nothing restarted)",
                live.target
            );
            return planned.finish(g.output, dry_run, false, vec![]);
        }
        // Everything that mounts the config (subPath: it keeps the old file until it restarts).
        let mounting = restart::mounting(&live.cluster, ns, &cm_name).await?;
        let restarts = mounting.workloads();
        if attempt == 1 {
            live.upgrade_warning(a, planned.outcome.schema);
        }
        if dry_run {
            planned.show_diff(g.output)?;
            eprintln!(
                "dry run: {} not changed; would restart {}",
                live.target,
                enablement::list_or_none(&restarts)
            );
            return planned.finish(g.output, dry_run, false, vec![]);
        }
        if attempt == 1 {
            restart::check_rights(&live.cluster, ns, &mounting).await?;
            planned.show_diff(g.output)?;
            confirm_live(a, &planned, &live.platform, &restarts)?;
        }
        match live.write(&cm, &planned.outcome.new_text).await {
            Ok(_) => {
                let restarted =
                    restart::restart(&live.cluster, ns, &mounting, &live.target).await?;
                eprintln!(
                    "enabled in {}; restarted {}",
                    live.target,
                    enablement::list_or_none(&restarted)
                );
                for c in mounting.cronjob_names() {
                    eprintln!("note: {c} mounts it too and reads the new file on its next run");
                }
                return planned.finish(g.output, dry_run, true, restarted);
            }
            // Someone else wrote the ConfigMap: re-read and re-plan.
            Err(e) if e.kind == ErrorKind::Conflict && attempt < 3 => {
                live.key_unchanged(&text).await?
            }
            Err(e) => return Err(e),
        }
    }
}

/// Asks before the live change (the diff is shown); refuses without a terminal unless `--yes`.
fn confirm_live(
    a: &EnableArgs,
    planned: &Planned,
    p: &Platform,
    restarts: &[String],
) -> Result<()> {
    let restart = if restarts.is_empty() {
        String::new()
    } else {
        format!(" and restart {}", restarts.join(", "))
    };
    let action = format!(
        "Patch {} in namespace {}{restart}",
        p.config_map(),
        p.namespace
    );
    if output::confirm(&planned.question(&action), a.yes)? {
        return Ok(());
    }
    Err(Error::declined(format!(
        "Aborted; nothing was changed ({} not written, nothing restarted).",
        planned.target
    )))
}

/// Houston's config ConfigMap is gone: the platform chart renders it, so a Helm upgrade (or
/// `enable --values`) is the way back.
fn missing_config(ns: &str, cm_name: &str) -> Error {
    Error::new(format!("ConfigMap {cm_name} not found in namespace {ns}"))
        .hint("the platform chart renders it; check the platform's Helm release (helm status) or use --values and helm upgrade")
        .kind(ErrorKind::NotFound)
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
