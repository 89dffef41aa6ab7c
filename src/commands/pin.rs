//! `kubectl astro-sha pin`: move a running Airflow Deployment's Runtime containers from tags to
//! digests, safely.
//!
//! `plan()` is pure: workloads + resolved digests in, object edits and a printable plan out. Any
//! problem in a release (an unresolvable tag, a template it cannot edit) fails the whole run before
//! anything is written. `run()` shows the plan, asks, checks RBAC, then applies release by release,
//! all or nothing (see `apply::apply_release`).

use std::path::PathBuf;

use clap::Args;

use crate::args::{DryRun, GlobalArgs, PlatformArgs, RegistryArgs, RuntimeArgs, WriteArgs};
use crate::commands::operations::{load, write};
use crate::core::inventory::{RuntimeMatcher, Workload};
use crate::core::names;
use crate::core::plan::{fill_versions, plan, CatalogDigests, DigestSource, Plan, PlanOptions};
use crate::core::pullsecrets::Resolutions;
use crate::core::values_out::{self, ReleaseImage, ValuesRefusal};
use crate::error::ExitStatus;
use crate::error::{Error, Result};
use crate::kube::apply::{self};
use crate::kube::client::Cluster;
use crate::output;
use crate::registry::ImageRef;

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  kubectl astro-sha pin quasaric-sun-1234\n  kubectl astro-sha pin quasaric-sun-1234 --digest-source running --yes\n  kubectl astro-sha pin --all -A --dry-run=client\n  kubectl astro-sha pin quasaric-sun-1234 --from-configmap --yes\n  kubectl astro-sha pin quasaric-sun-1234 --values-out pinned-values.yaml"
)]
pub(crate) struct PinArgs {
    /// Release names of the Airflow Deployments to pin
    pub(crate) releases: Vec<String>,
    /// Pin every Airflow Deployment in scope (-n NS or -A)
    #[arg(long, conflicts_with = "releases")]
    pub(crate) all: bool,
    /// Write repo@sha256:... instead of repo:tag@sha256:...
    #[arg(long)]
    pub(crate) drop_tag: bool,
    /// Re-pin containers whose tag has moved since they were pinned
    #[arg(long)]
    pub(crate) repin: bool,
    /// Take digests from the imported releases ConfigMap (the digests Houston uses) instead of the registry
    #[arg(long, conflicts_with = "digest_source")]
    pub(crate) from_configmap: bool,
    /// Where tag-only containers get their digest: registry (what the tag points to now), configmap
    /// (the imported releases ConfigMap, as --from-configmap), running (what the pods run now, frozen)
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub(crate) digest_source: Option<SourceArg>,
    /// Name of the releases ConfigMap, with --from-configmap
    #[arg(long, default_value = names::DEFAULT_RELEASES_CONFIGMAP)]
    pub(crate) configmap: String,
    #[command(flatten)]
    pub(crate) platform: PlatformArgs,
    /// Where each catalog entry holds its digest, dotted and relative to the entry (default: what import
    /// recorded in the ConfigMap's astro-sha.astronomer.io/digest-field annotation, else sha256)
    #[arg(long)]
    pub(crate) digest_field: Option<String>,
    #[command(flatten)]
    pub(crate) write: WriteArgs,
    /// Write airflow chart values that pin the image (images.airflow.*) to FILE instead of patching: the build this pin would apply,
    /// one image per release (a release on two is refused); `{release}` and `{namespace}` in FILE are replaced per release
    #[arg(long, value_name = "FILE")]
    pub(crate) values_out: Option<PathBuf>,
    /// Skip the RBAC pre-check (SelfSubjectAccessReview) before writing
    #[arg(long)]
    pub(crate) skip_access_check: bool,
    #[command(flatten)]
    pub(crate) runtime: RuntimeArgs,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// `--digest-source`: where tag-only containers get their digest.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceArg {
    /// What the tag points to in the registry now
    Registry,
    /// The imported releases ConfigMap: the digests Houston renders (same as --from-configmap)
    Configmap,
    /// What the pods run now (their imageID), frozen; refused where a workload's pods disagree
    Running,
}

