//! The write pipeline `pin` and `unpin` share: show the plan, stop on problems, ask, check access,
//! then apply release by release (all or nothing per release, see `kube::apply::apply_release`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::core::inventory::Kind;
use crate::core::plan::PlanRow;
use crate::error::{Error, Result};
use crate::kube::apply::{self, ObjectEdit};
use crate::kube::client::Cluster;
use crate::output::{self, OutputFormat, Table};

pub fn render_plan(rows: &[PlanRow], no_headers: bool, wide: bool) -> String {
    let mut headers = vec!["RELEASE", "WORKLOAD", "CONTAINER", "FROM", "TO", "ACTION"];
    if wide {
        headers.insert(0, "NAMESPACE");
    }
    let mut t = Table::new(headers);
    for r in rows {
        let mut row = vec![
            r.release.clone(),
            r.workload.clone(),
            r.container.clone(),
            r.from.clone(),
            r.to.clone().unwrap_or_else(|| "-".into()),
            r.action.to_string(),
        ];
        if wide {
            row.insert(0, r.namespace.clone());
        }
        t.push(row);
    }
    t.render(no_headers)
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
/// prove that a writer acting in that window is never overwritten. It only ever waits.
pub async fn pause_before_apply() {
    if let Some(ms) = std::env::var("ASTRO_SHA_PAUSE_BEFORE_APPLY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        eprintln!("(pausing {ms} ms before applying, as ASTRO_SHA_PAUSE_BEFORE_APPLY_MS asks)");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// The plan table (table and wide output); JSON and YAML carry the apply report instead.
pub fn print_plan(format: OutputFormat, no_headers: bool, rows: &[PlanRow]) -> Result<()> {
    match format {
        OutputFormat::Json | OutputFormat::Yaml => Ok(()),
        OutputFormat::Table | OutputFormat::Wide => {
            output::print(&render_plan(rows, no_headers, format == OutputFormat::Wide))
        }
    }
}

#[derive(Serialize)]
struct ApplyReport<'a> {
    edits: &'a [ObjectEdit],
    outcomes: Vec<apply::Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Applies edits release by release; stops at the first failed release.
pub async fn apply_all(
    cluster: &Cluster,
    format: OutputFormat,
    edits: &[ObjectEdit],
    server_dry_run: bool,
    word: &str,
) -> Result<u8> {
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
