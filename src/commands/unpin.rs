//! `kubectl astro-sha unpin`: put back exactly the images a pin replaced.
//!
//! The pin recorded, per container, the original image and the image it wrote. Unpin restores the
//! original only where the container still runs what the pin wrote; anything else was changed by
//! someone since, and is refused unless `--force`. A container Houston renders as
//! `repository@sha256:…` with the very build the pin wrote is Houston's own pin now: unpin leaves
//! it alone and says so (not even `--force` puts the tag back over Houston's digest).

use clap::Args;

use crate::args::GlobalArgs;
use crate::args::{DryRun, PlatformArgs, WriteArgs};
use crate::commands::operations::{load, releases, write};
use crate::core::plan::{compact_summary, fill_versions, unpin_plan, Action, PlanRow};
use crate::error::ExitStatus;
use crate::error::{Error, Result};
use crate::kube::apply;
use crate::kube::client::Cluster;
use crate::output;

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  kubectl astro-sha unpin quasaric-sun-1234\n  kubectl astro-sha unpin --all -A --dry-run=client"
)]
pub(crate) struct UnpinArgs {
    /// Release names of the Airflow Deployments to unpin
    pub(crate) releases: Vec<String>,
    /// Unpin every pinned Airflow Deployment in scope (-n NS or -A)
    #[arg(long, conflicts_with = "releases")]
    pub(crate) all: bool,
    /// Restore the original image even where the image was changed after the pin
    #[arg(long)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) write: WriteArgs,
    // Where Houston runs: its releases ConfigMap gives tagless repository@sha256 containers their
    // Runtime version.
    #[command(flatten)]
    pub(crate) platform: PlatformArgs,
}

/// Says which containers unpin leaves to Houston (stderr, after the plan): the first `limit` of
/// them and how many more, when a limit is given (at fleet size).
fn note_left_to_houston(rows: &[PlanRow], limit: Option<usize>) {
    let left: Vec<&PlanRow> = rows
        .iter()
        .filter(|r| r.action == Action::LeftToHouston)
        .collect();
    if left.is_empty() {
        return;
    }
    eprintln!(
        "note: unpin leaves {} container(s) alone: Houston renders the build the pin wrote as repository@sha256 now (its own pin; restoring the tag would undo it), so their pin records are superseded:",
        left.len()
    );
    let shown = limit.unwrap_or(left.len());
    for r in left.iter().take(shown) {
        eprintln!(
            "{}",
            crate::output::safe(&format!(
                "  release {} ({}) {} container {}",
                r.release, r.namespace, r.workload, r.container
            ))
        );
    }
    if left.len() > shown {
        eprintln!(
            "  and {} more container(s); -o wide lists each",
            left.len() - shown
        );
    }
}