impl PinArgs {
    fn source(&self) -> Result<SourceArg> {
        let s = match (self.digest_source, self.from_configmap) {
            (Some(s), _) => s,
            (None, true) => SourceArg::Configmap,
            (None, false) => SourceArg::Registry,
        };
        if s == SourceArg::Running && self.repin {
            return Err(Error::new("--repin moves pins to the tag's current digest in the registry; --digest-source running has none").hint("drop --repin to freeze what runs, or pin from the registry with --repin"));
        }
        Ok(s)
    }
}

pub(crate) async fn run(g: &GlobalArgs, args: &PinArgs) -> Result<ExitStatus> {
    if args.releases.is_empty() && !args.all {
        return Err(Error::new("no release given").hint("name releases (kubectl astro-sha pin quasaric-sun-1234) or pass --all with -n NS or -A"));
    }
    let source = args.source()?;
    let cluster = Cluster::connect(&g.connect()).await?;
    let (scope, snap, workloads) =
        load::list_workloads(&cluster, &g.namespaces(), &args.releases).await?;
    if workloads.is_empty() {
        return Err(Error::new("no Airflow Deployments found in scope")
            .hint("use -A to look in every namespace, or -n NAMESPACE"));
    }
    let matcher = args.runtime.matcher();
    let catalog = if source == SourceArg::Configmap {
        let c = read_catalog(&cluster, args).await?;
        check_catalog_entries(&c, &workloads, &matcher, &args.configmap)?;
        Some(c)
    } else {
        None
    };
    // Freezing what runs needs no registry (air-gapped platforms included).
    let resolved = if source == SourceArg::Running {
        Resolutions::default()
    } else {
        load::resolve_runtime(
            &cluster,
            &scope,
            &workloads,
            &matcher,
            args.registry.options(false),
        )
        .await?
    };
    let mut p = plan(
        &workloads,
        &resolved,
        &PlanOptions {
            drop_tag: args.drop_tag,
            repin: args.repin,
            matcher: &matcher,
            source: match (&catalog, source) {
                (Some(c), _) => DigestSource::ConfigMap(c),
                (None, SourceArg::Running) => DigestSource::Running,
                (None, _) => DigestSource::Registry,
            },
            pods: &snap.pods,
        },
    );
    use crate::commands::operations::releases;
    let tagless = releases::tagless_digests(&workloads, &matcher);
    let platform_ns = args.platform.platform_namespace.as_deref();
    if let Some(index) = releases::read_index(&cluster, platform_ns, tagless).await {
        fill_versions(&mut p.rows, &index);
    }

    for n in &p.notes {
        eprintln!("note: {n}");
    }
    if !p.problems.is_empty() {
        write::print_problems(&p.problems);
        return Err(Error::new(format!(
            "nothing was changed: {} in the plan",
            output::count(p.problems.len(), "problem", "problems")
        ))
        .hint("fix the problems above (or leave the release out) and run again"));
    }
    if let Some(path) = &args.values_out {
        return write_values(path, &p, &workloads, args.write.yes);
    }
    apply_plan(g, args, &cluster, &p).await
}

