//! `kubectl astro-sha show`: for every Runtime container, the tag, the pinned digest, what the tag
//! points to now, and what the pods actually run.
//!
//! The rows are computed by the pure `core::state::report` (workloads + pods + resolutions in,
//! rows out); `run()` does the listing and the registry calls through `operations::load`.

use clap::Args;

use crate::args::{GlobalArgs, OutputFormat, RegistryArgs, RuntimeArgs};
use crate::commands::operations::load;
use crate::core::inventory::{Role, Running};
use crate::core::natural_cmp;
pub use crate::core::state::{report, Report, Row, StateKey, Status, Verdict};
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
    /// Exit 0 only if every Runtime container is known to be pinned and running its pin; 1 otherwise (unknown is not a pass); 2 on error
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

/// The table: short by default (kubectl's habit), everything in `-o wide`.
///
/// Default columns fit 160 terminal columns for a real platform's names (issue 14: namespace
/// `astronomer-nebular-star-4821`, `deployment/nebular-star-4821-dag-processor`,
/// `wait-for-airflow-migrations`): the workload and container, the tag, the pinned digest
/// (short) and the state, which already says how the tag and the pods compare to the pin.
/// NAMESPACE only with -A, as kubectl. `-o wide` appends the release, the full registry and
/// running digests, the image reference and the registry it was resolved from, prints the
/// pinned digest whole and marks init containers. On a narrow terminal, digests, tags and
/// states are never shortened.
pub fn render_table(
    rep: &Report,
    wide: bool,
    all_namespaces: bool,
    no_headers: bool,
    color: bool,
) -> String {
    let mut headers = vec![
        "NAMESPACE",
        "WORKLOAD",
        "CONTAINER",
        "TAG",
        "SPEC DIGEST",
        "STATUS",
    ];
    if !all_namespaces {
        headers.remove(0);
    }
    if wide {
        headers.extend([
            "RELEASE",
            "REGISTRY DIGEST",
            "RUNNING DIGEST",
            "IMAGE",
            "REGISTRY SOURCE",
        ]);
    }
    let mut t = Table::new(headers).keep_whole(&[
        "TAG",
        "SPEC DIGEST",
        "STATUS",
        "REGISTRY DIGEST",
        "RUNNING DIGEST",
    ]);
    let d = |o: &Option<String>| match o {
        Some(x) if wide => x.clone(),
        Some(x) => output::short_digest(x),
        None => "-".into(),
    };
    for r in &rep.items {
        let container = match r.role {
            Role::Init if wide => format!("{} (init)", r.container),
            _ => r.container.clone(),
        };
        let mut row = vec![];
        if all_namespaces {
            row.push(r.namespace.clone());
        }
        row.extend([
            r.workload.clone(),
            container,
            r.tag.clone().unwrap_or_else(|| "-".into()),
            d(&r.spec_digest),
            output::paint_state(&r.status, r.state.kind(), color),
        ]);
        if wide {
            row.extend([
                r.release.clone(),
                d(&r.registry_digest),
                running_cell(&r.running, wide),
                r.image.clone(),
                r.registry_source.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        t.push(row);
    }
    t.render(no_headers)
}

/// Stale `original-images` records (the platform upgraded the container since the pin), on
/// stderr after the table: unpin refuses them, pin replaces them.
fn warn_stale_records(rep: &Report) {
    let stale: Vec<&Row> = rep.items.iter().filter(|r| r.stale_record()).collect();
    if stale.is_empty() {
        return;
    }
    eprintln!(
        "warning: {} container(s) carry a stale original-images record: their image is no longer what the pin wrote (the platform upgraded them since, or someone changed them):",
        stale.len()
    );
    for r in &stale {
        eprintln!(
            "  {}/{} {} container {}",
            r.namespace, r.release, r.workload, r.container
        );
    }
    eprintln!("  hint: `kubectl astro-sha pin RELEASE` replaces them (the original becomes the image there now); `unpin` refuses them (--force would restore the older recorded image)");
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
    let mut rep = report(&workloads, &snap.pods, &matcher, &resolved);
    // Releases as people count (fleet-2 before fleet-10); a release's own rows keep their order.
    rep.items.sort_by(|a, b| {
        natural_cmp(&a.namespace, &b.namespace).then_with(|| natural_cmp(&a.release, &b.release))
    });

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
            g.all_namespaces,
            g.no_headers,
            output::color_enabled(),
        ))?,
    }
    warn_stale_records(&rep);
    let where_ = scope
        .namespace()
        .map(|n| format!("namespace {n:?}"))
        .unwrap_or_else(|| "any namespace".into());
    Ok(exit_code(&rep, args.check, &where_))
}

/// The exit code, and on stderr why it is not 0. With `--check`: 0 only when every Runtime
/// container is known to be pinned and running its pin (`Verdict`: unknown is not a pass, and no
/// container at all is not one either). Without: 1 when a tag could not be looked up, since the
/// table's answer is then incomplete (as `resolve`); 0 otherwise, whatever the states.
fn exit_code(rep: &Report, check: bool, where_: &str) -> u8 {
    if check {
        let v = Verdict::of(&rep.items);
        if v.passed() {
            return 0;
        }
        if v.containers == 0 {
            eprintln!(
                "check failed: no Runtime containers in {where_}, so none is known to be pinned"
            );
            eprintln!("  hint: check -n/-A and the release names; `kubectl astro-sha show -A` lists every release");
            return EXIT_NOT_OK;
        }
        let unknown = || {
            format!(
                "no pod reports what they run (scaled to zero, or not started): {}",
                v.unknown_workloads.join(", ")
            )
        };
        let line = match (v.failed, v.unknown) {
            (f, 0) => format!(
                "check failed: {f} of {} Runtime containers are not pinned and running their pin",
                v.containers
            ),
            (0, u) => format!(
                "check failed: {u} of {} Runtime containers are pinned, but whether they run their pin is unknown: {}",
                v.containers,
                unknown()
            ),
            (f, u) => format!(
                "check failed: {f} of {} Runtime containers are not pinned and running their pin, and for {u} more it is unknown: {}",
                v.containers,
                unknown()
            ),
        };
        eprintln!("{}", output::safe(&line));
        return EXIT_NOT_OK;
    }
    let unresolved = rep
        .items
        .iter()
        .filter(|r| r.state.kind() == StateKey::Unresolved)
        .count();
    if unresolved > 0 {
        eprintln!(
            "{unresolved} of {} Runtime containers are unresolved: their tag could not be looked up (exit 1; the warnings above say why)",
            rep.items.len()
        );
        return EXIT_NOT_OK;
    }
    0
}
