//! Issue 10 §1, §5, §6 and issue 14 for pin/unpin, on the bed: a platform upgrade between pin
//! and unpin, one build per Runtime version inside a release, `--digest-source running`, no
//! write without a terminal or `--yes`, and plan tables that fit 160 columns.
//!
//! Platform facts these scenarios stand on (../shared/reference/astronomer.md):
//! - Houston/Commander re-renders a Deployment through Helm on every update (a platform upgrade
//!   of the Runtime version included); Helm 3's three-way strategic merge sets what the chart
//!   renders (the images, the whole pod_template_file.yaml of `<release>-config`) and keeps what
//!   it does not render (this tool's `astro-sha.github.io/original-images` annotation).
//!   `Bed::houston_upgrade` does exactly that.
//! - The Runtime image appears in main, init and sidecar containers and in the pod template.
//! - Pod `status.containerStatuses[].imageID` holds the digest a node actually pulled; the bed
//!   has no kubelet, so the tests write it through the `pods/status` subresource.

use std::io::Write;
use std::process::Stdio;

use crate::pin::{annotated, assert_all_on, images, records, release, runtime_images, REPO, TAG};
use crate::support::{self, airflow_release_yaml, Bed, Out};

/// The tag the platform upgrades the release to (seeded on the bed like 12.1.0).
const NEW_TAG: &str = "12.2.0";

#[test]
fn pin_upgrade_pin_unpin_restores_the_upgraded_tag_not_the_old_one() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, old) = release(&bed, "upgrade-repin", "StatefulSet");
    let repo = format!("{}/{REPO}", bed.reg_token);
    let new = format!("{repo}:{NEW_TAG}");
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let up = bed.houston_upgrade(&ns, &rel, &repo, &new);
    assert_eq!(up.containers.len(), 4, "{:?}", up.containers);
    assert!(up.pod_template);
    assert_eq!(annotated(&bed, &ns), 3, "helm's merge kept every record");

    // show and status see the stale records (typed in JSON).
    let show = bed.run(&["show", &rel, "-n", &ns, "-o", "json"]);
    show.assert_code(0);
    let items = show.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 5);
    for i in &items {
        assert_eq!(i["record"], "stale", "{i}");
    }
    let show = bed.run(&["show", &rel, "-n", &ns]);
    assert!(
        show.stderr
            .contains("5 container(s) carry a stale original-images record"),
        "{}",
        show.stderr
    );
    let status = bed.run(&["status", "-n", &ns, "--platform-namespace", "astronomer"]);
    assert!(
        status.stdout.contains(&format!(
            "{ns}/{rel}: 5 container(s) carry a stale original-images record"
        )),
        "{}\n{}",
        status.stdout,
        status.stderr
    );

    // pin again: the records now say 12.2.0 is the original.
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let digest = bed.seeded_digest(REPO, NEW_TAG);
    assert_all_on(&bed, &ns, &format!("{new}@{digest}"));
    // One record per Runtime container (three in the scheduler, one in the webserver) and one
    // for the pod template.
    for (object, count) in [
        (format!("statefulset/{rel}-scheduler"), 3),
        (format!("deployment/{rel}-webserver"), 1),
        (format!("configmap/{rel}-config"), 1),
    ] {
        let rec = records(&bed, &ns, &object);
        let rec = rec.as_object().expect("records object");
        assert_eq!(rec.len(), count, "{object}: {rec:?}");
        for (key, r) in rec {
            assert_eq!(r["original"], new.as_str(), "{object} {key}");
            assert_eq!(r["pinned"], format!("{new}@{digest}"), "{object} {key}");
        }
    }
    // unpin puts the upgraded tag back, never the 12.1.0 of the first pin.
    bed.run(&["unpin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    assert_all_on(&bed, &ns, &new);
    assert_ne!(new, old);
    assert_eq!(annotated(&bed, &ns), 0);
}

#[test]
fn unpin_after_an_upgrade_refuses_stale_records_unless_forced() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, old) = release(&bed, "upgrade-unpin", "Deployment");
    let repo = format!("{}/{REPO}", bed.reg_token);
    let new = format!("{repo}:{NEW_TAG}");
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    bed.houston_upgrade(&ns, &rel, &repo, &new);
    let before = (runtime_images(&bed, &ns), annotated(&bed, &ns));

    let out = bed.run(&["unpin", &rel, "-n", &ns, "--yes"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("stale record")
            && out.stderr.contains("--force")
            && out.stderr.contains("container webserver: stale record"),
        "{}",
        out.stderr
    );
    assert_eq!(
        (runtime_images(&bed, &ns), annotated(&bed, &ns)),
        before,
        "a refused unpin writes nothing, records included"
    );
    assert_all_on(&bed, &ns, &new);

    // --force restores the recorded original, as asked.
    bed.run(&["unpin", &rel, "-n", &ns, "--yes", "--force"])
        .assert_code(0);
    assert_all_on(&bed, &ns, &old);
    assert_eq!(annotated(&bed, &ns), 0);
}

