//! Tables that fit a terminal (issue 14): the default tables of `show`, `status`, `import` and
//! `resolve` stay within 160 columns for the names a real platform has; `-o wide` and
//! `-o json|yaml` still carry every full digest; on a terminal narrower than a row, no name is cut
//! (digests shorten and detail columns give way first, issue 23), and output that goes to a pipe
//! is never shortened.
//!
//! The real-world names come from issue 14 (seen on a real Astronomer platform): release
//! `nebular-star-4821` in namespace `astronomer-nebular-star-4821` (Houston names a Deployment's
//! namespace `<platform-release>-<release>`), workloads like
//! `deployment/nebular-star-4821-scheduler`, and the airflow chart's init container
//! `wait-for-airflow-migrations`. The release is a copy of the bed's Airflow 3 release
//! (`galactic-nova-9012`: api-server, dag-processor, scheduler, triggerer StatefulSet, pod template)
//! under those names, so it has the chart's longest workload and container names.

use crate::support;

use std::process::Command;
use std::sync::Mutex;

use crate::support::{repo_root, Bed, Out};
use serde_json::Value;

const RELEASE: &str = "nebular-star-4821";
const NS: &str = "astronomer-nebular-star-4821";
/// Issue 14's budget for a default table line.
const LIMIT: usize = 160;

/// Only one test at a time owns the fixed namespace.
static REAL_NAMES: Mutex<()> = Mutex::new(());

/// Display width of a line of plain output (the tables are ASCII plus `…`).
fn width(line: &str) -> usize {
    line.chars().count()
}

/// The widest line of `text`, and the line itself.
fn widest(text: &str) -> (usize, String) {
    text.lines()
        .map(|l| (width(l), l.to_string()))
        .max_by_key(|(w, _)| *w)
        .unwrap_or_default()
}

#[track_caller]
fn assert_fits(what: &str, out: &Out) {
    let (w, line) = widest(&out.stdout);
    assert!(
        w <= LIMIT,
        "`{what}`: widest line is {w} columns (limit {LIMIT}):\n{line}\nwhole output:\n{}",
        out.stdout
    );
}

fn header(out: &Out) -> &str {
    out.stdout.lines().next().unwrap_or_default()
}

/// Every `sha256:<hex>` token in `text`, with the length of its hex part.
fn digest_tokens(text: &str) -> Vec<(String, usize)> {
    let mut out = vec![];
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        let hex: String = rest[i + 7..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        out.push((format!("sha256:{hex}"), hex.len()));
        rest = &rest[i + 7 + hex.len()..];
    }
    out
}