pub(crate) async fn run(g: &GlobalArgs, args: &UnpinArgs) -> Result<ExitStatus> {
    if args.releases.is_empty() && !args.all {
        return Err(Error::new("no release given").hint("name releases (kubectl astro-sha unpin quasaric-sun-1234) or pass --all with -n NS or -A"));
    }
    let cluster = Cluster::connect(&g.connect()).await?;
    let (_scope, _snap, workloads) =
        load::list_workloads(&cluster, &g.namespaces(), &args.releases).await?;
    let mut p = unpin_plan(&workloads, args.force);
    let tagless = p
        .rows
        .iter()
        .filter(|r| releases::is_tagless_digest(&r.from))
        .count();
    if let Some(index) = releases::read_index(
        &cluster,
        args.platform.platform_namespace.as_deref(),
        tagless,
    )
    .await
    {
        fill_versions(&mut p.rows, &index);
    }
    // A record that cannot be read or holds no verifiable original stops the run: restoring
    // around it would leave a release half unpinned with a record nobody can act on.
    if !p.problems.is_empty() {
        write::print_problems(&p.problems);
        return Err(Error::new(format!(
            "nothing was changed: {} record(s) cannot be restored",
            p.problems.len()
        ))
        .hint(format!("fix or remove the {ann} annotation (or {legacy}, where builds before v0.1.0 wrote it) of the objects named above (`kubectl annotate KIND/NAME {ann}-`), then run unpin again", ann = crate::core::names::ORIGINAL_IMAGES_ANNOTATION, legacy = crate::core::names::LEGACY_ORIGINAL_IMAGES_ANNOTATION)));
    }
    let refused = ExitStatus::not_ok_if(p.refused() > 0);
    write::print_plan(g.output, write::layout(g), &p)?;
    let fleet = compact_summary(p.releases(), write::layout(g).wide);
    note_left_to_houston(&p.rows, fleet.then_some(write::ATTENTION_LISTED));
    if p.edits.is_empty() {
        let left = p.rows.iter().any(|r| r.action == Action::LeftToHouston);
        eprintln!(
            "Nothing to unpin: no container carries a pin made by kubectl astro-sha{}.",
            if refused == ExitStatus::NotOk {
                " that unpin may restore"
            } else if left {
                " that Houston has not taken over"
            } else {
                ""
            }
        );
        write::print_unapplied(g.output, &p)?;
        return Ok(refused);
    }
    eprint!(
        "{}",
        write::render_summary(&p, "unpin", write::layout(g).wide)
    );
    if args.write.dry.dry_run == DryRun::Client {
        eprintln!(
            "Dry run (client): {} object(s) would change; nothing was sent.",
            p.edits.len()
        );
        write::print_unapplied(g.output, &p)?;
        return Ok(refused);
    }
    let server_dry = args.write.dry.dry_run == DryRun::Server;
    if !server_dry
        && !output::confirm(
            &format!("Unpin {} object(s)?", p.edits.len()),
            args.write.yes,
        )?
    {
        return Err(Error::declined("Aborted; nothing was changed."));
    }
    apply::access_check(&cluster, &p.edits, args.write.parallel()).await?;
    let code = write::apply_all(
        &cluster,
        g.output,
        &p,
        server_dry,
        write::Verb::Unpin,
        args.write.parallel(),
    )
    .await?;
    Ok(code.max(refused))
}

#[cfg(test)]
mod tests {
    use crate::core::inventory::{ContainerImage, Role};
    use crate::core::inventory::{Kind, Workload, ORIGINAL_IMAGES_ANNOTATION};
    use crate::core::plan::unpin_plan as plan;

    fn wl(image: &str, ann: Option<&str>) -> Workload {
        let mut annotations = std::collections::BTreeMap::new();
        if let Some(a) = ann {
            annotations.insert(ORIGINAL_IMAGES_ANNOTATION.to_string(), a.to_string());
        }
        Workload {
            kind: Kind::Deployment,
            namespace: "ns".into(),
            name: "r-web".into(),
            release: "r".into(),
            component: None,
            containers: vec![ContainerImage {
                container: "web".into(),
                role: Role::Container,
                index: 0,
                image: image.into(),
            }],
            pod_selector: Default::default(),
            annotations,
            pull_secrets: vec![],
            service_account: None,
            template_text: None,
            problem: None,
            resource_version: None,
        }
    }

    const ANN: &str = r#"{"container:web":{"original":"a/astro-runtime:1","pinned":"a/astro-runtime:1@sha256:x"}}"#;

    #[test]
    fn restores_exactly_and_drops_the_annotation() {
        let p = plan(&[wl("a/astro-runtime:1@sha256:x", Some(ANN))], false);
        assert!(p.problems.is_empty());
        assert_eq!(p.edits[0].images[0].to, "a/astro-runtime:1");
        assert_eq!(p.edits[0].annotation.1, None);
    }

    #[test]
    fn refuses_changed_images_unless_forced() {
        let p = plan(&[wl("a/astro-runtime:2", Some(ANN))], false);
        assert_eq!(p.refused(), 1);
        assert!(p.problems.is_empty());
        assert!(p.edits.is_empty());
        let p = plan(&[wl("a/astro-runtime:2", Some(ANN))], true);
        assert_eq!(p.edits[0].images[0].to, "a/astro-runtime:1");
    }

    #[test]
    fn untouched_without_records() {
        assert!(plan(&[wl("a/astro-runtime:1", None)], false)
            .edits
            .is_empty());
    }
}
