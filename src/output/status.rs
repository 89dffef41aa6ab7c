//! The status screen: a `core::status_report::StatusReport` drawn as text (pure string
//! building over the report; the colours and the table come from this layer, which is why it is
//! not in `core`).

use crate::core::names::{LOCAL_PRODUCTION_KEY, RELEASES_DATA_KEY};
use crate::core::state::StateKey;
use crate::core::status_report::{
    DeploymentsSection, FlagView, Problem, ReleaseView, RenderingSection, StatusReport,
};
use crate::output::{self, Table, Tone};

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

fn flag_line(v: &Option<FlagView>) -> String {
    match v {
        Some(v) => format!(
            "{} ({})",
            match v.enabled {
                Some(true) => "on",
                Some(false) => "off",
                None => "unknown: depends on the chart version",
            },
            v.state.describe()
        ),
        None => "unknown".into(),
    }
}

/// The one screen: the platform, the feature flag, the releases ConfigMap, the Airflow
/// Deployments, whether Houston renders digests, the problems, what could not be read.
pub(crate) fn render(r: &StatusReport, wide: bool, no_headers: bool, color: bool) -> String {
    let mut s = platform_lines(r, color);
    s.push_str(&configmap_lines(r));
    render_deployments(&mut s, &r.deployments, wide, no_headers, color);
    if let Some(h) = &r.houston_rendering {
        if !r.deployments.items.is_empty() {
            s.push('\n');
        }
        s.push_str(&rendering_line(h));
    }
    s.push_str(&problem_lines(&r.problems, wide));
    if !r.could_not_read.is_empty() {
        s.push_str("\nCould not read (the report above is partial):\n");
        for u in &r.could_not_read {
            s.push_str(&format!("  - could not read: {u}\n"));
        }
    }
    if r.ok {
        s.push_str("\nAll in order: the feature is on, the releases ConfigMap is complete and mounted, every Airflow Deployment is pinned.\n");
    }
    s
}

/// `Platform:` and the feature flag's three lines.
fn platform_lines(r: &StatusReport, color: bool) -> String {
    let p = &r.platform;
    let unknown = || "unknown".to_string();
    let mut s = format!(
        "Platform:            namespace {}, release {}, chart {}{}\n",
        p.namespace.clone().unwrap_or_else(unknown),
        p.release.clone().unwrap_or_else(unknown),
        p.chart_version.clone().unwrap_or_else(unknown),
        p.chart_version_source
            .as_deref()
            .map(|s| format!(" (from the {s})"))
            .unwrap_or_default()
    );
    let f = &r.feature;
    let state = match f.enabled {
        Some(true) => output::paint("enabled", Tone::Settled, color),
        Some(false) => output::paint("not-enabled", Tone::Action, color),
        None => "unknown".into(),
    };
    s.push_str(&format!(
        "Feature flag:        {state}{}\n",
        if f.disagree {
            " (Helm values and Houston's config disagree)"
        } else {
            ""
        }
    ));
    s.push_str(&format!(
        "  Helm values:         {}\n",
        flag_line(&f.helm_values)
    ));
    s.push_str(&format!(
        "  {LOCAL_PRODUCTION_KEY}: {}\n",
        flag_line(&f.local_production)
    ));
    s
}

/// The releases ConfigMap's three lines.
fn configmap_lines(r: &StatusReport) -> String {
    let c = &r.releases_config_map;
    let count = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    let mut s = format!("Releases ConfigMap:  {}\n", c.name);
    s.push_str(&format!(
        "  present: {}   data key {RELEASES_DATA_KEY}: {}   mounted in Houston: {}{}\n",
        yes_no(c.present),
        yes_no(c.data_key_ok),
        yes_no(c.mounted),
        c.mount_path
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    ));
    s.push_str(&format!(
        "  versions: {}   with a digest: {}   imported: {}\n",
        count(c.versions),
        count(c.with_digest),
        c.imported_at.clone().unwrap_or_else(|| "-".into())
    ));
    s
}

/// `Problems (N):`, each with its fix; with `-o wide`, each grouped problem's releases under it.
fn problem_lines(problems: &[Problem], wide: bool) -> String {
    let mut s = String::new();
    if problems.is_empty() {
        return s;
    }
    s.push_str(&format!("\nProblems ({}):\n", problems.len()));
    for pr in problems {
        s.push_str(&format!(
            "  - {}{}\n    fix: {}\n",
            pr.problem,
            names(pr, wide),
            pr.fix
        ));
        if wide {
            for r in &pr.releases {
                let fix = r
                    .fix
                    .as_deref()
                    .map(|f| format!(": {f}"))
                    .unwrap_or_default();
                s.push_str(&format!("      {}/{}{fix}\n", r.namespace, r.release));
            }
        }
    }
    s
}

