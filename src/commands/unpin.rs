//! `kubectl astro-sha unpin`: put back exactly the images a pin replaced.
//!
//! The pin recorded, per container, the original image and the image it wrote. Unpin restores the
//! original only where the container still runs what the pin wrote; anything else was changed by
//! someone since, and is refused unless `--force`.

use clap::Args;

use crate::args::GlobalArgs;
use crate::args::{DryRun, WriteArgs};
use crate::commands::pin::{Plan, PlanRow};
use crate::core::inventory::{Kind, Workload, ORIGINAL_IMAGES_ANNOTATION};
use crate::error::{Error, Result};
use crate::kube::apply::{self, ImageEdit, ObjectEdit};
use crate::kube::client::Cluster;

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  kubectl astro-sha unpin quasaric-sun-1234\n  kubectl astro-sha unpin --all -A --dry-run=client"
)]
pub struct UnpinArgs {
    /// Release names of the Airflow Deployments to unpin
    pub releases: Vec<String>,
    /// Unpin every pinned Airflow Deployment in scope (-n NS or -A)
    #[arg(long, conflicts_with = "releases")]
    pub all: bool,
    /// Restore the original image even where the image was changed after the pin
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// Pure: the edits that restore recorded images.
pub fn plan(workloads: &[Workload], force: bool) -> Plan {
    let mut out = Plan::default();
    for w in workloads {
        let Some(ann) = w.annotations.get(ORIGINAL_IMAGES_ANNOTATION) else {
            continue;
        };
        let records = apply::parse_records(Some(ann));
        let mut edits = vec![];
        let mut kept = records.clone();
        for c in &w.containers {
            let key = apply::record_key(c.role, &c.container);
            let Some(rec) = records.get(&key) else {
                continue;
            };
            let row = |to: Option<String>, action: &str| PlanRow {
                namespace: w.namespace.clone(),
                release: w.release.clone(),
                workload: w.display_name(),
                container: c.container.clone(),
                from: c.image.clone(),
                to,
                action: action.into(),
            };
            if c.image == rec.original {
                out.rows.push(row(None, "unchanged: not pinned"));
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
                    "unpin"
                } else {
                    "unpin (forced)"
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
                match apply::template_after(text, &edits) {
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

pub async fn run(g: &GlobalArgs, args: &UnpinArgs) -> Result<u8> {
    if args.releases.is_empty() && !args.all {
        return Err(Error::new("no release given").hint("name releases (kubectl astro-sha unpin quasaric-sun-1234) or pass --all with -n NS or -A"));
    }
    let cluster = Cluster::connect(&g.connect()).await?;
    let (_scope, _snap, workloads) =
        crate::commands::show::load(&cluster, &g.namespaces(), &args.releases).await?;
    let p = plan(&workloads, args.force);
    if !p.problems.is_empty() {
        crate::commands::pin::print_problems(&p.problems);
        return Err(Error::new(format!(
            "nothing was changed: {} container(s) changed since they were pinned",
            p.problems.len()
        ))
        .hint(
            "review with `kubectl astro-sha show`; --force restores the recorded originals anyway",
        ));
    }
    crate::commands::pin::print_plan(g, &p.rows)?;
    if p.edits.is_empty() {
        eprintln!("Nothing to unpin: no container carries a pin made by kubectl astro-sha.");
        return Ok(0);
    }
    if args.write.dry.dry_run == DryRun::Client {
        eprintln!(
            "Dry run (client): {} object(s) would change; nothing was sent.",
            p.edits.len()
        );
        return Ok(0);
    }
    if !crate::commands::pin::confirm(
        &format!("Unpin {} object(s)?", p.edits.len()),
        args.write.yes,
    )? {
        eprintln!("Aborted; nothing was changed.");
        return Ok(crate::error::EXIT_NOT_OK);
    }
    crate::commands::pin::access_check(&cluster, &p.edits).await?;
    crate::commands::pin::apply_all(
        &cluster,
        g,
        &p.edits,
        args.write.dry.dry_run == DryRun::Server,
        "unpinned",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::inventory::{ContainerImage, Role};

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
        assert_eq!(p.problems.len(), 1);
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
