//! The write pipeline `pin` and `unpin` share: show the plan, stop on problems, ask, check access,
//! then apply release by release (all or nothing per release, see `kube::apply::apply_release`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::args::GlobalArgs;
use crate::core::inventory::Kind;
use crate::core::inventory::Role;
use crate::core::plan::{Action, Plan, PlanRow, ReleaseSummary};
use crate::error::{Error, Result};
use crate::kube::apply::{self, ObjectEdit};
use crate::kube::client::Cluster;
use crate::output::{self, OutputFormat, Table};
use crate::registry::ImageRef;

/// How a plan table is laid out: `-o wide` carries full references, digests and sentences; the
/// default fits 160 columns for a real platform's names (the namespace only with `-A`, where it
/// stands for the release too: Astronomer names it `<platform>-<release>`; short digests; the
/// repository once, in the summary; init containers marked only in wide).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanLayout {
    pub wide: bool,
    pub all_namespaces: bool,
    pub no_headers: bool,
}

/// The layout the global flags ask for (`-o wide`, `-A`, `--no-headers`).
pub fn layout(g: &GlobalArgs) -> PlanLayout {
    PlanLayout {
        wide: g.output == OutputFormat::Wide,
        all_namespaces: g.all_namespaces,
        no_headers: g.no_headers,
    }
}

pub fn render_plan(rows: &[PlanRow], layout: PlanLayout) -> String {
    if layout.wide {
        return render_wide(rows, layout.no_headers);
    }
    let first = if layout.all_namespaces {
        "NAMESPACE"
    } else {
        "RELEASE"
    };
    let mut t = Table::new([
        first,
        "WORKLOAD",
        "CONTAINER",
        "TAG",
        "ACTION",
        "TO",
        "RUNNING",
    ]);
    for r in rows {
        let from = ImageRef::parse(&r.from).ok();
        t.push(vec![
            if layout.all_namespaces {
                r.namespace.clone()
            } else {
                r.release.clone()
            },
            r.workload.clone(),
            r.container.clone(),
            from.as_ref()
                .and_then(|i| i.tag())
                .unwrap_or("-")
                .to_string(),
            r.action.word().to_string(),
            to_cell(r.to.as_deref()),
            r.running.cell().to_string(),
        ]);
    }
    t.render(layout.no_headers)
}

fn render_wide(rows: &[PlanRow], no_headers: bool) -> String {
    let mut t = Table::new([
        "NAMESPACE",
        "RELEASE",
        "WORKLOAD",
        "CONTAINER",
        "FROM",
        "TO",
        "RUNNING",
        "ROLLS",
        "ACTION",
    ]);
    for r in rows {
        t.push(vec![
            r.namespace.clone(),
            r.release.clone(),
            r.workload.clone(),
            container_cell(r),
            r.from.clone(),
            r.to.clone().unwrap_or_else(|| "-".into()),
            r.running.cell().to_string(),
            if r.rolls { "yes" } else { "no" }.to_string(),
            r.action.to_string(),
        ]);
    }
    t.render(no_headers)
}

fn container_cell(r: &PlanRow) -> String {
    match r.role {
        Role::Init => format!("{} (init)", r.container),
        Role::Container => r.container.clone(),
    }
}

/// What a row writes, short: the digest it pins to, or the tag it restores.
fn to_cell(to: Option<&str>) -> String {
    let Some(img) = to.and_then(|t| ImageRef::parse(t).ok()) else {
        return "-".into();
    };
    match (img.digest(), img.tag()) {
        (Some(d), _) => output::short_digest(d),
        (None, Some(t)) => format!("tag {t}"),
        (None, None) => img.original().to_string(),
    }
}