/// Pushes a first build of `1.0.0` to a repository of the test's own, pins the webserver to it
/// by hand, then pushes a second build under the same tag.
pub(crate) fn release_with_a_moved_tag(bed: &Bed, ns: &str, rel: &str) -> (String, String, String) {
    let repo = format!("astro-sha-tests/{ns}/astro-runtime");
    let first = bed.push(
        &format!("{}/{repo}:1.0.0", bed.reg_plain),
        "oci-manifest",
        "first",
    );
    let image = format!("{}/{repo}:1.0.0", bed.reg_token);
    bed.apply(&airflow_release_yaml(ns, rel, &image, "Deployment"));
    let o = bed.kubectl(&[
        "set",
        "image",
        &format!("deployment/{rel}-webserver"),
        &format!("webserver={image}@{first}"),
        "-n",
        ns,
    ]);
    assert!(o.ok(), "{}", o.stderr);
    let second = bed.push(
        &format!("{}/{repo}:1.0.0", bed.reg_plain),
        "oci-manifest",
        "second",
    );
    assert_ne!(first, second);
    (image, first, second)
}

#[test]
fn a_moved_tag_gets_the_build_the_release_already_pins() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("movedtag");
    let (image, first, second) = release_with_a_moved_tag(&bed, &ns, "moved-rel");
    let out = bed.run(&["pin", "moved-rel", "-n", &ns, "--yes"]);
    out.assert_code(0);
    assert!(
        out.stderr.contains(&format!("tag {image} moved"))
            && out.stderr.contains("--repin moves the whole release"),
        "{}",
        out.stderr
    );
    // webserver pinned to the first build, tag-only scheduler and pod template: all on the first.
    assert_all_on(&bed, &ns, &format!("{image}@{first}"));
    // --repin moves them all together to the tag's current build.
    bed.run(&["pin", "moved-rel", "-n", &ns, "--yes", "--repin"])
        .assert_code(0);
    assert_all_on(&bed, &ns, &format!("{image}@{second}"));
    let _ = second;
}

/// Creates `n` pods of a workload (labels as its selector) whose containers report `ids`
/// (`container name -> imageID`) through the `pods/status` subresource.
fn pods(bed: &Bed, ns: &str, rel: &str, component: &str, ids: &[&[(&str, &str)]]) {
    for (i, statuses) in ids.iter().enumerate() {
        let name = format!("{rel}-{component}-{i}");
        let containers: Vec<serde_json::Value> = statuses
            .iter()
            .map(|(c, _)| serde_json::json!({"name": c, "image": "placeholder"}))
            .collect();
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns,
                "labels": {"tier": "airflow", "component": component, "release": rel}},
            "spec": {"automountServiceAccountToken": false, "containers": containers}
        });
        bed.apply(&pod.to_string());
        let status: Vec<serde_json::Value> = statuses
            .iter()
            .map(|(c, id)| {
                serde_json::json!({"name": c, "image": "placeholder", "imageID": id,
                "ready": true, "restartCount": 0})
            })
            .collect();
        bed.set_pod_status(
            ns,
            &name,
            &serde_json::json!({"status": {"containerStatuses": status}}),
        );
    }
}

