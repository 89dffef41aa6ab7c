//! `kubectl astro-sha show`: for every Runtime container, the tag, the pinned digest, what the tag
//! points to now, and what the pods actually run.
//!
//! The rows are computed by the pure `core::state::report` (workloads + pods + resolutions in,
//! rows out); `run()` does the listing and the registry calls through `operations::load`.

use clap::Args;

use crate::args::{GlobalArgs, OutputFormat, RegistryArgs, RuntimeArgs};
use crate::commands::operations::load;
use crate::core::inventory::{Role, Running};
pub use crate::core::state::{report, Report, Row, Status};
use crate::error::{Result, EXIT_NOT_OK};
use crate::kube::client::Cluster;
use crate::output::{self, Table};

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  kubectl astro-sha show -A\n  kubectl astro-sha show quasaric-sun-1234 -o wide\n  kubectl astro-sha show -A --check && echo all pinned"
)]
pub struct ShowArgs {
    /// Release names of Airflow Deployments (default: all in scope; searched in every namespace when -n is not given)
    pub releases: Vec<String>,
    /// Exit 0 only if every Runtime container is pinned and running its pin; 1 otherwise; 2 on error
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn running_cell(r: &Running, wide: bool) -> String {
    match r {
        Running::Unknown => "-".into(),
        Running::Digest(d) if wide => d.clone(),
        Running::Digest(d) => output::short_digest(d),
        Running::Mixed(_) => "mixed".into(),
    }
}

pub fn render_table(rep: &Report, wide: bool, no_headers: bool, color: bool) -> String {
    let mut headers = vec![
        "NAMESPACE",
        "RELEASE",
        "WORKLOAD",
        "CONTAINER",
        "TAG",
        "SPEC DIGEST",
        "REGISTRY DIGEST",
        "RUNNING DIGEST",
        "STATUS",
    ];
    if wide {
        headers.extend(["IMAGE", "REGISTRY SOURCE"]);
    }
    let mut t = Table::new(headers);
    let d = |o: &Option<String>| match o {
        Some(x) if wide => x.clone(),
        Some(x) => output::short_digest(x),
        None => "-".into(),
    };
    for r in &rep.items {
        let container = match r.role {
            Role::Init => format!("{} (init)", r.container),
            Role::Container => r.container.clone(),
        };
        let mut row = vec![
            r.namespace.clone(),
            r.release.clone(),
            r.workload.clone(),
            container,
            r.tag.clone().unwrap_or_else(|| "-".into()),
            d(&r.spec_digest),
            d(&r.registry_digest),
            running_cell(&r.running, wide),
            output::paint_state(&r.status, r.state.kind(), color),
        ];
        if wide {
            row.push(r.image.clone());
            row.push(r.registry_source.clone().unwrap_or_else(|| "-".into()));
        }
        t.push(row);
    }
    t.render(no_headers)
}

pub async fn run(g: &GlobalArgs, args: &ShowArgs) -> Result<u8> {
    let cluster = Cluster::connect(&g.connect()).await?;
    let (scope, snap, workloads) = load::load(&cluster, &g.namespaces(), &args.releases).await?;
    load::warn_problems(&workloads);
    let matcher = args.runtime.matcher();
    let resolved = load::resolve_runtime(
        &cluster,
        &scope,
        &workloads,
        &matcher,
        args.registry.options(false),
    )
    .await?;
    let rep = report(&workloads, &snap.pods, &matcher, &resolved);

    match output::structured(&rep, g.output)? {
        Some(s) => output::print(&s)?,
        None if rep.items.is_empty() => {
            let where_ = scope
                .namespace()
                .map(|n| format!("namespace {n:?}"))
                .unwrap_or_else(|| "any namespace".into());
            eprintln!("No Runtime containers found in {where_} (Airflow workloads are found by label tier=airflow; try -A, or --all-images).");
        }
        None => output::print(&render_table(
            &rep,
            g.output == OutputFormat::Wide,
            g.no_headers,
            output::color_enabled(),
        ))?,
    }
    if args.check {
        let bad = rep
            .items
            .iter()
            .filter(|r| r.state != Status::Pinned)
            .count();
        if bad > 0 || rep.items.is_empty() {
            eprintln!(
                "check failed: {bad} of {} Runtime containers are not pinned and running their pin",
                rep.items.len()
            );
            return Ok(EXIT_NOT_OK);
        }
    }
    Ok(0)
}