/// The bed's Airflow 3 release, renamed to the real-world names, in namespace `NS`. Deleted when
/// dropped; a leftover from an interrupted run is removed first.
struct RealNames<'a> {
    bed: &'a Bed,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl<'a> RealNames<'a> {
    fn create(bed: &'a Bed) -> RealNames<'a> {
        let lock = REAL_NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if bed.kubectl(&["get", "namespace", NS]).ok() {
            support::delete_namespace(&bed.kubeconfig, NS);
        }
        for _ in 0..100 {
            if !bed.kubectl(&["get", "namespace", NS]).ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let rendered = std::fs::read_to_string(bed.path("platform/rendered.yaml"))
            .expect("the bed's rendered platform (scripts/testbed seed writes it)");
        let docs: Vec<String> = rendered
            .split("\n---\n")
            .filter(|d| d.contains("astronomer-galactic-nova-9012"))
            .map(|d| d.replace("galactic-nova-9012", RELEASE))
            .collect();
        assert!(
            docs.iter().any(|d| d.contains("kind: Namespace"))
                && docs.iter().any(|d| d.contains("kind: StatefulSet"))
                && docs
                    .iter()
                    .any(|d| d.contains("wait-for-airflow-migrations")),
            "the bed's galactic-nova-9012 release changed shape; this fixture copies it"
        );
        bed.apply(&docs.join("\n---\n"));
        let names = RealNames { bed, _lock: lock };
        names.scheduler_pod_runs_the_tag();
        names
    }

    /// One scheduler pod that runs what the tag points to now (not the pin), so the release has
    /// running digests and the widest state word, `running-differs`.
    fn scheduler_pod_runs_the_tag(&self) {
        let bed = self.bed;
        let now = bed.seed["drift"]["digest"]
            .as_str()
            .expect("seed drift digest");
        let repo = bed.seed["drift"]["repository"].as_str().expect("repo");
        let deploy = bed.get_json(&["deployment", "-n", NS, &format!("{RELEASE}-scheduler")]);
        let image = deploy["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .expect("scheduler image")
            .to_string();
        let name = deploy["spec"]["template"]["spec"]["containers"][0]["name"]
            .as_str()
            .expect("scheduler container")
            .to_string();
        bed.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {RELEASE}-scheduler-abc12\n  namespace: {NS}\n  labels: {{tier: airflow, component: scheduler, release: {RELEASE}}}\nspec:\n  automountServiceAccountToken: false\n  containers:\n  - name: {name}\n    image: {image}\n"
        ));
        let status = serde_json::json!({"status": {"phase": "Running", "containerStatuses": [{
            "name": name, "image": image, "imageID": format!("{}/{repo}@{now}", bed.reg_token),
            "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
        let o = bed.kubectl(&[
            "patch",
            "pod",
            &format!("{RELEASE}-scheduler-abc12"),
            "-n",
            NS,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]);
        assert!(o.ok(), "{}", o.stderr);
    }
}

impl Drop for RealNames<'_> {
    fn drop(&mut self) {
        if std::env::var_os("ASTRO_SHA_KEEP_TEST_NAMESPACES").is_none() {
            support::delete_namespace(&self.bed.kubeconfig, NS);
        }
    }
}

/// The releases of the bed's platform fixture (seed.json).
fn fixture_releases(bed: &Bed) -> Vec<String> {
    bed.seed["platform"]["releases"]
        .as_object()
        .expect("seed platform releases")
        .keys()
        .cloned()
        .collect()
}

fn mirrors(bed: &Bed) -> String {
    format!(
        "quay.io={t},astrocrpublic.azurecr.io={t}",
        t = bed.reg_token
    )
}

fn catalog_fixture(bed: &Bed) -> String {
    repo_root()
        .join(
            bed.seed["catalog"]
                .as_str()
                .unwrap_or("tests/fixtures/catalog/runtime-releases.json"),
        )
        .to_string_lossy()
        .into_owned()
}

/// A seeded image of `repository` with the most platforms (the widest PLATFORMS cell).
fn widest_seeded(bed: &Bed, repository: &str) -> Value {
    bed.seed["images"]
        .as_array()
        .expect("seed images")
        .iter()
        .filter(|i| i["repository"] == repository)
        .max_by_key(|i| i["platforms"].as_object().map_or(0, |p| p.len()))
        .unwrap_or_else(|| panic!("no {repository} image seeded"))
        .clone()
}

/// `show`, both ways: the default tables fit, name the real-world objects, keep NAMESPACE for -A
/// only, and print short digests; `-o wide` and `-o json` carry the full ones.
#[test]
fn show_fits_160_columns_with_real_world_names() {
    let Some(bed) = Bed::get() else { return };
    let _names = RealNames::create(&bed);

    // -A over the bed's platform: its releases and this one, named, so that what other tests
    // create at the same time (their own namespaces) does not change the widths measured here.
    let fixture = fixture_releases(&bed);
    let mut all_args = vec!["show", "-A", RELEASE];
    all_args.extend(fixture.iter().map(String::as_str));
    let all = bed.run(&all_args);
    all.assert_code(0);
    assert_fits("show -A", &all);
    assert!(header(&all).starts_with("NAMESPACE "), "{}", all.stdout);
    // The widths were really exercised: the longest real-world names share rows.
    for needle in [
        [
            NS,
            &format!("deployment/{RELEASE}-dag-processor"),
            "wait-for-airflow-migrations",
        ],
        [
            NS,
            &format!("deployment/{RELEASE}-scheduler"),
            "running-differs",
        ],
    ] {
        assert!(
            all.stdout
                .lines()
                .any(|l| needle.iter().all(|n| l.contains(n))),
            "no row with {needle:?}:\n{}",
            all.stdout
        );
    }
    for args in [
        vec!["show", RELEASE],
        vec!["show", "-n", NS],
        vec!["show", RELEASE, "--no-headers"],
    ] {
        let o = bed.run(&args);
        o.assert_code(0);
        assert_fits(&args.join(" "), &o);
        assert!(
            !o.stdout.contains("NAMESPACE") && !o.stdout.contains(&format!("{NS} ")),
            "the namespace column is for -A only (as kubectl): {args:?}\n{}",
            o.stdout
        );
        // One row per Runtime container: 12 in this release (the JSON counts them).
    }
    let rows = bed.run(&["show", RELEASE, "--no-headers"]).stdout;
    let json = bed.run(&["show", RELEASE, "-o", "json"]);
    json.assert_code(0);
    let items = json.json()["items"].as_array().expect("items").clone();
    assert_eq!(rows.lines().count(), items.len(), "{rows}");
    // Every spec digest of the report is a cell (the default table's one digest column),
    // shortened.
    let digests: Vec<&str> = items
        .iter()
        .filter_map(|i| i["specDigest"].as_str())
        .collect();
    let tokens = digest_tokens(&rows);
    assert!(!digests.is_empty(), "{}", json.stdout);
    assert_eq!(tokens.len(), digests.len(), "{rows}");
    for ((d, hex), full) in tokens.iter().zip(&digests) {
        assert_eq!(*hex, 12, "the default table shortens digests: {d}\n{rows}");
        assert!(full.starts_with(d.as_str()), "{d} is not {full}");
    }

    // Wide and JSON: every full digest the report has, and the image reference.
    let wide = bed.run(&["show", RELEASE, "-o", "wide"]);
    wide.assert_code(0);
    assert!(
        wide.stdout.contains("wait-for-airflow-migrations (init)"),
        "wide marks init containers:\n{}",
        wide.stdout
    );
    let mut full = 0;
    for i in &items {
        for field in [
            &i["specDigest"],
            &i["registryDigest"],
            &i["running"]["digest"],
        ] {
            if let Some(d) = field.as_str() {
                assert_eq!(d.len(), 71, "json keeps the full digest: {i}");
                assert!(wide.stdout.contains(d), "wide lacks {d}:\n{}", wide.stdout);
                full += 1;
            }
        }
        let image = i["image"].as_str().expect("image");
        assert!(wide.stdout.contains(image), "wide lacks {image}");
        assert!(
            i["release"] == RELEASE && i["namespace"] == NS,
            "json keeps release and namespace: {i}"
        );
    }
    assert!(
        full >= items.len() * 2,
        "spec, registry (and running) digests were checked: {full}"
    );
    let yaml = bed.run(&["show", RELEASE, "-o", "yaml"]);
    yaml.assert_code(0);
    for i in &items {
        let d = i["specDigest"].as_str().expect("spec digest");
        assert!(yaml.stdout.contains(d), "yaml lacks {d}");
    }
}

/// `status`: every line fits (the table and the problems with their fix commands), and the
/// NAMESPACE column is there when the Airflow Deployments span namespaces, not with -n.
#[test]
fn status_fits_160_columns_with_real_world_names() {
    let Some(bed) = Bed::get() else { return };
    let _names = RealNames::create(&bed);
    // Every namespace: other tests' namespaces come and go meanwhile; their problem lines are
    // theirs. Checked: this release's lines, the bed platform's, and every line that is not a
    // problem or its fix (the table and the headings). `status -n` below checks every line.
    let o = bed.run(&["status"]);
    assert!(o.code == 0 || o.code == 1, "{}", o.stderr);
    let fixture = fixture_releases(&bed);
    let ours: String = o
        .stdout
        .lines()
        .filter(|l| {
            l.contains(RELEASE)
                || fixture.iter().any(|r| l.contains(r.as_str()))
                || !l.starts_with(' ')
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_fits(
        "status",
        &Out {
            code: o.code,
            stdout: ours,
            stderr: String::new(),
        },
    );
    let row = o
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{NS} ")))
        .unwrap_or_else(|| panic!("no row for {NS}:\n{}", o.stdout));
    assert!(row.contains(RELEASE), "{row}");
    assert!(
        o.stdout.lines().any(|l| l.starts_with("NAMESPACE ")),
        "{}",
        o.stdout
    );

    let one = bed.run(&["status", "-n", NS]);
    assert!(one.code == 0 || one.code == 1, "{}", one.stderr);
    assert_fits("status -n", &one);
    let head = one
        .stdout
        .lines()
        .find(|l| l.contains("RELEASE") && l.contains("STATE"))
        .unwrap_or_else(|| panic!("no table:\n{}", one.stdout));
    assert!(
        head.starts_with("RELEASE "),
        "no NAMESPACE column with -n: {head}"
    );
    assert!(
        one.stdout
            .lines()
            .any(|l| l.starts_with(&format!("{RELEASE} "))),
        "{}",
        one.stdout
    );
}

/// `import` of the whole fixture catalog under the real repository names (`quay.io/...`,
/// `astrocrpublic.azurecr.io/...`, resolved through a mirror on the bed): the default table fits
/// with short digests; wide and json carry the full ones. `--output-file`: no cluster is touched.
#[test]
fn import_fits_160_columns_with_real_repository_names() {
    let Some(bed) = Bed::get() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let out_file = dir.path().join("releases.json");
    let source = catalog_fixture(&bed);
    let m = mirrors(&bed);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "import",
            "--yes",
            "--source",
            &source,
            "--include-yanked",
            "--allow-missing",
            "--registry-mirror",
            &m,
            "--output-file",
            out_file.to_str().expect("utf-8 temp path"),
        ];
        args.extend_from_slice(extra);
        bed.run_with(&args, |c| {
            c.env("KUBECONFIG", dir.path().join("no-such-kubeconfig"));
        })
    };
    let table = run(&[]);
    table.assert_code(0);
    assert_fits("import", &table);
    assert!(
        table.stdout.contains(" quay.io/astronomer/astro-runtime:")
            && table.stdout.contains(" astrocrpublic.azurecr.io/runtime:"),
        "{}",
        table.stdout
    );
    let tokens = digest_tokens(&table.stdout);
    assert!(tokens.len() > 100, "{} digests", tokens.len());
    assert!(tokens.iter().all(|(_, hex)| *hex == 12), "{}", table.stdout);

    let json = run(&["-o", "json"]);
    json.assert_code(0);
    let rep = json.json();
    let wide = run(&["-o", "wide"]);
    wide.assert_code(0);
    let mut checked = 0;
    for i in rep["items"].as_array().expect("items") {
        if let Some(d) = i["digest"].as_str() {
            assert_eq!(d.len(), 71, "{i}");
            assert!(wide.stdout.contains(d), "wide lacks {d}");
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}

/// `resolve` of real repository names (through a mirror on the bed): the default table fits and
/// still prints the whole digest (it is the command's answer); wide and json add the rest.
#[test]
fn resolve_fits_160_columns_with_real_repository_names() {
    let Some(bed) = Bed::get() else { return };
    let a2 = widest_seeded(&bed, "astronomer/astro-runtime");
    let a3 = widest_seeded(&bed, "runtime");
    let refs = [
        format!(
            "quay.io/astronomer/astro-runtime:{}",
            a2["tag"].as_str().expect("tag")
        ),
        format!(
            "astrocrpublic.azurecr.io/runtime:{}",
            a3["tag"].as_str().expect("tag")
        ),
    ];
    let m = mirrors(&bed);
    let run = |extra: &[&str]| {
        let mut args = vec!["resolve", "--registry-mirror", &m];
        args.extend_from_slice(extra);
        args.extend(refs.iter().map(String::as_str));
        bed.run(&args)
    };
    let table = run(&[]);
    table.assert_code(0);
    assert_fits("resolve", &table);
    for img in [&a2, &a3] {
        let d = img["digest"].as_str().expect("digest");
        assert!(table.stdout.contains(d), "{d} missing:\n{}", table.stdout);
    }
    assert!(
        table.stdout.contains("linux/amd64,linux/arm64"),
        "the platforms of an index stay in the default table:\n{}",
        table.stdout
    );
    let wide = run(&["-o", "wide", "--platform", "linux/arm64"]);
    wide.assert_code(0);
    let json = run(&["-o", "json", "--platform", "linux/arm64"]);
    json.assert_code(0);
    for it in json.json()["items"].as_array().expect("items") {
        for field in ["digest", "platformDigest"] {
            if let Some(d) = it[field].as_str() {
                assert_eq!(d.len(), 71, "{it}");
                assert!(wide.stdout.contains(d), "wide lacks {field} {d}");
            }
        }
        assert!(it["mediaType"].is_string(), "{it}");
    }
    assert!(
        wide.stdout.contains("MEDIA TYPE") && wide.stdout.contains("oci-index"),
        "{}",
        wide.stdout
    );
}

/// Runs the plugin under a pseudo-terminal (util-linux `script`), the way a person sees it:
/// stdout is a terminal. `prelude` runs first in the same shell (e.g. `stty rows 50 cols 90`:
/// a pty whose rows are 0 reports no size at all).
fn on_terminal(bed: &Bed, prelude: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = dir.path().join("stderr");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = format!(
        "{prelude}; exec {}",
        quote(env!("CARGO_BIN_EXE_kubectl-astro_sha"))
    );
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line.push_str(&format!(" 2>{}", quote(&stderr.to_string_lossy())));
    let template = bed.cmd();
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .env_remove("COLUMNS");
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c
        .output()
        .expect("run `script` (util-linux) for a pseudo-terminal");
    let mut out = Out::from(o);
    // The pty turns \n into \r\n.
    out.stdout = out.stdout.replace("\r\n", "\n");
    out.stderr = std::fs::read_to_string(&stderr).unwrap_or_default();
    out
}

/// The cells of column `col` (split at kubectl's three-space gap) of every line.
fn column(text: &str, col: usize) -> Vec<String> {
    text.lines()
        .map(|l| {
            l.split("   ")
                .filter(|c| !c.trim().is_empty())
                .nth(col)
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect()
}

/// On a terminal narrower than a row (COLUMNS, or the terminal's own size), no name is cut
/// (issue 23: a 70-column terminal left `deployme…i-server` and `wait-for…grations`): `show`
/// leaves out the pinned digest and says so on stderr, the plan of `pin` leaves out TO; when the
/// names alone are wider than the terminal, the whole table is printed, as a pipe gets it. The
/// same command piped is never changed, whatever COLUMNS says (COLUMNS counts only when stdout is
/// a terminal, as in clap and Python's shutil).
#[test]
fn a_narrow_terminal_cuts_no_name_and_a_pipe_never() {
    let Some(bed) = Bed::get() else { return };
    let args = ["show", "galactic-nova-9012"];
    let piped = bed.run_with(&args, |c| {
        c.env("COLUMNS", "100");
    });
    piped.assert_code(0);
    let (piped_width, _) = widest(&piped.stdout);
    assert!(
        piped_width > 100,
        "the piped table is wider than the terminals below"
    );
    assert!(header(&piped).contains("SPEC DIGEST"), "{}", piped.stdout);
    assert!(!piped.stderr.contains("left out"), "{}", piped.stderr);

    for (how, prelude, env) in [
        ("COLUMNS=100", "true", vec![("COLUMNS", "100")]),
        ("a 100-column terminal", "stty rows 50 cols 100", vec![]),
    ] {
        let tty = on_terminal(&bed, prelude, &args, &env);
        tty.assert_code(0);
        let (w, line) = widest(&tty.stdout);
        assert!(
            w <= 100,
            "{how}: a {w}-column line:\n{line}\n{}",
            tty.stdout
        );
        assert!(
            !tty.stdout.contains('…'),
            "{how}: a cut cell:\n{}",
            tty.stdout
        );
        assert_eq!(
            tty.stdout.lines().count(),
            piped.stdout.lines().count(),
            "{how}: same rows, none wrapped:\n{}",
            tty.stdout
        );
        // Workload, container, tag and state whole, in the piped table's order; the digest out.
        for col in 0..3 {
            assert_eq!(
                column(&tty.stdout, col),
                column(&piped.stdout, col),
                "{how}"
            );
        }
        assert_eq!(column(&tty.stdout, 3), column(&piped.stdout, 4), "{how}");
        assert!(!tty.stdout.contains("sha256:"), "{}", tty.stdout);
        assert!(tty.stdout.contains("running-differs"), "{}", tty.stdout);
        assert!(
            tty.stderr
                .contains("note: SPEC DIGEST left out to fit 100 columns"),
            "{how}: {}",
            tty.stderr
        );
    }

    // 90 columns, narrower than the names alone (99): nothing left out or cut for nothing.
    let narrow = on_terminal(&bed, "stty rows 50 cols 90", &args, &[]);
    narrow.assert_code(0);
    assert_eq!(narrow.stdout, piped.stdout);
    assert!(!narrow.stderr.contains("left out"), "{}", narrow.stderr);

    // The plan of pin (--dry-run: nothing written): TO left out, every name whole.
    let pin = ["pin", "galactic-nova-9012", "--dry-run"];
    let piped_plan = bed.run(&pin);
    piped_plan.assert_code(0);
    assert!(
        header(&piped_plan).contains("   TO   "),
        "{}",
        piped_plan.stdout
    );
    // (its names and words take 121 columns, TO 5 more)
    let plan = on_terminal(&bed, "stty rows 50 cols 123", &pin, &[]);
    plan.assert_code(0);
    let plan_table: String = plan
        .stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        plan_table.starts_with("RELEASE ") && !plan_table.contains("   TO   "),
        "{}",
        plan.stdout
    );
    assert!(!plan_table.contains('…'), "{plan_table}");
    assert!(widest(&plan_table).0 <= 123, "{plan_table}");
    for col in 0..3 {
        let piped_cells = column(&piped_plan.stdout, col);
        assert_eq!(
            column(&plan_table, col),
            piped_cells[..plan_table.lines().count()],
            "{plan_table}"
        );
    }
    assert!(plan.stderr.contains("TO left out"), "{}", plan.stderr);

    // status on 70 columns: its releases table names every namespace and release whole.
    let status = on_terminal(&bed, "stty rows 50 cols 70", &["status"], &[]);
    let row = status
        .stdout
        .lines()
        .find(|l| l.contains("galactic-nova-9012   "))
        .unwrap_or_else(|| panic!("no row of galactic-nova-9012:\n{}", status.stdout));
    assert_eq!(
        row.split_whitespace().take(3).collect::<Vec<_>>(),
        [
            "astronomer-galactic-nova-9012",
            "galactic-nova-9012",
            "running-differs"
        ],
        "{row}"
    );
    assert!(!status.stdout.contains('…'), "{}", status.stdout);

    // A terminal wide enough: nothing shortened, the same table as piped.
    let roomy = on_terminal(&bed, "stty rows 50 cols 250", &args, &[]);
    roomy.assert_code(0);
    assert_eq!(roomy.stdout, piped.stdout);

    // Structured output is never shortened, even on a narrow terminal.
    let json = on_terminal(
        &bed,
        "stty rows 50 cols 40",
        &["show", "galactic-nova-9012", "-o", "json"],
        &[],
    );
    json.assert_code(0);
    let piped_json = bed.run(&["show", "galactic-nova-9012", "-o", "json"]);
    assert_eq!(json.json(), piped_json.json());

    // resolve: the image is what a user pastes and the digest the answer: both whole.
    let img = widest_seeded(&bed, "astronomer/astro-runtime");
    let reference = format!(
        "{}/astronomer/astro-runtime:{}",
        bed.reg_token,
        img["tag"].as_str().expect("tag")
    );
    let r = on_terminal(&bed, "stty rows 50 cols 100", &["resolve", &reference], &[]);
    r.assert_code(0);
    assert!(r.stdout.contains(&reference), "{}", r.stdout);
    assert!(
        r.stdout.contains(img["digest"].as_str().expect("digest")),
        "{}",
        r.stdout
    );
}

/// `import` on a narrow terminal: the image references (what a user pastes), versions and digests
/// are never cut; the line is wider than the terminal instead.
#[test]
fn import_on_a_narrow_terminal_keeps_images_versions_and_digests_whole() {
    let Some(bed) = Bed::get() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let out_file = dir.path().join("releases.json");
    let no_cluster = dir.path().join("no-such-kubeconfig");
    let source = catalog_fixture(&bed);
    let m = mirrors(&bed);
    let args = [
        "import",
        "--yes",
        "--source",
        &source,
        "--include-yanked",
        "--allow-missing",
        "--registry-mirror",
        &m,
        "--output-file",
        out_file.to_str().expect("utf-8 temp path"),
    ];
    let piped = bed.run_with(&args, |c| {
        c.env("KUBECONFIG", &no_cluster);
    });
    piped.assert_code(0);
    let kubeconfig = no_cluster.to_string_lossy().into_owned();
    let tty = on_terminal(
        &bed,
        "true",
        &args,
        &[("COLUMNS", "90"), ("KUBECONFIG", &kubeconfig)],
    );
    tty.assert_code(0);
    assert!(!tty.stdout.contains('…'), "{}", tty.stdout);
    assert!(widest(&piped.stdout).0 > 90, "{}", piped.stdout);
    assert_eq!(column(&tty.stdout, 0), column(&piped.stdout, 0), "VERSION");
    assert_eq!(column(&tty.stdout, 3), column(&piped.stdout, 3), "IMAGE");
    let digests = |t: &str| {
        digest_tokens(t)
            .into_iter()
            .map(|(d, _)| d)
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&tty.stdout), digests(&piped.stdout));
    assert!(digests(&piped.stdout).len() > 100);
}

/// The summary before the question fits a screen at fleet size (issue 18): 30 releases in one
/// namespace, 3 of them with a webserver pod that runs another build than the tag points to now.
/// The default summary is the totals and the releases that need attention (those 3), in at most
/// 17 lines; `-o wide` describes each of the 30 releases, as does the default for ten or fewer.
#[test]
fn the_summary_before_the_question_fits_a_screen_at_fleet_size() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("fleet-summary");
    let image = format!("{}/{}:{}", bed.reg_token, crate::pin::REPO, crate::pin::TAG);
    let other = bed.seeded_digest(crate::pin::REPO, "12.2.0");
    let releases: Vec<String> = (0..30).map(|i| format!("fleet-{i:02}")).collect();
    let yaml: Vec<String> = releases
        .iter()
        .map(|r| support::airflow_release_yaml(&ns.name, r, &image, "Deployment"))
        .collect();
    bed.apply(&yaml.join("\n---\n"));
    let attention = ["fleet-03", "fleet-13", "fleet-23"];
    for rel in attention {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{rel}-webserver-0"), "namespace": ns.name,
                "labels": {"tier": "airflow", "component": "webserver", "release": rel}},
            "spec": {"automountServiceAccountToken": false,
                "containers": [{"name": "webserver", "image": image}]}
        });
        bed.apply(&pod.to_string());
        let status = serde_json::json!({"status": {"containerStatuses": [{"name": "webserver",
            "image": image, "imageID": format!("{}/{}@{other}", bed.reg_token, crate::pin::REPO),
            "ready": true, "restartCount": 0}]}});
        let o = bed.kubectl(&[
            "patch",
            "pod",
            &format!("{rel}-webserver-0"),
            "-n",
            &ns.name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]);
        assert!(o.ok(), "pods/status: {}", o.stderr);
    }
    // The summary: from its first line to the dry run's last word.
    let summary = |extra: &[&str]| {
        let mut args = vec!["pin", "--all", "-n", &ns.name, "--dry-run"];
        args.extend_from_slice(extra);
        let out = bed.run(&args);
        out.assert_code(0);
        let start = out.stderr.find("Summary: pin").expect("a summary");
        let end = out
            .stderr
            .find("Dry run (client)")
            .expect("the dry run's line");
        out.stderr[start..end].to_string()
    };
    let compact = summary(&[]);
    assert!(
        compact.lines().count() <= 17,
        "{} lines:\n{compact}",
        compact.lines().count()
    );
    assert!(
        compact.starts_with(
            "Summary: pin 90 object(s) in 30 release(s); -o wide describes each release\n"
        ),
        "{compact}"
    );
    assert!(
        compact.contains("Needs attention, the image that runs now changes in 3 release(s):"),
        "{compact}"
    );
    for rel in &releases {
        let named = compact.contains(&format!("  {rel} ("));
        assert_eq!(
            named,
            attention.contains(&rel.as_str()),
            "{rel}:\n{compact}"
        );
    }
    assert!(compact.lines().all(|l| width(l) <= 150), "{compact}");

    let wide = summary(&["-o", "wide"]);
    for rel in &releases {
        assert!(
            wide.contains(&format!("  {rel} ({}): 3 object(s)", ns.name)),
            "{rel}:\n{wide}"
        );
    }
    // Ten releases or fewer: each release, as before.
    let few = bed.run(&["pin", "fleet-00", "fleet-03", "-n", &ns.name, "--dry-run"]);
    few.assert_code(0);
    assert!(
        few.stderr
            .contains(&format!("  fleet-03 ({}): 3 object(s)", ns.name)),
        "{}",
        few.stderr
    );
}
