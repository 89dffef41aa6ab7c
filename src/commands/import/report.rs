//! What `import` prints: the table or JSON/YAML report on stdout, the missing and moved tags on
//! stderr.

use serde::Serialize;

use super::source::Source;
use crate::args::{DryRun, GlobalArgs, OutputFormat};
use crate::core::catalog::DigestField;
use crate::core::catalog_import::{self, Change, ImportPlan, Item, Summary};
use crate::error::Result;
use crate::output::{self, Table};

/// How a row's CHANGE is coloured.
fn tone(i: &Item) -> output::Tone {
    match i.change {
        Change::Unchanged => output::Tone::Settled,
        Change::New => output::Tone::Action,
        Change::Moved | Change::Missing => output::Tone::Broken,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    source: String,
    target: String,
    dry_run: DryRun,
    written: bool,
    digest_field: String,
    /// `deployment/x`, `statefulset/y`: restarted after the write, because they mount the
    /// ConfigMap with subPath and would keep the old catalog.
    restarted: &'a [String],
    items: &'a [Item],
    summary: Summary,
}

fn render_table(items: &[Item], wide: bool, no_headers: bool, color: bool) -> String {
    let mut headers = vec!["VERSION", "AIRFLOW", "CHANNEL", "IMAGE", "DIGEST", "CHANGE"];
    if wide {
        headers.extend(["PREVIOUS", "REGISTRY DIGEST", "REGISTRY SOURCE"]);
    }
    // The IMAGE names the repository once (the tag is the VERSION), so the default table fits
    // 160 columns for real references; a narrow terminal shortens the image, never a version,
    // a digest or a change.
    let mut t = Table::new(headers).keep_whole(&[
        "VERSION",
        "DIGEST",
        "CHANGE",
        "PREVIOUS",
        "REGISTRY DIGEST",
        "REGISTRY SOURCE",
    ]);
    let d = |o: &Option<String>| match o {
        Some(x) if wide => x.clone(),
        Some(x) => output::short_digest(x),
        None => "-".into(),
    };
    for i in items {
        let mut row = vec![
            i.version.clone(),
            i.airflow.to_string(),
            i.channel.clone().unwrap_or_else(|| "-".into()),
            i.image.clone(),
            d(&i.digest),
            output::paint(&i.label(), tone(i), color),
        ];
        if wide {
            row.push(d(&i.previous));
            row.push(d(&i.registry));
            row.push(i.registry_source.clone().unwrap_or_else(|| "-".into()));
        }
        t.push(row);
    }
    t.render(no_headers)
}

/// What was written where, for the report.
pub(super) struct Written<'a> {
    pub(super) source: &'a Source,
    pub(super) target: &'a str,
    pub(super) dry_run: DryRun,
    pub(super) written: bool,
    pub(super) field: &'a DigestField,
    pub(super) restarted: &'a [String],
}

pub(super) fn print_report(g: &GlobalArgs, p: &ImportPlan, w: &Written<'_>) -> Result<()> {
    let rep = Report {
        source: w.source.annotation(),
        target: w.target.to_string(),
        dry_run: w.dry_run,
        written: w.written,
        digest_field: w.field.to_string(),
        restarted: w.restarted,
        items: &p.items,
        summary: p.summary(),
    };
    match output::structured(&rep, g.output)? {
        Some(s) => output::print(&s),
        None => output::print(&render_table(
            &p.items,
            g.output == OutputFormat::Wide,
            g.no_headers,
            output::color_enabled(),
        )),
    }
}

/// Prints every version whose tag did not resolve, with the registry's own words.
pub(super) fn list_missing(p: &ImportPlan) {
    for i in p.items.iter().filter(|i| i.change == Change::Missing) {
        match &i.error {
            Some(e) => eprintln!("missing: {} ({e})", i.image),
            None => eprintln!("missing: {}", i.image),
        }
    }
}

/// Prints every moved version, and the warning when their recorded digests were kept.
pub(super) fn warn_moved(p: &ImportPlan) {
    for line in catalog_import::moved_lines(p) {
        eprintln!("{line}");
    }
    if let Some(w) = catalog_import::moved_kept_warning(p) {
        eprintln!("warning: {w}");
    }
}