/// Shows the plan and its summary, asks, and applies it. Exit 1 when rows were refused.
async fn apply_plan(
    g: &GlobalArgs,
    args: &PinArgs,
    cluster: &Cluster,
    p: &Plan,
) -> Result<ExitStatus> {
    let refused = ExitStatus::not_ok_if(p.refused() > 0);
    write::print_plan(g.output, write::layout(g), p)?;
    if p.edits.is_empty() {
        eprintln!(
            "Nothing to change: every Runtime container is already pinned{}.",
            if refused == ExitStatus::NotOk {
                " or refused"
            } else {
                ""
            }
        );
        write::print_unapplied(g.output, p)?;
        return Ok(refused);
    }
    eprint!("{}", write::render_summary(p, "pin", write::layout(g).wide));
    if args.write.dry.dry_run == DryRun::Client {
        eprintln!(
            "Dry run (client): {} object(s) would change; nothing was sent.",
            p.edits.len()
        );
        write::print_unapplied(g.output, p)?;
        return Ok(refused);
    }
    if houston_off(cluster, args.platform.platform_namespace.as_deref()).await {
        eprintln!("warning: Houston's customImageSha feature is not enabled: Houston's next update of these Deployments will put the tags back (show will report it).");
        eprintln!(
            "  hint: kubectl astro-sha enable --values <platform values.yaml>  (or --in-cluster)"
        );
    }
    let server_dry = args.write.dry.dry_run == DryRun::Server;
    if !server_dry
        && !output::confirm(&format!("Pin {} object(s)?", p.edits.len()), args.write.yes)?
    {
        return Err(Error::declined("Aborted; nothing was changed."));
    }
    if !args.skip_access_check {
        apply::access_check(cluster, &p.edits, args.write.parallel()).await?;
    }
    write::pause_before_apply().await;
    let code = write::apply_all(
        cluster,
        g.output,
        p,
        server_dry,
        write::Verb::Pin,
        args.write.parallel(),
    )
    .await?;
    Ok(code.max(refused))
}

async fn houston_off(cluster: &Cluster, platform_namespace: Option<&str>) -> bool {
    crate::kube::platform::houston_feature_enabled(cluster, platform_namespace).await == Some(false)
}

/// A catalog entry a selected workload needs whose digest is not a valid sha256 digest stops the
/// run before anything is planned or written, naming the entry.
fn check_catalog_entries(
    catalog: &CatalogDigests,
    workloads: &[Workload],
    matcher: &RuntimeMatcher,
    configmap: &str,
) -> Result<()> {
    for w in workloads {
        for c in &w.containers {
            let Ok(img) = ImageRef::parse(&c.image) else {
                continue;
            };
            if !matcher.is_runtime(&img) {
                continue;
            }
            if let Err(e) = catalog.lookup_checked(&img) {
                return Err(Error::new(format!(
                    "releases ConfigMap {configmap}: {e} (needed by {}/{} container {}); nothing was changed",
                    w.namespace,
                    w.display_name(),
                    c.container
                ))
                .hint("re-run `kubectl astro-sha import` to rewrite the catalog's digests, or pin from the registry (without --from-configmap)"));
            }
        }
    }
    Ok(())
}

async fn read_catalog(cluster: &Cluster, args: &PinArgs) -> Result<CatalogDigests> {
    let ns = crate::kube::platform::find(cluster, args.platform.platform_namespace.as_deref())
        .await?
        .namespace;
    let cm = cluster
        .get_configmap(&ns, &args.configmap)
        .await?
        .ok_or_else(|| {
            Error::new(format!("ConfigMap {ns}/{} not found", args.configmap))
                .hint("run `kubectl astro-sha import` first, or pass --configmap")
        })?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(names::RELEASES_DATA_KEY))
        .ok_or_else(|| {
            Error::new(format!(
                "ConfigMap {ns}/{} has no key astro_runtime_releases.json",
                args.configmap
            ))
            .hint("re-run `kubectl astro-sha import`")
        })?;
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        Error::new(format!(
            "ConfigMap {ns}/{}: catalog JSON does not parse: {e}",
            args.configmap
        ))
    })?;
    let recorded = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::DIGEST_FIELD_ANNOTATION))
        .cloned();
    let field = args
        .digest_field
        .clone()
        .or(recorded)
        .unwrap_or_else(|| names::DEFAULT_DIGEST_FIELD.into());
    let field = crate::core::catalog::DigestField::parse(&field).map_err(|e| {
        Error::new(format!(
            "ConfigMap {ns}/{}: the digest field to read: {e}",
            args.configmap
        ))
        .hint(
            "pass --digest-field with the dotted path import wrote the digests to (default sha256)",
        )
    })?;
    Ok(CatalogDigests::from_catalog(&json, &field))
}

