//! `kubectl astro-sha show`: for every Runtime container, the tag, the pinned digest, what the tag
//! points to now, and what the pods actually run.
//!
//! The rows are computed by the pure `core::show_report::report_with_catalog` (workloads + pods + resolutions in,
//! rows out); `run()` does the listing and the registry calls through `operations::load`.

use clap::Args;

use crate::args::{
    ContextsArgs, GlobalArgs, OutputFormat, PlatformArgs, RegistryArgs, RuntimeArgs,
};
use crate::commands::operations::{load, releases};
use crate::core::inventory::{Role, Running};
use crate::core::natural_cmp;
pub(crate) use crate::core::show_report::{report_with_catalog, Report, Verdict};
pub(crate) use crate::core::state::{Row, Status};
use crate::error::ExitStatus;
use crate::error::Result;
use crate::kube::client::{Cluster, Scope};
use crate::output::{self, Table};
use crate::registry::Resolver;

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  kubectl astro-sha show -A\n  kubectl astro-sha show quasaric-sun-1234 -o wide\n  kubectl astro-sha show -A --check && echo all pinned\n\n  # Every prod context, one table\n  kubectl astro-sha show -A --contexts 'prod-*'\n\nAcross contexts (--contexts, --all-contexts) the exit code is the worst of every context's: 2 when one could not be reached, authenticated or read, else 1 with --check when one is not all pinned and running its pins, or without --check when a tag could not be looked up in one, else 0."
)]
pub(crate) struct ShowArgs {
    /// Release names of Airflow Deployments (default: all in scope; searched in every namespace when -n is not given)
    pub(crate) releases: Vec<String>,
    /// Exit 0 only if every Runtime container is known to be pinned and running its pin; 1 otherwise (unknown is not a pass); 2 on error
    #[arg(long)]
    pub(crate) check: bool,
    #[command(flatten)]
    pub(crate) runtime: RuntimeArgs,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    // Where Houston runs: its releases ConfigMap gives tagless repository@sha256 containers their
    // Runtime version.
    #[command(flatten)]
    pub(crate) platform: PlatformArgs,
    #[command(flatten)]
    pub(crate) contexts: ContextsArgs,
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
/// pinned digest whole and marks init containers. On a narrow terminal no name, tag or state is
/// ever shortened: digests take their short form and detail columns are left out first.
pub(crate) fn render_table(
    rep: &Report,
    wide: bool,
    all_namespaces: bool,
    no_headers: bool,
    color: bool,
) -> String {
    table(rep, wide, all_namespaces, color).render(no_headers)
}

/// The rows of [`render_table`], not yet rendered (a run across contexts puts CONTEXT in front).
pub(crate) fn table(rep: &Report, wide: bool, all_namespaces: bool, color: bool) -> Table {
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
    // Names are never cut (a user copies them); a narrow terminal shortens the full digests of
    // `-o wide`, then leaves out the registry source, the wide digests and the pinned digest.
    let mut t = Table::new(headers)
        .shorten_digests(&["SPEC DIGEST", "REGISTRY DIGEST", "RUNNING DIGEST"])
        .drop_first(&[
            "REGISTRY SOURCE",
            "REGISTRY DIGEST",
            "RUNNING DIGEST",
            "SPEC DIGEST",
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
            r.version_cell().unwrap_or_else(|| "-".into()),
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
    t
}

/// Stale `original-images` records (the platform upgraded the container since the pin), on
/// stderr after the table: unpin refuses them, pin replaces them.
fn warn_stale_records(rep: &Report) {
    let stale: Vec<&Row> = rep.items.iter().filter(|r| r.stale_record()).collect();
    if stale.is_empty() {
        return;
    }
    eprintln!(
        "warning: {} a stale original-images record: {} no longer what the pin wrote (the platform upgraded {} since, or someone changed {}):",
        output::count(stale.len(), "container carries", "containers carry"),
        output::plural(stale.len(), "its image is", "their images are"),
        output::plural(stale.len(), "it", "them"),
        output::plural(stale.len(), "it", "them"),
    );
    for r in &stale {
        eprintln!(
            "  {}/{} {} container {}",
            r.namespace, r.release, r.workload, r.container
        );
    }
    eprintln!("  hint: `kubectl astro-sha pin RELEASE` replaces them (the original becomes the image there now); `unpin` refuses them (--force would restore the older recorded image)");
}

/// After the table (stderr): records Houston's own `repository@sha256:…` rendering superseded
/// (nothing to do), and tagless builds the releases catalog lists for another version or not at
/// all (with the fix).
fn note_houston_digests(rep: &Report) {
    let superseded = rep.items.iter().filter(|r| r.superseded_record()).count();
    if superseded > 0 {
        eprintln!(
            "note: {} an original-images record superseded by Houston: it renders the build the pin wrote as repository@sha256 now; nothing to do (unpin leaves {})",
            output::count(superseded, "container carries", "containers carry"),
            output::plural(superseded, "it", "them"),
        );
    }
    let mut fix = false;
    for r in &rep.items {
        let what = match &r.state {
            Status::UnlistedBuild => {
                "a build the releases catalog lists for no Runtime version".to_string()
            }
            Status::OtherVersion(from) => format!(
                "the releases catalog lists this build for {}, but it was pinned from {from}",
                r.version.as_deref().unwrap_or("another version")
            ),
            _ => continue,
        };
        fix = true;
        eprintln!(
            "warning: {}",
            output::safe(&format!(
                "{}/{} {} container {}: {what}",
                r.namespace, r.release, r.workload, r.container
            ))
        );
    }
    if fix {
        eprintln!("  hint: re-import the catalog (kubectl astro-sha import) if it predates the build, or update the Deployment in Houston so it renders the catalog's build; `kubectl astro-sha status` says whether Houston reads the latest catalog");
    }
}

pub(crate) async fn run(g: &GlobalArgs, args: &ShowArgs) -> Result<ExitStatus> {
    if let Some(contexts) = args.contexts.selected(g)? {
        return across::run(g, args, &contexts).await;
    }
    let cluster = Cluster::connect(&g.connect()).await?;
    let resolver = args.registry.resolver(false)?;
    let (scope, rep) = gather(&cluster, g, args, &resolver).await?;

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
    note_houston_digests(&rep);
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
fn exit_code(rep: &Report, check: bool, where_: &str) -> ExitStatus {
    if check {
        let v = Verdict::of(&rep.items);
        if v.passed() {
            return ExitStatus::Success;
        }
        if v.containers == 0 {
            eprintln!(
                "check failed: no Runtime containers in {where_}, so none is known to be pinned"
            );
            eprintln!("  hint: check -n/-A and the release names; `kubectl astro-sha show -A` lists every release");
            return ExitStatus::NotOk;
        }
        eprintln!("{}", output::safe(&check_failed(&v)));
        return ExitStatus::NotOk;
    }
    let unresolved = rep.unresolved();
    if unresolved > 0 {
        eprintln!("{}", unresolved_line(unresolved, rep.items.len()));
        return ExitStatus::NotOk;
    }
    ExitStatus::Success
}

/// Why `--check` failed, each count with the words it takes.
fn check_failed(v: &Verdict) -> String {
    let unknown = || {
        format!(
            "no pod reports what they run (scaled to zero, or not started): {}",
            v.unknown_workloads.join(", ")
        )
    };
    let not_pinned = |f| {
        output::plural(
            f,
            "is not pinned and running its pin",
            "are not pinned and running their pin",
        )
    };
    let line = match (v.failed, v.unknown) {
        (f, 0) => format!(
            "check failed: {f} of {} Runtime containers {}",
            v.containers,
            not_pinned(f)
        ),
        (0, u) => format!(
            "check failed: {u} of {} Runtime containers {}, but whether {} pin is unknown: {}",
            v.containers,
            output::plural(u, "is pinned", "are pinned"),
            output::plural(u, "it runs its", "they run their"),
            unknown()
        ),
        (f, u) => format!(
            "check failed: {f} of {} Runtime containers {}, and for {u} more it is unknown: {}",
            v.containers,
            not_pinned(f),
            unknown()
        ),
    };
    line
}

/// Why the exit code is 1 without `--check`: tags that could not be looked up.
fn unresolved_line(unresolved: usize, containers: usize) -> String {
    unresolved_line_in(unresolved, containers, "")
}

/// [`unresolved_line`], saying where (`" in contexts a, b"`) before the exit code.
fn unresolved_line_in(unresolved: usize, containers: usize, where_: &str) -> String {
    format!(
        "{unresolved} of {containers} Runtime containers{where_} {} (exit 1; the warnings above say why)",
        output::plural(
            unresolved,
            "is unresolved: its tag could not be looked up",
            "are unresolved: their tag could not be looked up"
        ),
    )
}

/// One context's rows: list the Airflow workloads in scope, model them, resolve their Runtime
/// tags with `resolver` (one per run, shared by every context of a run across contexts).
async fn gather(
    cluster: &Cluster,
    g: &GlobalArgs,
    args: &ShowArgs,
    resolver: &Resolver,
) -> Result<(Scope, Report)> {
    let (scope, snap, workloads) =
        load::list_workloads(cluster, &g.namespaces(), &args.releases).await?;
    load::warn_problems(&workloads);
    let matcher = args.runtime.matcher();
    let resolved =
        load::resolve_runtime_with(cluster, &scope, &workloads, &matcher, resolver).await;
    // Where Houston runs, its releases ConfigMap gives tagless repository@sha256 containers their
    // Runtime version (read only when such a container is in scope).
    let catalog = releases::read_index(
        cluster,
        args.platform.platform_namespace.as_deref(),
        releases::tagless_digests(&workloads, &matcher),
    )
    .await;
    let mut rep = report_with_catalog(
        &workloads,
        &snap.pods,
        &matcher,
        &resolved,
        catalog.as_ref(),
    );
    // Releases as people count (fleet-2 before fleet-10); a release's own rows keep their order.
    rep.items.sort_by(|a, b| {
        natural_cmp(&a.namespace, &b.namespace).then_with(|| natural_cmp(&a.release, &b.release))
    });
    Ok((scope, rep))
}

/// `show --contexts LIST` / `--all-contexts`: one row per context (its state, or why it could
/// not be read), then every context's containers in one table led by CONTEXT.
mod across {
    use serde::Serialize;

    use super::{
        gather, note_houston_digests, report_outcome, table, warn_stale_records, Report, Row,
        ShowArgs,
    };
    use crate::args::{GlobalArgs, OutputFormat};
    use crate::commands::operations::contexts::{self, Failure, PerContext};
    use crate::core::contexts::{exit_code, Outcome};
    use crate::error::{ExitStatus, Result};
    use crate::output::{self, Table};

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ContextRow {
        context: String,
        state: Outcome,
        /// Why the context could not be read (`state` unreachable, forbidden, ...).
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<Failure>,
        containers: Option<usize>,
        pinned: Option<usize>,
    }

    #[derive(Serialize)]
    struct Item<'a> {
        context: &'a str,
        #[serde(flatten)]
        row: &'a Row,
    }

    #[derive(Serialize)]
    struct Across<'a> {
        contexts: Vec<ContextRow>,
        items: Vec<Item<'a>>,
    }

    pub(super) async fn run(
        g: &GlobalArgs,
        args: &ShowArgs,
        names: &[String],
    ) -> Result<ExitStatus> {
        let resolver = args.registry.resolver(false)?;
        let results = contexts::each(&g.connect(), names, |cluster| {
            let resolver = &resolver;
            async move { gather(&cluster, g, args, resolver).await.map(|(_, r)| r) }
        })
        .await;
        let rows: Vec<ContextRow> = results.iter().map(context_row).collect();
        let items: Vec<Item> = results
            .iter()
            .filter_map(|p| p.result.as_ref().ok().map(|r| (p.context.as_str(), r)))
            .flat_map(|(context, r)| r.items.iter().map(move |row| Item { context, row }))
            .collect();
        let mut code = exit_code(
            &rows.iter().map(|r| r.state).collect::<Vec<_>>(),
            args.check,
        );
        // Without --check, a tag that could not be looked up makes the answer incomplete: 1, as
        // show on one context (and resolve) exits.
        let unresolved = unresolved_per_context(&results);
        if !args.check && !unresolved.is_empty() {
            code = code.max(ExitStatus::NotOk);
        }
        let out = Across {
            contexts: rows,
            items,
        };
        match output::structured(&out, g.output)? {
            Some(s) => output::print(&s)?,
            None => output::print(&render(g, &results, &out))?,
        }
        for p in &results {
            if let Ok(r) = &p.result {
                warn_stale_records(r);
                note_houston_digests(r);
            }
        }
        if !args.check && !unresolved.is_empty() {
            let (n, total) = unresolved
                .iter()
                .fold((0, 0), |(n, t), u| (n + u.1, t + u.2));
            let names: Vec<&str> = unresolved.iter().map(|u| u.0).collect();
            let where_ = format!(
                " in {} {}",
                output::plural(names.len(), "context", "contexts"),
                names.join(", ")
            );
            eprintln!("{}", super::unresolved_line_in(n, total, &where_));
        } else if code == ExitStatus::NotOk {
            let bad: Vec<&str> = out
                .contexts
                .iter()
                .filter(|r| r.state != Outcome::Ok)
                .map(|r| r.context.as_str())
                .collect();
            eprintln!(
                "check failed: {} of {} contexts {}: {}",
                bad.len(),
                out.contexts.len(),
                output::plural(
                    bad.len(),
                    "is not all pinned and running its pins",
                    "are not all pinned and running their pins"
                ),
                bad.join(", ")
            );
        }
        Ok(code)
    }

    /// Each context whose report has containers whose tag could not be looked up: its name,
    /// how many, and its Runtime containers.
    fn unresolved_per_context(results: &[PerContext<Report>]) -> Vec<(&str, usize, usize)> {
        results
            .iter()
            .filter_map(|p| {
                let r = p.result.as_ref().ok()?;
                let n = r.unresolved();
                (n > 0).then_some((p.context.as_str(), n, r.items.len()))
            })
            .collect()
    }

    fn context_row(p: &PerContext<Report>) -> ContextRow {
        match &p.result {
            Ok(r) => ContextRow {
                context: p.context.clone(),
                state: report_outcome(r),
                error: None,
                containers: Some(r.items.len()),
                pinned: Some(
                    r.items
                        .iter()
                        .filter(|i| i.state == super::Status::Pinned)
                        .count(),
                ),
            },
            Err(e) => {
                let (state, failure) = Failure::of(e);
                ContextRow {
                    context: p.context.clone(),
                    state,
                    error: Some(failure),
                    containers: None,
                    pinned: None,
                }
            }
        }
    }

    fn render(g: &GlobalArgs, results: &[PerContext<Report>], out: &Across) -> String {
        let mut t = Table::new(["CONTEXT", "CONTAINERS", "PINNED", "STATE", "REASON"])
            .cut_middle(&["REASON"]);
        let count = |n: Option<usize>| n.map_or("-".to_string(), |n| n.to_string());
        for r in &out.contexts {
            let reason = match (&r.error, r.containers, r.pinned) {
                (Some(f), _, _) => f.message.clone(),
                (None, Some(0), _) => "no Runtime containers in scope".to_string(),
                (None, Some(n), Some(p)) if p < n => format!("{} not pinned", n - p),
                _ => String::new(),
            };
            t.push(vec![
                r.context.clone(),
                count(r.containers),
                count(r.pinned),
                r.state.label().to_string(),
                reason,
            ]);
        }
        let mut s = t.render(g.no_headers);
        let mut all = Report {
            items: vec![],
            summary: Default::default(),
        };
        let mut cells = vec![];
        for p in results {
            if let Ok(r) = &p.result {
                all.items.extend(r.items.iter().cloned());
                cells.extend(r.items.iter().map(|_| p.context.clone()));
            }
        }
        if !all.items.is_empty() {
            s.push('\n');
            let color = output::color_enabled();
            let t = table(
                &all,
                g.output == OutputFormat::Wide,
                g.all_namespaces,
                color,
            );
            s.push_str(&t.prepend_column("CONTEXT", cells).render(g.no_headers));
        }
        s
    }
}

/// A context's state from its rows: in order when every Runtime container is pinned and runs
/// its pin (and there is one), as `--check` decides for one context.
fn report_outcome(rep: &Report) -> crate::core::contexts::Outcome {
    use crate::core::contexts::Outcome;
    // The single-context `--check`'s verdict: unknown is not a pass, and no container is none.
    if !Verdict::of(&rep.items).passed() {
        Outcome::NotInOrder
    } else {
        Outcome::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 23: counts take the words their number takes ("1 of 3 ... is", not "are").
    #[test]
    fn check_messages_agree_with_their_counts() {
        let v = |failed, unknown| Verdict {
            containers: 3,
            failed,
            unknown,
            unknown_workloads: vec!["ns/deployment/a".into()],
        };
        assert_eq!(
            check_failed(&v(1, 0)),
            "check failed: 1 of 3 Runtime containers is not pinned and running its pin"
        );
        assert_eq!(
            check_failed(&v(2, 0)),
            "check failed: 2 of 3 Runtime containers are not pinned and running their pin"
        );
        assert!(
            check_failed(&v(0, 1)).starts_with(
                "check failed: 1 of 3 Runtime containers is pinned, but whether it runs its pin is unknown: "
            ),
            "{}",
            check_failed(&v(0, 1))
        );
        assert!(check_failed(&v(1, 2)).starts_with(
            "check failed: 1 of 3 Runtime containers is not pinned and running its pin, and for 2 more it is unknown: "
        ));
        assert_eq!(
            unresolved_line(1, 3),
            "1 of 3 Runtime containers is unresolved: its tag could not be looked up (exit 1; the warnings above say why)"
        );
        assert!(unresolved_line(2, 3)
            .starts_with("2 of 3 Runtime containers are unresolved: their tag"));
    }
}