#[test]
fn digest_source_running_freezes_agreeing_pods_and_refuses_disagreeing_ones() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "running", "Deployment");
    // The webserver's pods agree on a build that is NOT what the tag points to now (12.2.0's
    // digest): freezing must take the pods' digest, not the registry's.
    let runs = bed.seeded_digest(REPO, NEW_TAG);
    let other = bed.seeded_digest(REPO, TAG);
    let id = |d: &str| format!("docker-pullable://{}/{REPO}@{d}", bed.reg_token);
    let (runs_id, other_id) = (id(&runs), id(&other));
    pods(
        &bed,
        &ns,
        &rel,
        "webserver",
        &[&[("webserver", &runs_id)], &[("webserver", &runs_id)]],
    );
    // The scheduler's two pods run different builds: its rows are refused.
    pods(
        &bed,
        &ns,
        &rel,
        "scheduler",
        &[
            &[("scheduler", &runs_id), ("scheduler-log-groomer", &runs_id)],
            &[
                ("scheduler", &other_id),
                ("scheduler-log-groomer", &runs_id),
            ],
        ],
    );
    // --repin cannot go with freezing what runs: refused before anything is read.
    let out = bed.run(&[
        "pin",
        &rel,
        "-n",
        &ns,
        "--yes",
        "--digest-source",
        "running",
        "--repin",
    ]);
    out.assert_code(2);
    assert!(out.stderr.contains("--repin"), "{}", out.stderr);
    assert_eq!(annotated(&bed, &ns), 0);
    let out = bed.run(&[
        "pin",
        &rel,
        "-n",
        &ns,
        "--yes",
        "--digest-source",
        "running",
    ]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("container scheduler: its pods run 2 different builds"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("container wait-for-airflow-migrations: pod")
            && out.stderr.contains("reports no image digest"),
        "{}",
        out.stderr
    );
    let (imgs, template) = runtime_images(&bed, &ns);
    let frozen = format!("{image}@{runs}");
    for (p, i) in &imgs {
        let want = if p.ends_with("/webserver") || p.ends_with("/scheduler-log-groomer") {
            &frozen
        } else {
            &image
        };
        assert_eq!(i, want, "{p}");
    }
    // The pod template has no pods: it takes the build the release's pods agree on.
    assert!(
        template.contains(&format!("image: {frozen}   # the Runtime")),
        "{template}"
    );
    // The plan said the webserver keeps its running image.
    let web_row = out
        .stdout
        .lines()
        .find(|l| l.contains(&format!("deployment/{rel}-webserver")))
        .unwrap_or_default()
        .to_string();
    assert!(web_row.ends_with("same"), "{}", out.stdout);
}

/// Runs the plugin with stdin and stdout as pipes (no terminal), like `... | tee log`.
fn piped(bed: &Bed, args: &[&str]) -> Out {
    let mut child = bed
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // An answer on stdin must not count as a confirmation: only a terminal or --yes does.
    let _ = child.stdin.take().expect("stdin").write_all(b"y\n");
    Out::from(child.wait_with_output().expect("wait"))
}

#[track_caller]
fn assert_refused_for_want_of_yes(out: &Out) {
    out.assert_code(2);
    assert!(
        out.stderr.contains("--yes") && out.stderr.contains("nothing was written"),
        "{}",
        out.stderr
    );
}

