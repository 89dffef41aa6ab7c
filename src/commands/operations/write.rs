//! The write pipeline `pin` and `unpin` share: show the plan, stop on problems, ask, check access,
//! then apply the releases, several at a time (all or nothing per release, see
//! `kube::apply::apply_release`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::args::GlobalArgs;
use crate::core::catalog_index::VersionSource;
use crate::core::inventory::Kind;
use crate::core::inventory::Role;
use crate::core::plan::{
    compact_summary, Action, Plan, PlanRow, Problem, ReleaseSummary, RunningChange, SummaryTotals,
};
use crate::error::ExitStatus;
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
pub(crate) struct PlanLayout {
    pub(crate) wide: bool,
    pub(crate) all_namespaces: bool,
    pub(crate) no_headers: bool,
}

/// The layout the global flags ask for (`-o wide`, `-A`, `--no-headers`).
pub(crate) fn layout(g: &GlobalArgs) -> PlanLayout {
    PlanLayout {
        wide: g.output == OutputFormat::Wide,
        all_namespaces: g.all_namespaces,
        no_headers: g.no_headers,
    }
}

pub(crate) fn render_plan(rows: &[PlanRow], layout: PlanLayout) -> String {
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
    ])
    .drop_first(&["TO"]);
    for r in rows {
        t.push(vec![
            if layout.all_namespaces {
                r.namespace.clone()
            } else {
                r.release.clone()
            },
            r.workload.clone(),
            r.container.clone(),
            version_cell(r),
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
    ])
    .drop_first(&["ROLLS"])
    .cut_middle(&["ACTION"]);
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

/// The TAG cell: the tag, or `12.4.0 (catalog)` for a tagless digest the releases catalog lists.
fn version_cell(r: &PlanRow) -> String {
    match (&r.version, r.version_source) {
        (Some(v), Some(VersionSource::Catalog)) => format!("{v} (catalog)"),
        (Some(v), _) => v.clone(),
        (None, _) => "-".into(),
    }
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

/// The one-screen summary shown before the question (stderr). Up to ten releases
/// ([`crate::core::plan::SUMMARY_RELEASES_LISTED`]), or with `-o wide`: per release, how many
/// objects change, the repositories, which workloads roll their pods, and whether the image that
/// runs now changes. Past it: totals and the releases that need attention, at most
/// [`ATTENTION_LISTED`] of them, one line each (see [`render_compact`]).
pub(crate) fn render_summary(p: &Plan, verb: &str, wide: bool) -> String {
    let sums = p.summary();
    let objects: usize = sums.iter().map(|s| s.objects).sum();
    let mut out = format!(
        "Summary: {verb} {objects} object(s) in {} release(s)\n",
        sums.len()
    );
    if compact_summary(sums.len(), wide) {
        out.insert_str(out.len() - 1, "; -o wide describes each release");
        out.push_str(&render_compact(p, &sums));
        return out;
    }
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
        out.push_str(&no_change_line(p, &sums));
    }
    out
}

/// Releases that need attention named one by one in the compact summary; the rest are counted.
pub(crate) const ATTENTION_LISTED: usize = 10;
/// Summary lines are cut to this many columns.
const SUMMARY_WIDTH: usize = 150;

/// The compact summary's body: at most 6 + [`ATTENTION_LISTED`] lines (7 + with the heading),
/// whatever the fleet's size.
fn render_compact(p: &Plan, sums: &[ReleaseSummary]) -> String {
    let t = SummaryTotals::of(sums);
    let repos: Vec<String> = t
        .repositories
        .iter()
        .map(|(r, n)| format!("{r} ({n} release(s))"))
        .collect();
    let mut out = String::new();
    if !repos.is_empty() {
        out.push_str(&format!("  image {}\n", first_of(&repos, 3)));
    }
    out.push_str(&format!(
        "  pods roll now: {} workload(s); next pod takes it: {} object(s)\n",
        t.rolls, t.next_pod
    ));
    if t.image_unknown > 0 {
        out.push_str(&format!(
            "  running image: unknown for {} workload(s) (no pod says what runs)\n",
            t.image_unknown
        ));
    }
    if !t.attention.is_empty() {
        out.push_str(&format!(
            "Needs attention, the image that runs now changes in {} release(s):\n",
            t.attention.len()
        ));
        for s in t.attention.iter().take(ATTENTION_LISTED).map(|&i| &sums[i]) {
            let head = format!("  {} ({}): ", s.release, s.namespace);
            let room = SUMMARY_WIDTH.saturating_sub(head.len()).max(40);
            out.push_str(&format!("{head}{}\n", fit(&s.image_changes, room)));
        }
        if t.attention.len() > ATTENTION_LISTED {
            out.push_str(&format!(
                "  and {} more release(s)\n",
                t.attention.len() - ATTENTION_LISTED
            ));
        }
    }
    if t.image_changes > 0 {
        out.push_str(&format!(
            "The image that runs now changes in {} workload(s).\n",
            t.image_changes
        ));
    } else {
        out.push_str(&no_change_line(p, sums));
    }
    out
}

/// The first `n` items and how many more.
fn first_of(items: &[String], n: usize) -> String {
    let mut s = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        s.push_str(&format!(" and {} more", items.len() - n));
    }
    s
}