/// `Houston renders digests: yes`, the Airflow Deployments by reference form on the next line,
/// and each reason why not on a line of its own (every line within 160 columns).
fn rendering_line(h: &RenderingSection) -> String {
    let answer = match h.renders_digests {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    let mut s = format!(
        "Houston renders digests: {answer}\n  Airflow Deployments on catalog digests: {}, on tags: {}, on builds the catalog does not list: {}",
        h.catalog_digests, h.tags, h.unknown_builds
    );
    if h.not_judged > 0 {
        s.push_str(&format!(
            ", on digests not judged (no readable catalog): {}",
            h.not_judged
        ));
    }
    s.push('\n');
    for w in &h.why_not {
        s.push_str(&format!("  why not: {w}\n"));
    }
    s
}

/// After a grouped problem's line, a few of its releases (all of them with `-o wide`, one per
/// line below it): `: fleet-1, fleet-2, fleet-3 and 506 more (-o wide lists them)`.
fn names(p: &Problem, wide: bool) -> String {
    const SHOWN: usize = 3;
    if p.releases.is_empty() || wide {
        return String::new();
    }
    let first: Vec<&str> = p
        .releases
        .iter()
        .take(SHOWN)
        .map(|r| r.release.as_str())
        .collect();
    match p.releases.len().saturating_sub(SHOWN) {
        0 => format!(": {}", first.join(", ")),
        more => format!(
            ": {} and {more} more (-o wide lists them)",
            first.join(", ")
        ),
    }
}

/// The releases the table shows by default: one screen's worth. `-o wide` shows every one, and
/// JSON always has each (`deployments.items`).
const TABLE_ROWS: usize = 20;

/// The Airflow Deployments lines and their per-release table.
fn render_deployments(
    s: &mut String,
    d: &DeploymentsSection,
    wide: bool,
    no_headers: bool,
    color: bool,
) {
    if d.readable {
        // The catalog's states only when some release is in one (they need tagless digests).
        let counts: Vec<String> = StateKey::ALL
            .iter()
            .map(|k| (k, d.by_state.get(k.as_str()).copied().unwrap_or(0)))
            .filter(|(k, n)| {
                *n > 0 || !matches!(k, StateKey::OtherVersion | StateKey::UnlistedBuild)
            })
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        s.push_str(&format!(
            "Airflow Deployments: {} in {}: {}\n",
            d.releases,
            d.scope,
            counts.join(", ")
        ));
        if !d.items.is_empty() {
            s.push('\n');
            s.push_str(&releases_table(&d.items, wide, no_headers, color));
        }
    } else {
        s.push_str(&format!("Airflow Deployments: unknown in {}\n", d.scope));
    }
}

/// One row per release; at fleet size (more than [`TABLE_ROWS`] and no `-o wide`) the least in
/// order first and one line for the rest, since the line above counts every state and the
/// problems name what to fix. The NAMESPACE column only when the releases span namespaces (as
/// kubectl shows it only with -A): never with -n.
fn releases_table(items: &[ReleaseView], wide: bool, no_headers: bool, color: bool) -> String {
    let spans = items
        .first()
        .is_some_and(|f| items.iter().any(|i| i.namespace != f.namespace));
    let mut headers = vec!["NAMESPACE", "RELEASE", "STATE", "CONTAINERS"];
    if !spans {
        headers.remove(0);
    }
    let mut shown: Vec<&ReleaseView> = items.iter().collect();
    let cut = !wide && shown.len() > TABLE_ROWS;
    if cut {
        // Stable: within a state, the natural order the report gives.
        shown.sort_by_key(|r| std::cmp::Reverse(r.state));
        shown.truncate(TABLE_ROWS);
    }
    let mut t = Table::new(headers).keep_whole(&["STATE", "CONTAINERS"]);
    for i in shown {
        let mut row = vec![];
        if spans {
            row.push(i.namespace.clone());
        }
        row.extend([
            i.release.clone(),
            output::paint_state(i.state.as_str(), i.state, color),
            i.containers.to_string(),
        ]);
        t.push(row);
    }
    let mut s = t.render(no_headers);
    if cut {
        s.push_str(&format!(
            "... and {} more releases (-o wide lists every one)\n",
            items.len() - TABLE_ROWS
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::catalog_index::CatalogMatch;
    use crate::core::platform::tests::unmounted_platform;
    use crate::core::state::{self, Status};
    use crate::core::status_report::tests::*;
    use crate::core::status_report::*;
    use serde_json::json;

    #[test]
    fn all_in_order() {
        let r = report(&good());
        assert!(r.ok, "{:?}", r.problems);
        assert_eq!(r.feature.enabled, Some(true));
        assert!(!r.feature.disagree);
        assert_eq!(r.releases_config_map.versions, Some(3));
        assert_eq!(r.releases_config_map.with_digest, Some(3));
        assert_eq!(r.releases_config_map.mounted, Some(true));
        assert_eq!(
            r.releases_config_map.imported_at.as_deref(),
            Some("2026-11-26T10:00:00Z")
        );
        assert_eq!(r.platform.chart_version.as_deref(), Some("0.37.4"));
        assert_eq!(r.deployments.by_state["pinned"], 1);
        let text = render(&r, false, false, false);
        assert!(text.contains("All in order"), "{text}");
    }

    /// A platform's row across contexts: its state and reason, the flag and the ConfigMap in a word.

    #[test]
    fn houston_rendering_counts_deployments_by_their_references() {
        let tagless = |ns: &str, rel: &str, check: Option<CatalogMatch>, state: Status| {
            let mut r = row(ns, rel, &format!("deployment/{rel}-scheduler"), state);
            r.spec_digest = Some(D.into());
            r.catalog = check;
            r
        };
        let tagged = |ns: &str, rel: &str| {
            let mut r = row(
                ns,
                rel,
                &format!("deployment/{rel}-scheduler"),
                Status::TagOnly,
            );
            r.tag = Some("12.2.0".into());
            r
        };
        let mut f = good();
        f.airflow = Got::Found(vec![
            tagless("n1", "a", Some(CatalogMatch::Listed), Status::Pinned),
            tagless("n1", "a", Some(CatalogMatch::Listed), Status::Pinned),
            tagless("n2", "b", Some(CatalogMatch::Listed), Status::Pinned),
            tagged("n2", "b"),
            tagless(
                "n3",
                "c",
                Some(CatalogMatch::Unlisted),
                Status::UnlistedBuild,
            ),
            tagged("n4", "d"),
        ]);
        let r = report(&f);
        let h = r.houston_rendering.as_ref().unwrap();
        assert_eq!(
            (h.catalog_digests, h.tags, h.unknown_builds, h.not_judged),
            (1, 2, 1, 0)
        );
        assert_eq!(h.renders_digests, Some(true));
        assert!(h.why_not.is_empty());
        assert_eq!(r.deployments.by_state["unlisted-build"], 1);
        let p = r
            .problems
            .iter()
            .find(|p| p.problem.starts_with("n3/c: unlisted-build"))
            .expect("the unlisted build is a problem");
        assert!(
            p.fix
                .starts_with("kubectl astro-sha import --configmap astro-runtime-base-images"),
            "{}",
            p.fix
        );
        let text = render(&r, false, false, false);
        assert!(
            text.contains("Houston renders digests: yes\n  Airflow Deployments on catalog digests: 1, on tags: 2, on builds the catalog does not list: 1\n"),
            "{text}"
        );

        // Only tags: no, and why (here: everything in order, so no Deployment updated since).
        f.airflow = Got::Found(vec![tagged("n4", "d")]);
        let h = report(&f).houston_rendering.unwrap();
        assert_eq!(h.renders_digests, Some(false));
        assert!(
            h.why_not[0].starts_with("no Deployment was updated"),
            "{:?}",
            h.why_not
        );
        // The flag off and the ConfigMap not mounted: said, in that order.
        f.local_production = Got::Found("deployments: {}\n".into());
        f.helm = Got::Found(release(json!({}), "0.37.4"));
        f.platform = Got::Found(unmounted_platform());
        let h = report(&f).houston_rendering.unwrap();
        assert_eq!(
            h.why_not,
            vec![
                "the feature flag is off".to_string(),
                "Houston does not mount ConfigMap astro-runtime-base-images".to_string()
            ]
        );
        // Tagless builds without a catalog to judge them: cannot tell.
        f.airflow = Got::Found(vec![tagless("n1", "a", None, Status::Pinned)]);
        let h = report(&f).houston_rendering.unwrap();
        assert_eq!((h.not_judged, h.renders_digests), (1, None));
    }

    #[test]
    fn problems_many_releases_share_are_one_line_with_one_fix_and_the_names_in_wide() {
        let mut f = good();
        let mut rows: Vec<state::Row> = [10, 2, 1, 3, 4]
            .iter()
            .map(|i| row("n1", &format!("fleet-{i}"), "deployment/w", Status::TagOnly))
            .collect();
        rows.push(row("n2", "x", "deployment/x-s", Status::RunningDiffers));
        rows.push(row("n3", "y", "statefulset/y-s", Status::RunningDiffers));
        rows.push(row("n1", "d", "deployment/d-s", Status::Drifted));
        f.airflow = Got::Found(rows);
        let r = report(&f);
        assert_eq!(r.problems.len(), 3, "{:#?}", r.problems);
        let tag_only = &r.problems[0];
        assert_eq!(
            tag_only.problem,
            "5 releases are tag-only: their Runtime containers run on tags, not digests"
        );
        assert_eq!(tag_only.fix, "kubectl astro-sha pin --all -n n1");
        let names: Vec<&str> = tag_only
            .releases
            .iter()
            .map(|r| r.release.as_str())
            .collect();
        assert_eq!(
            names,
            ["fleet-1", "fleet-2", "fleet-3", "fleet-4", "fleet-10"]
        );
        // one drifted release keeps its own line and fix
        assert!(
            r.problems[1].problem.starts_with("n1/d: drifted"),
            "{:?}",
            r.problems[1]
        );
        assert!(r.problems[1].releases.is_empty());
        // running-differs across namespaces: one line, each release with its own restart
        let rd = &r.problems[2];
        assert_eq!(rd.problem, "2 releases run something other than their pin");
        assert_eq!(
            rd.releases[1].fix.as_deref(),
            Some("kubectl -n n3 rollout restart statefulset/y-s")
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["problems"][0]["releases"][4]["release"], "fleet-10");
        assert!(json["problems"][1].get("releases").is_none());
        let text = render(&r, false, false, false);
        assert!(
            text.contains("Problems (3):\n  - 5 releases are tag-only: their Runtime containers run on tags, not digests: fleet-1, fleet-2, fleet-3 and 2 more (-o wide lists them)\n    fix: kubectl astro-sha pin --all -n n1\n"),
            "{text}"
        );
        let problems = &text[text.find("Problems (").unwrap_or(0)..];
        assert!(!problems.contains("fleet-10"), "{text}");
        let wide = render(&r, true, false, false);
        assert!(wide.contains("      n1/fleet-10\n"), "{wide}");
        assert!(
            wide.contains("      n3/y: kubectl -n n3 rollout restart statefulset/y-s\n"),
            "{wide}"
        );
    }

    #[test]
    fn unreadable_parts_are_listed_and_the_rest_reported() {
        let mut f = good();
        f.helm = Got::Unreadable("secrets in namespace astronomer (forbidden)".into());
        let r = report(&f);
        assert_eq!(
            r.could_not_read,
            vec!["secrets in namespace astronomer (forbidden)"]
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(!r.ok, "an unreadable part is not in order");
        assert_eq!(
            r.platform.chart_version.as_deref(),
            Some("0.37.4"),
            "from the houston label"
        );
        assert_eq!(r.feature.enabled, Some(true), "from local-production.yaml");
        let text = render(&r, false, false, false);
        assert!(
            text.contains("could not read: secrets in namespace astronomer (forbidden)"),
            "{text}"
        );
    }

    /// 500 releases (issue 23's fleet: most tag-only, a few drifted, the rest pinned) across
    /// namespaces: the default screen fits one (the summary line, at most TABLE_ROWS releases,
    /// the least in order first, and a line saying how many more); `-o wide` lists every one.
    #[test]
    fn the_releases_table_fits_a_screen_at_fleet_size() {
        let mut f = good();
        let rows: Vec<state::Row> = (1..=500)
            .map(|i| {
                let state = match i {
                    7 | 300 => Status::Drifted,
                    i if i % 50 == 0 => Status::Pinned,
                    _ => Status::TagOnly,
                };
                let ns = format!("astronomer-fleet-{i}");
                row(&ns, &format!("fleet-{i}"), "deployment/scheduler", state)
            })
            .collect();
        f.airflow = Got::Found(rows);
        let r = report(&f);
        let text = render(&r, false, false, false);
        let lines = text.lines().count();
        assert!(lines <= 50, "{lines} lines:\n{text}");
        let table: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("NAMESPACE"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        assert_eq!(table.len(), TABLE_ROWS + 1, "{text}");
        // The least in order first: both drifted releases, then tag-only ones in natural order.
        assert!(
            table[0].contains("fleet-7 ") && table[1].contains("fleet-300 "),
            "{text}"
        );
        assert!(
            table[2].contains("fleet-1 ") && table[3].contains("fleet-2 "),
            "{text}"
        );
        assert!(
            table[TABLE_ROWS].contains("480 more releases (-o wide lists every one)"),
            "{text}"
        );
        let wide = render(&r, true, false, false);
        for i in [1, 50, 499, 500] {
            assert!(
                wide.contains(&format!(" fleet-{i} ")),
                "fleet-{i} in -o wide"
            );
        }
        assert!(!wide.contains("more releases"), "{wide}");
        // A few releases: every one, as before.
        f.airflow = Got::Found(vec![row("a", "r1", "w", Status::TagOnly)]);
        let few = render(&report(&f), false, false, false);
        assert!(!few.contains("more releases"), "{few}");
    }
}