#[test]
fn pin_and_unpin_write_nothing_without_a_terminal_or_yes() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "noyes-pin", "Deployment");
    let before = images(&bed, &ns);
    assert_refused_for_want_of_yes(&piped(&bed, &["pin", &rel, "-n", &ns]));
    assert_eq!(images(&bed, &ns), before);
    assert_eq!(annotated(&bed, &ns), 0);
    piped(&bed, &["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let pinned = images(&bed, &ns);
    assert_ne!(pinned, before);

    assert_refused_for_want_of_yes(&piped(&bed, &["unpin", &rel, "-n", &ns]));
    assert_eq!(images(&bed, &ns), pinned);
    assert_eq!(annotated(&bed, &ns), 3);
    piped(&bed, &["unpin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    assert_all_on(&bed, &ns, &image);

    // --values-out replacing an existing file of the user's needs the same yes.
    let dir = tempfile::tempdir().unwrap();
    let file = support::write_file(dir.path(), "values.yaml", "# mine\n");
    let f = file.to_str().unwrap();
    assert_refused_for_want_of_yes(&piped(&bed, &["pin", &rel, "-n", &ns, "--values-out", f]));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\n");
    piped(&bed, &["pin", &rel, "-n", &ns, "--values-out", f, "--yes"]).assert_code(0);
    let written = std::fs::read_to_string(&file).unwrap();
    let digest = bed.seeded_digest(REPO, TAG);
    assert!(
        written.contains(&format!("digest: \"{digest}\"")),
        "{written}"
    );
}

#[test]
fn enable_and_import_write_nothing_without_a_terminal_or_yes() {
    let Some(bed) = Bed::get() else { return };
    // enable --values edits the user's file in place.
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    let text =
        std::fs::read_to_string(support::repo_root().join("tests/fixtures/values/no-flag.yaml"))
            .unwrap();
    std::fs::write(&values, &text).unwrap();
    let v = values.to_str().unwrap();
    let enable = ["enable", "--values", v, "--chart-version", "0.37.4"];
    assert_refused_for_want_of_yes(&piped(&bed, &enable));
    assert_eq!(
        std::fs::read_to_string(&values).unwrap(),
        text,
        "file untouched"
    );
    let mut with_yes = enable.to_vec();
    with_yes.push("--yes");
    piped(&bed, &with_yes).assert_code(0);
    assert_ne!(std::fs::read_to_string(&values).unwrap(), text);

    // import writes the releases ConfigMap.
    let ns = bed.namespace("noyes-import");
    // --output-file: a new file is the output asked for; an existing one is the user's file.
    let existing = support::write_file(dir.path(), "existing.json", "{}\n");
    let catalog = support::write_file(
        dir.path(),
        "catalog.json",
        &format!(
            r#"{{"version":"1.0","runtimeVersions":{{"{TAG}":{{"metadata":{{"channel":"stable"}}}}}},"runtimeVersionsV3":{{}}}}"#
        ),
    );
    let repo = format!("{}/{REPO}", bed.reg_token);
    let import = [
        "import",
        "--platform-namespace",
        &ns,
        "--source",
        catalog.to_str().unwrap(),
        "--airflow2-repository",
        &repo,
    ];
    let to_file = |file: &str| {
        let mut a = import.to_vec();
        a.extend(["--output-file", file]);
        piped(&bed, &a)
    };
    assert_refused_for_want_of_yes(&to_file(existing.to_str().unwrap()));
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "{}\n");
    let fresh = dir.path().join("fresh.json");
    to_file(fresh.to_str().unwrap()).assert_code(0);
    assert!(std::fs::read_to_string(&fresh)
        .unwrap()
        .contains(&bed.seeded_digest(REPO, TAG)));

    assert_refused_for_want_of_yes(&piped(&bed, &import));
    let get = bed.kubectl(&["get", "configmap", "astro-runtime-base-images", "-n", &ns]);
    assert!(
        !get.ok() && get.stderr.contains("NotFound"),
        "{}",
        get.stderr
    );
    let mut with_yes = import.to_vec();
    with_yes.push("--yes");
    piped(&bed, &with_yes).assert_code(0);
    let cm = bed.get_json(&["configmap", "astro-runtime-base-images", "-n", &ns]);
    assert!(
        cm["data"]["astro_runtime_releases.json"]
            .as_str()
            .unwrap()
            .contains(&bed.seeded_digest(REPO, TAG)),
        "{cm}"
    );
}

/// A namespace and release named like a real platform's (`astronomer-nebular-star-4821`,
/// `nebular-star-4821`, issue 14), with a random number so reruns do not collide. Deleted on drop.
struct RealNames {
    ns: String,
    release: String,
    kubeconfig: std::path::PathBuf,
}

impl RealNames {
    fn new(bed: &Bed) -> RealNames {
        let n = (std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0))
            % 9000
            + 1000;
        let release = format!("nebular-star-{n}");
        let ns = format!("astronomer-{release}");
        bed.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    platform-release: astronomer\n    astro-sha-test: \"true\"\n"
        ));
        RealNames {
            ns,
            release,
            kubeconfig: bed.kubeconfig.clone(),
        }
    }
}

impl Drop for RealNames {
    fn drop(&mut self) {
        support::delete_namespace(&self.kubeconfig, &self.ns);
    }
}