/// As many items as fit in `width` columns, then how many more.
fn fit(items: &[String], width: usize) -> String {
    let mut s = String::new();
    for (i, item) in items.iter().enumerate() {
        let rest = items.len() - i;
        let more = format!(" and {rest} more");
        let sep = if i == 0 { "" } else { ", " };
        let need = s.len() + sep.len() + item.len() + if rest > 1 { more.len() } else { 0 };
        if i > 0 && need > width {
            s.push_str(&more);
            return s;
        }
        s.push_str(sep);
        s.push_str(item);
    }
    s
}

/// The last line when no pin changes a reported image: "no change" only as far as pods report
/// it; when none does, the answer is unknown, and says so.
fn no_change_line(p: &Plan, sums: &[ReleaseSummary]) -> String {
    let unknown: usize = sums.iter().map(|s| s.image_unknown.len()).sum();
    let same = p
        .rows
        .iter()
        .any(|r| r.action.changes_image() && r.running == RunningChange::Same);
    match (unknown, same) {
        (0, _) => "No change of the image that runs now (the pods already run these builds).\n".into(),
        (_, false) => "Whether the image that runs now changes is unknown: no pod reports what it runs (\"running image: unknown\" above).\n".into(),
        (n, true) => format!(
            "No change of the image that runs now where the pods report it; unknown for {n} workload(s).\n"
        ),
    }
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

/// Each refused row with its reason (stderr), after the table; the first `limit` of them and
/// how many more, when a limit is given.
pub(crate) fn print_refused(rows: &[PlanRow], limit: Option<usize>) {
    let refused: Vec<(&PlanRow, &String)> = rows
        .iter()
        .filter_map(|r| match &r.action {
            Action::Refused { reason } => Some((r, reason)),
            _ => None,
        })
        .collect();
    let shown = limit.unwrap_or(refused.len());
    for (r, reason) in refused.iter().take(shown) {
        eprintln!(
            "refused: release {} {} container {}: {reason}",
            r.release, r.workload, r.container
        );
    }
    if refused.len() > shown {
        eprintln!(
            "refused: {} more container(s); -o wide gives each with its reason",
            refused.len() - shown
        );
    }
}

/// Prints each distinct problem once, with how many containers it affects.
pub(crate) fn print_problems(problems: &[Problem]) {
    let mut counted: Vec<(&Problem, usize)> = vec![];
    for p in problems {
        match counted.iter_mut().find(|(q, _)| *q == p) {
            Some((_, n)) => *n += 1,
            None => counted.push((p, 1)),
        }
    }
    for (p, n) in counted {
        let times = if n > 1 {
            format!(" ({n} containers)")
        } else {
            String::new()
        };
        // Problems quote images and annotations as the cluster holds them.
        eprintln!(
            "error: {}",
            output::safe(&format!("release {}: {}{times}", p.release, p.message))
        );
    }
}

/// Test seam: `ASTRO_SHA_PAUSE_BEFORE_APPLY_MS` holds the run between plan and apply, which is
/// the window a person sitting at the confirmation prompt opens. The integration tests use it to
/// prove that a writer acting in that window is never overwritten. It only ever waits, and it
/// exists only in debug builds (what `cargo test` runs): a release build ignores the variable.
pub(crate) async fn pause_before_apply() {
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
pub(crate) fn print_plan(format: OutputFormat, layout: PlanLayout, p: &Plan) -> Result<()> {
    match format {
        OutputFormat::Json | OutputFormat::Yaml => Ok(()),
        // No row, no table: a header over nothing reads as output (the "Nothing to ..." line on
        // stderr says why), as kubectl prints no header when it finds nothing.
        OutputFormat::Table | OutputFormat::Wide if p.rows.is_empty() => Ok(()),
        // At fleet size a row per container runs past a screen: a line says what the plan
        // holds and where to see it whole; the summary follows.
        OutputFormat::Table if compact_summary(p.releases(), layout.wide) => {
            eprintln!(
                "Plan: {} container(s) in {} release(s); -o wide lists each container, -o json carries the whole plan.",
                p.rows.len(),
                p.releases()
            );
            print_refused(&p.rows, Some(ATTENTION_LISTED));
            Ok(())
        }
        OutputFormat::Table | OutputFormat::Wide => {
            output::print(&render_plan(&p.rows, layout))?;
            print_refused(&p.rows, None);
            Ok(())
        }
    }
}

/// The report of a run that applied nothing (a client dry run, nothing to change) for `-o json|yaml`.
pub(crate) fn print_unapplied(format: OutputFormat, p: &Plan) -> Result<()> {
    if let Some(s) = output::structured(
        &ApplyReport {
            plan: &p.rows,
            summary: p.summary(),
            edits: &p.edits,
            outcomes: vec![],
            releases: vec![],
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
    /// What became of each release, in release order (empty when nothing was applied).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    releases: Vec<ReleaseReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One release's fate in the report: `applied` (every object written), `failed` (the failing
/// object, the error, and what became of the release's other objects), `not started` (the run
/// was interrupted before its turn: nothing of it was written).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ReleaseReport {
    namespace: String,
    release: String,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What happened to one release.
enum Fate {
    Applied,
    Failed(apply::ReleaseFailure),
    NotStarted,
}

/// One release's edits, applied: its outcomes per object and its fate.
struct Applied<'a> {
    namespace: &'a str,
    release: &'a str,
    objects: usize,
    outcomes: Vec<apply::Outcome>,
    fate: Fate,
}

/// Which write the pipeline runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Pin,
    Unpin,
}

impl Verb {
    /// What the report calls an object written.
    fn done_word(self) -> &'static str {
        match self {
            Verb::Pin => "pinned",
            Verb::Unpin => "unpinned",
        }
    }

    /// The error of a run a second signal stopped (exit 130): what the objects were left as.
    fn stopped(self) -> Error {
        Error::interrupted(match self {
            Verb::Pin => "interrupted again: stopping now; objects written so far keep their records (`kubectl astro-sha unpin` restores them, `pin` again finishes the run)",
            Verb::Unpin => "interrupted again: stopping now; objects written so far have their original images back, the others keep their pins and records (run `kubectl astro-sha unpin` again to finish)",
        })
    }
}

/// Applies the plan's edits, up to `parallel` releases at a time. Each release is written in
/// its own order, all or nothing (see `kube::apply::apply_release`: its `test` operations, its
/// own rollback); a failing release does not stop or touch the others. A signal stops every
/// release in flight (each rolls back) and starts no new one. The report says per release what
/// happened (stderr, and `releases` in `-o json|yaml`); the exit is non-zero if any failed.
pub(crate) async fn apply_all(
    cluster: &Cluster,
    format: OutputFormat,
    p: &Plan,
    server_dry_run: bool,
    verb: Verb,
    parallel: usize,
) -> Result<ExitStatus> {
    use futures::StreamExt;
    let word = verb.done_word();
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
    if !server_dry_run {
        apply::watch_interrupts();
    }
    let pb = output::progress(by_release.len() as u64, "applying releases");
    let all = futures::stream::iter(by_release.iter().enumerate())
        .map(|(i, ((ns, rel), list))| {
            let (cron, word) = (cron.as_ref(), word.as_str());
            async move {
                let a = apply_one(cluster, ns, rel, list, server_dry_run, cron, word).await;
                (i, a)
            }
        })
        .buffer_unordered(parallel.max(1))
        .inspect(|_| pb.inc(1))
        .collect::<Vec<(usize, Applied)>>();
    // A second signal stops at once: the writes in flight are dropped, nothing is rolled back.
    let mut done = tokio::select! {
        done = all => done,
        () = apply::interrupted_again() => {
            pb.finish_and_clear();
            return Err(verb.stopped());
        }
    };
    pb.finish_and_clear();
    done.sort_by_key(|(i, _)| *i);
    let done: Vec<Applied> = done.into_iter().map(|(_, a)| a).collect();
    report_releases(&done, &word);
    let failure = failure(&done, &word);
    let outcomes = done.iter().flat_map(|a| a.outcomes.clone()).collect();
    if let Some(s) = output::structured(
        &ApplyReport {
            plan: &p.rows,
            summary: p.summary(),
            edits,
            outcomes,
            releases: done.iter().map(release_report).collect(),
            error: failure.as_ref().map(|f| f.message.clone()),
        },
        format,
    )? {
        output::print(&s)?;
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(ExitStatus::Success),
    }
}

/// One release: not started when a signal came before its turn, else applied all or nothing.
async fn apply_one<'a>(
    cluster: &Cluster,
    namespace: &'a str,
    release: &'a str,
    list: &[ObjectEdit],
    server_dry_run: bool,
    cron: Option<&kube::api::ApiResource>,
    word: &str,
) -> Applied<'a> {
    if apply::interrupted() {
        let outcomes = list
            .iter()
            .map(|e| apply::Outcome {
                object: e.display_name(),
                namespace: e.namespace.clone(),
                result: apply::ObjectResult::NotAttempted,
            })
            .collect();
        return Applied {
            namespace,
            release,
            objects: list.len(),
            outcomes,
            fate: Fate::NotStarted,
        };
    }
    let applied = apply::apply_release(cluster, list, server_dry_run, cron, word).await;
    Applied {
        namespace,
        release,
        objects: list.len(),
        outcomes: applied.outcomes,
        fate: applied.failure.map_or(Fate::Applied, Fate::Failed),
    }
}