/// `--values-out`: one airflow chart values file per release, pinning the image the plan gives
/// the release (`core::values_out::release_images` decides; a refused release stops the run before
/// any file is touched).
fn write_values(
    path: &std::path::Path,
    p: &Plan,
    workloads: &[Workload],
    yes: bool,
) -> Result<ExitStatus> {
    let images = values_out::release_images(p, workloads).map_err(refused)?;
    let files = values_files(&path.to_string_lossy(), &images)?;
    let existing: Vec<&str> = files
        .iter()
        .map(|(f, _)| f.as_str())
        .filter(|f| std::path::Path::new(f).exists())
        .collect();
    // A new file is the output asked for; replacing an existing one is a write to the user's file.
    if !existing.is_empty()
        && !output::confirm(
            &format!("Replace existing file(s) {}?", existing.join(", ")),
            yes,
        )?
    {
        return Err(Error::declined("Aborted; nothing was written."));
    }
    for (file, image) in &files {
        output::write_atomically(
            std::path::Path::new(file),
            &values_out::release_values(image),
            output::Replacing::Whole,
        )?;
        eprintln!(
            "wrote {file} (release {}: {})",
            image.release,
            image.digest.short()
        );
    }
    Ok(ExitStatus::Success)
}

/// The error for releases `--values-out` cannot write: each named, nothing written.
fn refused(refusals: Vec<ValuesRefusal>) -> Error {
    let mut hints: Vec<&str> = vec![];
    for h in refusals.iter().map(ValuesRefusal::hint) {
        if !hints.contains(&h) {
            hints.push(h);
        }
    }
    let message = match refusals.as_slice() {
        [one] => format!("--values-out: {one}; nothing was written"),
        many => format!(
            "--values-out: {} releases cannot be pinned by one image each; nothing was written:\n{}",
            many.len(),
            many.iter()
                .map(|r| format!("  - {r}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    Error::new(message).hint(hints.join("; "))
}

/// The file of each release: `{release}` and `{namespace}` in the template replaced. Two releases
/// on one file are refused (nothing written).
fn values_files(template: &str, images: &[ReleaseImage]) -> Result<Vec<(String, ReleaseImage)>> {
    if images.len() > 1 && !template.contains("{release}") && !template.contains("{namespace}") {
        return Err(Error::new(format!(
            "--values-out {template}: {} releases selected but one file given",
            images.len()
        ))
        .hint("put {release} in the path, e.g. --values-out 'values-{release}.yaml'"));
    }
    let mut files: Vec<(String, ReleaseImage)> = vec![];
    for image in images {
        let file = template
            .replace("{release}", &image.release)
            .replace("{namespace}", &image.namespace);
        if let Some((_, other)) = files.iter().find(|(f, _)| *f == file) {
            return Err(Error::new(format!(
                "--values-out {template}: releases {} ({}) and {} ({}) would both be written to {file}; nothing was written",
                other.release, other.namespace, image.release, image.namespace
            ))
            .hint("put {namespace} in the path too, e.g. --values-out 'values-{namespace}-{release}.yaml'"));
        }
        files.push((file, image.clone()));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::digest::Digest;

    fn image(namespace: &str, release: &str) -> ReleaseImage {
        ReleaseImage {
            namespace: namespace.into(),
            release: release.into(),
            repository: "q.io/astronomer/astro-runtime".into(),
            tag: Some("12.1.0".into()),
            digest: Digest::of_bytes(b"x"),
        }
    }

    #[test]
    fn values_files_are_per_release_and_never_shared() {
        let two = [image("a", "r1"), image("b", "r2")];
        let files: Vec<String> = values_files("v-{release}.yaml", &two)
            .unwrap()
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(files, ["v-r1.yaml", "v-r2.yaml"]);
        let e = values_files("v.yaml", &two).unwrap_err();
        assert!(e.message.contains("2 releases selected but one file given"));
        // One release name in two namespaces: {namespace} tells them apart.
        let same = [image("a", "r"), image("b", "r")];
        let e = values_files("v-{release}.yaml", &same).unwrap_err();
        assert!(
            e.message
                .contains("releases r (a) and r (b) would both be written to v-r.yaml"),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap_or_default().contains("{namespace}"));
        assert!(values_files("v-{namespace}-{release}.yaml", &same).is_ok());
    }
}