fn widest(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn plan_tables_fit_160_columns_and_wide_and_json_carry_full_digests() {
    let Some(bed) = Bed::get() else { return };
    // The bed's platform (its names are as long as a real platform's, or longer).
    let platform = [
        "pin",
        "quasaric-sun-1234",
        "galactic-nova-9012",
        "eccentric-star-5678",
        "-A",
        "--dry-run=client",
    ];
    let out = bed.run(&platform);
    out.assert_code(0);
    assert!(out.stdout.lines().count() > 30, "{}", out.stdout);
    assert!(widest(&out.stdout) <= 160, "{}", out.stdout);
    assert!(out.stdout.starts_with("NAMESPACE "), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("Summary: pin 6 object(s) in 1 release(s)")
            && out
                .stderr
                .contains("pods roll now: deployment/quasaric-sun-1234-scheduler"),
        "{}",
        out.stderr
    );

    // A release named as issue 14 names it, pinned and unpinned.
    let real = RealNames::new(&bed);
    let image = format!("{}/{REPO}:{TAG}", bed.reg_token);
    bed.apply(&airflow_release_yaml(
        &real.ns,
        &real.release,
        &image,
        "Deployment",
    ));
    let digest = bed.seeded_digest(REPO, TAG);
    for args in [
        vec!["pin", &real.release, "--dry-run=client"],
        vec!["pin", &real.release, "-A", "--dry-run=client"],
    ] {
        let out = bed.run(&args);
        out.assert_code(0);
        assert!(widest(&out.stdout) <= 160, "{args:?}:\n{}", out.stdout);
        assert!(
            out.stdout.contains(&format!(
                "deployment/{}-scheduler   wait-for-airflow-migrations",
                real.release
            )),
            "{}",
            out.stdout
        );
        assert!(!out.stdout.contains(&digest), "short digests only");
        assert!(out.stdout.contains(&digest[..19]), "{}", out.stdout);
    }
    let wide = bed.run(&["pin", &real.release, "-o", "wide", "--dry-run=client"]);
    wide.assert_code(0);
    assert!(
        wide.stdout.contains(&format!("{image}@{digest}")),
        "{}",
        wide.stdout
    );
    let json = bed.run(&["pin", &real.release, "-o", "json", "--dry-run=client"]);
    json.assert_code(0);
    let j = json.json();
    let rows = j["plan"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for r in rows {
        assert_eq!(r["to"], format!("{image}@{digest}"), "{r}");
        assert_eq!(r["from"], image.as_str());
    }
    assert_eq!(j["edits"].as_array().unwrap().len(), 3);
    assert_eq!(j["summary"][0]["objects"], 3);

    bed.run(&["pin", &real.release, "--yes"]).assert_code(0);
    for args in [
        vec!["unpin", &real.release, "--dry-run=client"],
        vec!["unpin", &real.release, "-A", "--dry-run=client"],
    ] {
        let out = bed.run(&args);
        out.assert_code(0);
        assert_eq!(out.stdout.lines().count(), 6, "{}", out.stdout);
        assert!(widest(&out.stdout) <= 160, "{args:?}:\n{}", out.stdout);
    }
    let json = bed.run(&["unpin", &real.release, "-o", "json", "--dry-run=client"]);
    assert_eq!(json.json()["plan"][0]["from"], format!("{image}@{digest}"));
}

/// Runs `args` on a terminal and answers the confirmation with `answer` once it is asked.
fn on_a_terminal(bed: &Bed, args: &[&str], answer: &str) -> (i32, String) {
    support::tty::on_a_terminal(bed, args, |_| answer.to_string())
}

#[test]
fn a_terminal_is_asked_and_only_yes_writes() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "tty", "Deployment");
    let before = images(&bed, &ns);
    let (code, shown) = on_a_terminal(&bed, &["pin", &rel, "-n", &ns], "n");
    assert_eq!(code, 0, "a person's no is not a finding: {shown}");
    assert!(
        shown.contains("Pin 3 object(s)?") && shown.contains("Aborted; nothing was changed"),
        "{shown}"
    );
    assert_eq!(images(&bed, &ns), before);
    assert_eq!(annotated(&bed, &ns), 0);
    let (code, shown) = on_a_terminal(&bed, &["pin", &rel, "-n", &ns], "y");
    assert_eq!(code, 0, "{shown}");
    assert_all_on(
        &bed,
        &ns,
        &format!("{image}@{}", bed.seeded_digest(REPO, TAG)),
    );
}

/// A signal at the confirmation prompt ends the run with nothing written (the run watches for
/// signals only from its first write on, after the answer: docs/faults.md). SIGTERM is sent to
/// the plugin while it waits at `[y/N]`; it is handled as Ctrl-C is, and unlike SIGINT it is
/// not ignored by a test run started in the background of a non-interactive shell (POSIX has
/// such jobs ignore SIGINT, and the plugin inherits that).
#[test]
fn a_signal_at_the_prompt_ends_the_run_and_writes_nothing() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, _) = release(&bed, "ttysig", "StatefulSet");
    let before = (images(&bed, &ns), annotated(&bed, &ns));
    let (code, shown) = support::tty::on_a_terminal(&bed, &["pin", &rel, "-n", &ns], |pid| {
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(kill.success());
        for _ in 0..600 {
            if support::tty::gone(pid) {
                return String::new();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the plugin (pid {pid}) outlived SIGTERM at the prompt");
    });
    assert_eq!(code, 128 + 15, "ended by SIGTERM: {shown}");
    // Ended by the signal itself: no write was under way, so nothing speaks of finishing one.
    assert!(
        shown.contains("Pin 3 object(s)?") && !shown.contains("interrupted"),
        "{shown}"
    );
    assert_eq!((images(&bed, &ns), annotated(&bed, &ns)), before);
}