fn release_report(a: &Applied) -> ReleaseReport {
    let (result, error) = match &a.fate {
        Fate::Applied => ("applied", None),
        Fate::Failed(f) => (
            "failed",
            Some(format!("{} {}; {}", f.object, f.error, f.after)),
        ),
        Fate::NotStarted => ("not started", None),
    };
    ReleaseReport {
        namespace: a.namespace.to_string(),
        release: a.release.to_string(),
        result,
        error,
    }
}

/// Per release, in release order (stderr): applied, or the failed release's objects and fates,
/// or not started.
fn report_releases(done: &[Applied], word: &str) {
    for a in done {
        let (rel, ns) = (a.release, a.namespace);
        match &a.fate {
            Fate::Applied => eprintln!("release {rel} ({ns}): {} object(s) {word}", a.objects),
            Fate::NotStarted => {
                eprintln!(
                    "release {rel} ({ns}): not started (interrupted); nothing of it was written"
                )
            }
            Fate::Failed(f) => {
                let mut t = Table::new(["NAMESPACE", "OBJECT", "RESULT"]);
                for x in &a.outcomes {
                    t.push(vec![
                        x.namespace.clone(),
                        x.object.clone(),
                        output::safe(&x.result.to_string()).into_owned(),
                    ]);
                }
                eprint!("{}", t.render(false));
                // Alone, the release's error (the run's) says it once.
                if done.len() > 1 {
                    eprintln!(
                        "release {rel} ({ns}): failed: {}",
                        output::safe(&format!("{} {}; {}", f.object, f.error, f.after))
                    );
                }
            }
        }
    }
}