/// The one-screen summary shown before the question (stderr): per release, how many objects
/// change, the repositories, which workloads roll their pods, and whether the image that runs
/// now changes.
pub fn render_summary(p: &Plan, verb: &str) -> String {
    let sums = p.summary();
    let objects: usize = sums.iter().map(|s| s.objects).sum();
    let mut out = format!(
        "Summary: {verb} {objects} object(s) in {} release(s)\n",
        sums.len()
    );
    for s in &sums {
        let repos: Vec<&str> = s.repositories.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "  {} ({}): {} object(s){}\n",
            s.release,
            s.namespace,
            s.objects,
            if repos.is_empty() {
                String::new()
            } else {
                format!(", image {}", repos.join(", "))
            }
        ));
        if !s.rolls.is_empty() {
            out.push_str(&format!("    pods roll now: {}\n", list(&s.rolls)));
        }
        if !s.next_pod.is_empty() {
            out.push_str(&format!("    next pod takes it: {}\n", list(&s.next_pod)));
        }
        out.push_str(&format!("    {}\n", running_line(s)));
    }
    let changes: usize = sums.iter().map(|s| s.image_changes.len()).sum();
    if changes > 0 {
        out.push_str(&format!(
            "The image that runs now changes in {changes} workload(s) (\"running image changes\" above).\n"
        ));
    } else {
        out.push_str("No change of the image that runs now (as far as the pods report it).\n");
    }
    out
}

fn running_line(s: &ReleaseSummary) -> String {
    match (&s.image_changes[..], &s.image_unknown[..]) {
        ([], []) => "running image: unchanged (the pods already run these builds)".into(),
        ([], unknown) => format!("running image: unknown for {}", list(unknown)),
        (changes, []) => format!("running image changes: {}", list(changes)),
        (changes, unknown) => format!(
            "running image changes: {}; unknown for {}",
            list(changes),
            list(unknown)
        ),
    }
}

/// Names for a summary line, every one of them, wrapped so that no line passes 150 columns (the
/// continuation lines are indented under the first).
fn list(items: &[String]) -> String {
    const WIDTH: usize = 150;
    const INDENT: &str = "      ";
    let mut out = String::new();
    let mut line = 0;
    for (i, item) in items.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        if i > 0 && line + sep.len() + item.len() > WIDTH - 40 {
            out.push_str(",\n");
            out.push_str(INDENT);
            line = INDENT.len();
        } else {
            out.push_str(sep);
            line += sep.len();
        }
        out.push_str(item);
        line += item.len();
    }
    out
}

/// Each refused row with its reason (stderr), after the table.
pub fn print_refused(rows: &[PlanRow]) {
    for r in rows {
        if let Action::Refused { reason } = &r.action {
            eprintln!(
                "refused: release {} {} container {}: {reason}",
                r.release, r.workload, r.container
            );
        }
    }
}

/// Prints each distinct problem once, with how many containers it affects.
pub fn print_problems(problems: &[(String, String)]) {
    let mut counted: Vec<(&(String, String), usize)> = vec![];
    for p in problems {
        match counted.iter_mut().find(|(q, _)| *q == p) {
            Some((_, n)) => *n += 1,
            None => counted.push((p, 1)),
        }
    }
    for ((rel, msg), n) in counted {
        let times = if n > 1 {
            format!(" ({n} containers)")
        } else {
            String::new()
        };
        // Problems quote images and annotations as the cluster holds them.
        eprintln!(
            "error: {}",
            output::safe(&format!("release {rel}: {msg}{times}"))
        );
    }
}