/// The run's error, if a release failed or was not started: the first failed release in full
/// (with the hint for its kind of failure), then how the others ended.
fn failure(done: &[Applied], word: &str) -> Option<Error> {
    let count = |f: fn(&Fate) -> bool| done.iter().filter(|a| f(&a.fate)).count();
    let applied = count(|f| matches!(f, Fate::Applied));
    let failed = count(|f| matches!(f, Fate::Failed(_)));
    let not_started = count(|f| matches!(f, Fate::NotStarted));
    let mut others = vec![];
    if applied > 0 {
        others.push(format!("{applied} {word}"));
    }
    if failed > 1 {
        others.push(format!("{} more failed (see above)", failed - 1));
    }
    if not_started > 0 {
        others.push(format!(
            "{not_started} not started (interrupted), left as they were"
        ));
    }
    let others = if others.is_empty() {
        String::new()
    } else {
        format!("; other releases: {}", others.join(", "))
    };
    let Some((a, f)) = done.iter().find_map(|a| match &a.fate {
        Fate::Failed(f) => Some((a, f)),
        _ => None,
    }) else {
        return (not_started > 0).then(|| {
            Error::new(format!(
                "interrupted: {not_started} release(s) not started, left as they were; {applied} release(s) complete"
            ))
            .hint("run the command again to finish")
        });
    };
    let msg = format!(
        "release {} in namespace {}: {} {}; {}{others}",
        a.release, a.namespace, f.object, f.error, f.after
    );
    Some(match &f.error {
        apply::ApplyError::Changed(_) => Error::new(msg).hint("someone changed the workload while the plan was shown; review with `kubectl astro-sha show` and run again"),
        apply::ApplyError::Gone => Error::new(msg).hint("the object was deleted during the run; run again to plan against the current state"),
        apply::ApplyError::Interrupted => Error::new(msg).hint("nothing of the releases in flight is left half-written; run the command again to finish"),
        apply::ApplyError::Api(inner) => Error::new(msg).hint(inner.hint.clone().unwrap_or_else(|| "see the error above".into())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::edit::ImageEdit;

    const D: &str = "sha256:f22c9812115cbed16dd6ea74c11f7759823a597dcc1c72ffbcbf2c28af8abfbb";

    /// A plan for release `nebular-star-4821` (issue 14's names) over `kinds`.
    fn plan(kinds: &[(Kind, &str)]) -> Plan {
        plan_of("nebular-star-4821", kinds)
    }

    fn plan_of(rel: &str, kinds: &[(Kind, &str)]) -> Plan {
        let ns = format!("astronomer-{rel}");
        let (ns, rel) = (ns.as_str(), rel);
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
                version: Some("12.4.0".into()),
                version_source: Some(VersionSource::Tag),
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
                legacy_record: false,
            });
        }
        p
    }

    fn applied<'a>(ns: &'a str, rel: &'a str, fate: Fate) -> Applied<'a> {
        Applied {
            namespace: ns,
            release: rel,
            objects: 3,
            outcomes: vec![],
            fate,
        }
    }

    #[test]
    fn the_error_names_the_first_failed_release_and_how_the_others_ended() {
        let failed = |rel: &str| {
            Fate::Failed(apply::ReleaseFailure {
                object: format!("configmap/{rel}-config"),
                error: apply::ApplyError::Changed("modified".into()),
                after: format!("rolled back: deployment/{rel}-webserver"),
            })
        };
        assert!(failure(&[applied("na", "a", Fate::Applied)], "pinned").is_none());
        let done = [
            applied("na", "a", Fate::Applied),
            applied("nb", "b", failed("b")),
            applied("nc", "c", Fate::Applied),
            applied("nd", "d", failed("d")),
            applied("ne", "e", Fate::NotStarted),
        ];
        let e = failure(&done, "pinned").expect("an error");
        assert_eq!(
            e.message,
            "release b in namespace nb: configmap/b-config changed since the plan was made (modified); rolled back: deployment/b-webserver; other releases: 2 pinned, 1 more failed (see above), 1 not started (interrupted), left as they were"
        );
        assert!(e
            .hint
            .unwrap()
            .contains("review with `kubectl astro-sha show`"));
        // Alone, a failed release says nothing of others.
        let e = failure(&[applied("nb", "b", failed("b"))], "pinned").expect("an error");
        assert!(
            e.message.ends_with("rolled back: deployment/b-webserver"),
            "{}",
            e.message
        );
        let reports: Vec<ReleaseReport> = done.iter().map(release_report).collect();
        assert_eq!(
            reports.iter().map(|r| r.result).collect::<Vec<_>>(),
            ["applied", "failed", "applied", "failed", "not started"]
        );
        assert_eq!(
            reports[1].error.as_deref(),
            Some("configmap/b-config changed since the plan was made (modified); rolled back: deployment/b-webserver")
        );
    }

    #[test]
    fn an_interrupt_before_some_releases_started_says_how_many_were_left() {
        let done = [
            applied("na", "a", Fate::Applied),
            applied("nb", "b", Fate::NotStarted),
            applied("nc", "c", Fate::NotStarted),
        ];
        let e = failure(&done, "unpinned").expect("an error");
        assert_eq!(
            e.message,
            "interrupted: 2 release(s) not started, left as they were; 1 release(s) complete"
        );
        assert_eq!(e.hint.as_deref(), Some("run the command again to finish"));
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
    fn at_fleet_size_the_summary_is_totals_and_ten_releases_and_wide_lists_every_release() {
        let kinds = [
            (Kind::Deployment, "scheduler"),
            (Kind::Deployment, "webserver"),
            (Kind::ConfigMap, "config"),
        ];
        let mut p = Plan::default();
        for i in 0..30 {
            let one = plan_of(&format!("galactic-orbit-{i:04}"), &kinds);
            p.rows.extend(one.rows);
            p.edits.extend(one.edits);
        }
        let s = render_summary(&p, "pin", false);
        assert!(s.lines().count() <= 7 + ATTENTION_LISTED, "{s}");
        assert!(s.lines().all(|l| l.len() <= 150), "{s}");
        assert!(
            s.starts_with(
                "Summary: pin 90 object(s) in 30 release(s); -o wide describes each release\n"
            ),
            "{s}"
        );
        assert!(
            s.contains("  image quay.io/astronomer/astro-runtime (30 release(s))\n"),
            "{s}"
        );
        assert!(
            s.contains("pods roll now: 60 workload(s); next pod takes it: 30 object(s)"),
            "{s}"
        );
        assert!(
            s.contains("Needs attention, the image that runs now changes in 30 release(s):"),
            "{s}"
        );
        assert!(s.contains("  galactic-orbit-0009 (astronomer-galactic-orbit-0009): deployment/galactic-orbit-0009-scheduler, "), "{s}");
        assert!(!s.contains("galactic-orbit-0010 "), "{s}");
        assert!(s.contains("  and 20 more release(s)\n"), "{s}");
        let wide = render_summary(&p, "pin", true);
        for i in 0..30 {
            assert!(
                wide.contains(&format!(
                    "  galactic-orbit-{i:04} (astronomer-galactic-orbit-{i:04}): 3 object(s)"
                )),
                "{wide}"
            );
        }
        // Ten releases or fewer: every release, as before.
        let few = plan_of("nebular-star-4821", &kinds);
        assert!(render_summary(&few, "pin", false).contains("pods roll now: deployment/"));
    }

    #[test]
    fn the_summary_says_unknown_when_no_pod_reports_what_runs() {
        let mut p = plan(&[(Kind::Deployment, "scheduler"), (Kind::ConfigMap, "config")]);
        for r in &mut p.rows {
            r.running = RunningChange::Unknown;
        }
        let s = render_summary(&p, "pin", false);
        assert!(
            s.ends_with("Whether the image that runs now changes is unknown: no pod reports what it runs (\"running image: unknown\" above).\n"),
            "{s}"
        );
        assert!(!s.contains("No change of the image"), "{s}");
        p.rows[0].running = RunningChange::Same;
        let s = render_summary(&p, "pin", false);
        assert!(
            s.ends_with("No change of the image that runs now where the pods report it; unknown for 1 workload(s).\n"),
            "{s}"
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
        let s = render_summary(&plan(&kinds), "pin", false);
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