/// Test seam: `ASTRO_SHA_PAUSE_BEFORE_APPLY_MS` holds the run between plan and apply, which is
/// the window a person sitting at the confirmation prompt opens. The integration tests use it to
/// prove that a writer acting in that window is never overwritten. It only ever waits, and it
/// exists only in debug builds (what `cargo test` runs): a release build ignores the variable.
pub async fn pause_before_apply() {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("ASTRO_SHA_PAUSE_BEFORE_APPLY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        eprintln!("(pausing {ms} ms before applying, as ASTRO_SHA_PAUSE_BEFORE_APPLY_MS asks)");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// The plan table (table and wide output); JSON and YAML carry the report instead (the plan
/// rows, the summary, and what was applied).
pub fn print_plan(format: OutputFormat, layout: PlanLayout, p: &Plan) -> Result<()> {
    match format {
        OutputFormat::Json | OutputFormat::Yaml => Ok(()),
        OutputFormat::Table | OutputFormat::Wide => {
            output::print(&render_plan(&p.rows, layout))?;
            print_refused(&p.rows);
            Ok(())
        }
    }
}

/// The report of a run that applied nothing (a client dry run, nothing to change) for `-o json|yaml`.
pub fn print_unapplied(format: OutputFormat, p: &Plan) -> Result<()> {
    if let Some(s) = output::structured(
        &ApplyReport {
            plan: &p.rows,
            summary: p.summary(),
            edits: &p.edits,
            outcomes: vec![],
            error: None,
        },
        format,
    )? {
        output::print(&s)?;
    }
    Ok(())
}

#[derive(Serialize)]
struct ApplyReport<'a> {
    plan: &'a [PlanRow],
    summary: Vec<ReleaseSummary>,
    edits: &'a [ObjectEdit],
    outcomes: Vec<apply::Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Applies edits release by release; stops at the first failed release.
pub async fn apply_all(
    cluster: &Cluster,
    format: OutputFormat,
    p: &Plan,
    server_dry_run: bool,
    word: &str,
) -> Result<u8> {
    let edits = &p.edits[..];
    let cron = if edits.iter().any(|e| e.kind == Kind::CronJob) {
        cluster.cronjob_resource().await?
    } else {
        None
    };
    let mut by_release: BTreeMap<(String, String), Vec<ObjectEdit>> = BTreeMap::new();
    for e in edits {
        by_release
            .entry((e.namespace.clone(), e.release.clone()))
            .or_default()
            .push(e.clone());
    }
    let word = if server_dry_run {
        format!("{word} (server dry run)")
    } else {
        word.to_string()
    };
    let mut outcomes = vec![];
    let mut failure = None;
    if !server_dry_run {
        apply::watch_interrupts();
    }
    for ((ns, rel), list) in &by_release {
        if apply::interrupted() {
            failure = Some(Error::new(format!(
                "interrupted: release {rel} in namespace {ns} and those after it were not touched; the releases before it are complete"
            ))
            .hint("run the command again to finish"));
            break;
        }
        let (o, err) =
            apply::apply_release(cluster, list, server_dry_run, cron.as_ref(), &word).await;
        outcomes.extend(o.clone());
        if let Some((obj, e, after)) = err {
            let mut t = Table::new(["NAMESPACE", "OBJECT", "RESULT"]);
            for x in &o {
                t.push(vec![
                    x.namespace.clone(),
                    x.object.clone(),
                    output::safe(&x.result).into_owned(),
                ]);
            }
            eprint!("{}", t.render(false));
            let msg = format!("release {rel} in namespace {ns}: {obj} {e}; {after}; later releases were not touched");
            failure = Some(match e {
                apply::ApplyError::Changed(_) => Error::new(msg).hint("someone changed the workload while the plan was shown; review with `kubectl astro-sha show` and run again"),
                apply::ApplyError::Gone => Error::new(msg).hint("the object was deleted during the run; run again to plan against the current state"),
                apply::ApplyError::Interrupted => Error::new(msg).hint("nothing of this release is left half-written; run the command again to finish"),
                apply::ApplyError::Api(inner) => Error::new(msg).hint(inner.hint.unwrap_or_else(|| "see the error above".into())),
            });
            break;
        }
        eprintln!("release {rel} ({ns}): {} object(s) {word}", list.len());
    }
    if let Some(s) = output::structured(
        &ApplyReport {
            plan: &p.rows,
            summary: p.summary(),
            edits,
            outcomes,
            error: failure.as_ref().map(|f| f.message.clone()),
        },
        format,
    )? {
        output::print(&s)?;
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::edit::ImageEdit;
    use crate::core::plan::RunningChange;

    const D: &str = "sha256:f22c9812115cbed16dd6ea74c11f7759823a597dcc1c72ffbcbf2c28af8abfbb";

    /// A plan for release `nebular-star-4821` (issue 14's names) over `kinds`.
    fn plan(kinds: &[(Kind, &str)]) -> Plan {
        let (ns, rel) = ("astronomer-nebular-star-4821", "nebular-star-4821");
        let from = "quay.io/astronomer/astro-runtime:12.4.0".to_string();
        let to = format!("{from}@{D}");
        let mut p = Plan::default();
        for (kind, component) in kinds {
            let name = format!("{rel}-{component}");
            p.rows.push(PlanRow {
                namespace: ns.into(),
                release: rel.into(),
                workload: format!("{}/{name}", kind.lower()),
                container: "wait-for-airflow-migrations".into(),
                role: Role::Init,
                from: from.clone(),
                to: Some(to.clone()),
                action: Action::Pin,
                running: RunningChange::Changes,
                rolls: matches!(kind, Kind::Deployment | Kind::StatefulSet),
            });
            p.edits.push(ObjectEdit {
                kind: *kind,
                namespace: ns.into(),
                name,
                release: rel.into(),
                images: vec![ImageEdit {
                    container: "wait-for-airflow-migrations".into(),
                    role: Role::Init,
                    index: 0,
                    from: from.clone(),
                    to: to.clone(),
                }],
                template: None,
                annotation: (None, None),
                had_annotations: false,
            });
        }
        p
    }

    #[test]
    fn default_plan_rows_fit_160_columns_with_real_names_and_wide_has_everything() {
        let p = plan(&[(Kind::Deployment, "scheduler")]);
        for all_namespaces in [false, true] {
            let layout = PlanLayout {
                wide: false,
                all_namespaces,
                no_headers: false,
            };
            let t = render_plan(&p.rows, layout);
            assert!(t.lines().all(|l| l.len() <= 160), "{t}");
            assert!(t.contains("sha256:f22c9812115c   changes"), "{t}");
            assert!(!t.contains(D), "{t}");
            assert_eq!(t.contains("astronomer-nebular-star-4821"), all_namespaces);
        }
        let wide = render_plan(
            &p.rows,
            PlanLayout {
                wide: true,
                all_namespaces: false,
                no_headers: true,
            },
        );
        assert!(wide.contains(&format!("@{D}")), "{wide}");
        assert!(
            wide.contains("wait-for-airflow-migrations (init)"),
            "{wide}"
        );
    }

    #[test]
    fn the_summary_names_every_rolling_workload_in_lines_of_at_most_150_columns() {
        let components = [
            "scheduler",
            "webserver",
            "triggerer",
            "api-server",
            "dag-processor",
            "worker",
        ];
        let mut kinds: Vec<(Kind, &str)> =
            components.iter().map(|c| (Kind::Deployment, *c)).collect();
        kinds.push((Kind::ConfigMap, "config"));
        let s = render_summary(&plan(&kinds), "pin");
        assert!(s.lines().all(|l| l.len() <= 150), "{s}");
        for c in components {
            assert!(
                s.contains(&format!("deployment/nebular-star-4821-{c}")),
                "{s}"
            );
        }
        assert!(
            s.starts_with("Summary: pin 7 object(s) in 1 release(s)\n"),
            "{s}"
        );
        assert!(
            s.contains("image quay.io/astronomer/astro-runtime\n"),
            "{s}"
        );
        assert!(
            s.contains("next pod takes it: configmap/nebular-star-4821-config"),
            "{s}"
        );
        assert!(
            s.contains("The image that runs now changes in 7 workload(s)"),
            "{s}"
        );
    }
}
